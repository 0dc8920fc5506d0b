package alerting

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/weblisten"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestScrapeTargetsBehindWebConfig: brokers and the exporter behind an exporter-toolkit web
// config with basic auth are scraped with a Prometheus-style basic_auth (password_file relative
// to the config file); the wrong password leaves the target down with 401, and the credentials
// never show in the targets API.
func TestScrapeTargetsBehindWebConfig(t *testing.T) {
	dir := t.TempDir()
	web := testutil.WebConfig(t, dir, map[string]string{"prometheus": "scrape-pass"})
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sluice_test_gauge", Help: "test"})
	g.Set(42)
	reg.MustRegister(g)
	ln, err := weblisten.Listen(weblisten.Options{Name: "test target", Address: "127.0.0.1:0", WebConfigFile: web}, nil)
	require.NoError(t, err)
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- ln.Serve(srv, nil) }()
	defer func() {
		require.NoError(t, srv.Shutdown(context.Background()))
		require.NoError(t, <-served)
	}()

	writeFile(t, dir, "scrape-password", "scrape-pass\n")
	writeFile(t, dir, "wrong-password", "nope\n")
	m := startManager(t, dir, fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
default_rules: false
scrape_interval: 1s
targets:
  - job: broker
    address: %s
    basic_auth:
      username: prometheus
      password_file: scrape-password
  - job: exporter
    address: %s
    basic_auth:
      username: prometheus
      password_file: wrong-password
`, filepath.Join(dir, "data"), ln.Addr(), ln.Addr()), io.Discard)
	testutil.WaitFor(t, 30*time.Second, "broker up, exporter down", func() bool {
		health := map[string]string{}
		for _, ts := range m.evaluator.Targets() {
			health[ts.Job] = ts.Health + " " + ts.LastError
		}
		return health["broker"] == "up " && strings.HasPrefix(health["exporter"], "down ") && strings.Contains(health["exporter"], "401")
	})
	code, body := call(t, http.MethodGet, "http://"+m.Addr()+"/api/v1/targets", "", "", "")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "scrape-password")
	require.NotContains(t, body, "prometheus")
}
