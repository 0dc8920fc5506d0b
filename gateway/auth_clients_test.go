package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/stack/localca"
)

// TestGatewaySASLLibrdkafka: kcat (librdkafka) authenticates through the
// gateway with SCRAM-SHA-512 and PLAIN, produces to alice's topic and reads it
// back, and is refused bob's topic.
func TestGatewaySASLLibrdkafka(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc)
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			auth := []string{"-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=" + mech,
				"-X", "sasl.username=alice", "-X", "sasl.password=" + securePasswords["alice"]}
			lines := []string{mech + "-a", mech + "-b", mech + "-c"}
			kcat(t, g.Addr(), strings.Join(lines, "\n")+"\n", append(auth, "-P", "-t", "alice-t", "-p", "0")...)
			out, _ := kcat(t, g.Addr(), "", append(auth, "-C", "-t", "alice-t", "-p", "0", "-o", "beginning", "-e", "-q")...)
			for _, l := range lines {
				require.Contains(t, out, l)
			}
			_, stderr := kcatFails(t, g.Addr(), append(auth, "-C", "-t", "bob-t", "-p", "0", "-o", "beginning", "-e", "-q")...)
			require.Contains(t, strings.ToLower(stderr), "authoriz")
		})
	}
}

// kcatFails runs kcat expecting it to fail, and returns stdout and stderr.
func kcatFails(t *testing.T, addr string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"-b", addr, "-X", "broker.address.family=v4"}, args...)
	cmd := exec.CommandContext(ctx, kcatPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.Error(t, cmd.Run(), "kcat %s should fail\nstdout:\n%s", strings.Join(args, " "), stdout.String())
	return stdout.String(), stderr.String()
}

// TestGatewaySASLSSL: with SASL_SSL the gateway's listener is TLS (its
// certificate from a PEM keystore); franz-go and kcat authenticate over it
// with SCRAM and act as alice; a client without TLS gets nothing.
func TestGatewaySASLSSL(t *testing.T) {
	sc := startSecureCluster(t)
	ca, err := localca.New(t.TempDir(), "gateway test CA", time.Hour)
	require.NoError(t, err)
	pair, err := ca.Issue("gateway", "gateway", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	g, _ := startSecureGateway(t, sc, func(c *Config) {
		c.ClientSecurityProtocol = "SASL_SSL"
		c.SSLKeystoreLocation = pair.Keystore
	})
	ctx := testCtx(t, 2*time.Minute)
	pem, err := os.ReadFile(ca.CertFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	cl := gatewayClient(t, g, scramMech("alice", 512), kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.DefaultProduceTopic("alice-t"))
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over TLS")}).FirstErr())
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "bob-t", Value: []byte("x")}).FirstErr()
	require.ErrorIs(t, err, kerr.TopicAuthorizationFailed)

	auth := []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + ca.CertFile, "-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=alice", "-X", "sasl.password=" + securePasswords["alice"]}
	out, _ := kcat(t, g.Addr(), "", append(auth, "-C", "-t", "alice-t", "-o", "beginning", "-e", "-q")...)
	require.Contains(t, out, "over TLS")

	plainCl := newClient(t, g.Addr(), kgo.SASL(scramMech("alice", 512)), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(pctx, plainCl)
	require.Error(t, err, "a client without TLS")
}

// TestGatewaySASLConfluentKafka: Debian's python3-confluent-kafka (librdkafka)
// authenticates through the gateway with SCRAM-SHA-512 and PLAIN, produces
// idempotently, consumes in a group, and is refused another principal's topic.
func TestGatewaySASLConfluentKafka(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc)
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			const n = 20
			cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "librdkafka", "sasl_roundtrip.py"),
				g.Addr(), mech, "alice", "alice-t", "bob-t", "alice-py-"+mech, fmt.Sprint(n))
			cmd.Env = append(os.Environ(), "SASL_PASSWORD="+securePasswords["alice"])
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Run(), "stderr:\n%s", stderr.String())
			var out struct {
				Consumed []string `json:"consumed"`
				Denied   string   `json:"denied"`
				Error    string   `json:"error"`
			}
			require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "printed:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			require.Empty(t, out.Error)
			for i := range n {
				require.Contains(t, out.Consumed, fmt.Sprintf("%s-%d", mech, i))
			}
			require.Contains(t, strings.ToLower(out.Denied), "authoriz")
		})
	}
}

// TestGatewaySASLTransactions: alice's transactional producer works through
// the authenticating gateway with her own transactional id (coordinator found
// by the gateway, every request authorized as alice), and bob's transactional
// id is refused to her.
func TestGatewaySASLTransactions(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc)
	ctx := testCtx(t, 2*time.Minute)
	tx := gatewayClient(t, g, scramMech("alice", 512), kgo.TransactionalID("alice-tx"), kgo.DefaultProduceTopic("alice-t"))
	require.NoError(t, tx.BeginTransaction())
	for i := range 10 {
		require.NoError(t, tx.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("txn-%d", i))}).FirstErr())
	}
	require.NoError(t, tx.EndTransaction(ctx, kgo.TryCommit))

	cons := gatewayClient(t, g, scramMech("alice", 512), kgo.ConsumeTopics("alice-t"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[string]bool{}
	for len(got) < 10 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		require.NoError(t, fs.Err0())
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
	require.Len(t, got, 10)

	other := gatewayClient(t, g, scramMech("alice", 512), kgo.TransactionalID("bob-tx"), kgo.DefaultProduceTopic("alice-t"),
		kgo.RequestRetries(0))
	// The client asks for its producer id at once; the refusal comes with the
	// transaction's first step or its first record.
	err := other.BeginTransaction()
	if err == nil {
		err = other.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
	}
	require.ErrorContains(t, err, kerr.TransactionalIDAuthorizationFailed.Message) // wrapped in kgo's fatal producer id error
}
