package stack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestSecureStack: `sluice dev --secure` serves Kafka only with SASL_SSL; the
// exporter gets in with the admin's credentials, a client with the printed CA and
// password does too, and a plaintext client does not.
func TestSecureStack(t *testing.T) {
	base := freeBase(t, 8)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Brokers = 1
	cfg.Secure = true
	cfg.KafkaPort, cfg.ControllerPort, cfg.MetricsPort, cfg.ExporterPort = base, base+1, base+2, base+3
	cfg.AlertingPort, cfg.TicketsPort = base+4, base+5
	cfg.GatewayPort, cfg.GatewayMetricsPort = 0, 0 // free ports
	cfg.AdminPassword = "local-admin-pw"
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), out) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("stack did not stop within 30s")
		}
	}()
	exporterURL := "http://127.0.0.1:" + strconv.Itoa(cfg.ExporterPort) + "/metrics"
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(exporterURL)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "\nkafka_brokers 1\n") && strings.Contains(out.String(), "tickets and UI") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter never reported the broker; stack said:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Contains(t, out.String(), "kcat -b 127.0.0.1:"+strconv.Itoa(base)+" -X security.protocol=SASL_SSL")
	pass, err := os.ReadFile(filepath.Join(cfg.DataDir, "secure", "admin.password"))
	require.NoError(t, err)
	require.NotContains(t, out.String(), strings.TrimSpace(string(pass)), "the password is not printed")

	sec := (&secureSetup{caFile: filepath.Join(cfg.DataDir, "secure", "ca.pem"), passFile: filepath.Join(cfg.DataDir, "secure", "admin.password")}).client()
	opts, err := sec.Opts()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(base)
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
		ok   bool
	}{{"SASL_SSL admin", opts, true}, {"plaintext", nil, false}} {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second)}, tc.opts...)...)
		require.NoError(t, err)
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		_, err = kmsg.NewPtrMetadataRequest().RequestWith(rctx, cl)
		rcancel()
		cl.Close()
		require.Equal(t, tc.ok, err == nil, "%s: %v", tc.name, err)
	}

	// ACLs are on: a user admin creates has no rights until admin grants them.
	admCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	require.NoError(t, err)
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	_, err = adm.AlterUserSCRAMs(actx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "bob-secret-password"}})
	require.NoError(t, err)
	bobPass := filepath.Join(t.TempDir(), "bob.password")
	require.NoError(t, os.WriteFile(bobPass, []byte("bob-secret-password\n"), 0o600))
	bob := sec
	bob.SASLUsername, bob.SASLPasswordFile = "bob", bobPass
	bobOpts, err := bob.Opts()
	require.NoError(t, err)
	bobCl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, bobOpts...)...)
	require.NoError(t, err)
	defer bobCl.Close()
	// The new credential reaches every broker through the metadata log; until then bob's
	// logins fail. Once in, his CreateTopics is refused: he has no ACL.
	bobDeadline := time.Now().Add(30 * time.Second)
	for {
		_, err = kadm.NewClient(bobCl).CreateTopic(actx, 1, 1, nil, "bobs-topic")
		if errors.Is(err, kerr.TopicAuthorizationFailed) {
			break
		}
		require.True(t, time.Now().Before(bobDeadline), "bob's CreateTopics: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}
