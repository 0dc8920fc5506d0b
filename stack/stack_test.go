package stack

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

// freeBase finds a port p such that p..p+n-1 are free on loopback.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(40000)
		ok := true
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

func TestStackServesClusterAndExporter(t *testing.T) {
	base := freeBase(t, 12)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaPort, cfg.ControllerPort, cfg.MetricsPort, cfg.ExporterPort = base, base+3, base+6, base+9
	cfg.AlertingPort, cfg.TicketsPort = base+10, base+11
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
			// The banner is printed once every part serves.
			if strings.Contains(string(body), "\nkafka_brokers 3\n") && strings.Contains(out.String(), "tickets and UI") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("exporter never reported 3 brokers; stack said:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Contains(t, out.String(), "Kafka bootstrap   127.0.0.1:"+strconv.Itoa(base))
	// The gateway is printed as the address to use, and serves the cluster.
	gwAddr := regexp.MustCompile(`Kafka \(use this\)  (\S+)`).FindStringSubmatch(out.String())
	require.NotNil(t, gwAddr, out.String())
	gcl, gerr := kgo.NewClient(kgo.SeedBrokers(gwAddr[1]), kgo.AllowAutoTopicCreation())
	require.NoError(t, gerr)
	defer gcl.Close()
	gctx, gcancel := context.WithTimeout(context.Background(), time.Minute)
	defer gcancel()
	require.NoError(t, gcl.ProduceSync(gctx, &kgo.Record{Topic: "through-gateway", Value: []byte("hello")}).FirstErr())
	require.Contains(t, out.String(), "tickets and UI    http://127.0.0.1:"+strconv.Itoa(cfg.TicketsPort)+"/")
	for _, u := range []string{
		"http://127.0.0.1:" + strconv.Itoa(cfg.AlertingPort) + "/api/v1/rules",
		"http://127.0.0.1:" + strconv.Itoa(cfg.TicketsPort) + "/login",
	} {
		resp, err := http.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
	}
	// The alerting service can reach the ticket service with the token the
	// stack created for it.
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(cfg.AlertingPort) + "/api/v1/receivers")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "tickets")

	// A test notification to the tickets receiver reaches the ticket service
	// through its webhook with the stack's token (a 2xx from the receiver).
	resp, err = http.Post("http://127.0.0.1:"+strconv.Itoa(cfg.AlertingPort)+"/api/v1/receivers/tickets/test", "application/json", nil)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	// The Silences page works out of the box: the stack points the ticket
	// service at its own alerting service.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	ui := &http.Client{Jar: jar}
	tickets := "http://127.0.0.1:" + strconv.Itoa(cfg.TicketsPort)
	resp, err = ui.Get(tickets + "/login")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	require.NotNil(t, m, "%s", body)
	resp, err = ui.PostForm(tickets+"/login", url.Values{"username": {"admin"}, "password": {cfg.AdminPassword}, "csrf": {string(m[1])}})
	require.NoError(t, err)
	resp.Body.Close()
	resp, err = ui.Get(tickets + "/silences")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.NotContains(t, string(body), "alerting_url", "the Silences page is configured")
	for i := range 3 {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(cfg.MetricsPort+i) + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
}
