package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestRealPrometheusScrapesBehindWebConfig runs Debian's Prometheus against a broker whose
// metrics listener has a web config with a basic auth user: Prometheus' own scrape config
// (basic_auth with password_file) works unchanged, and a wrong password leaves its target down
// with 401.
func TestRealPrometheusScrapesBehindWebConfig(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not on PATH: install Debian's prometheus package (.ci/run does)")
	}
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600))
	tb := startTestBroker(t, filepath.Join(dir, "data"), func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.WebConfigFile = web
	})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "good"), []byte("scrape-pass\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad"), []byte("not-the-pass\n"), 0o600))
	promCfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(promCfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: broker
    basic_auth: {username: prometheus, password_file: %s}
    static_configs: [{targets: [%q]}]
  - job_name: wrong
    basic_auth: {username: prometheus, password_file: %s}
    static_configs: [{targets: [%q]}]
`, filepath.Join(dir, "good"), tb.MetricsAddr(), filepath.Join(dir, "bad"), tb.MetricsAddr())), 0o600))

	// Prometheus takes no port 0: take a free port and hand it over.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	promAddr := l.Addr().String()
	require.NoError(t, l.Close())
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, promBin, "--config.file", promCfg, "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", promAddr)
	// One writer for both: exec then writes from one goroutine at a time.
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Log(out.String())
		}
	})

	type target struct {
		Labels    map[string]string `json:"labels"`
		Health    string            `json:"health"`
		LastError string            `json:"lastError"`
	}
	health := map[string]target{}
	testutil.WaitForErr(t, 60*time.Second, "prometheus: broker up, wrong password down", func() (bool, error) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/targets")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				ActiveTargets []target `json:"activeTargets"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return false, err
		}
		for _, tg := range body.Data.ActiveTargets {
			health[tg.Labels["job"]] = tg
		}
		return health["broker"].Health == "up" && health["wrong"].Health == "down", fmt.Errorf("targets %+v", health)
	})
	require.Contains(t, health["wrong"].LastError, "401")
}
