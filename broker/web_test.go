package broker

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestHTTPListenersBehindWebConfig: with an exporter-toolkit web config holding a basic auth
// user, the metrics and admin listener answers nothing without the credentials, and what
// Prometheus' scrape config (basic_auth) sends works.
func TestHTTPListenersBehindWebConfig(t *testing.T) {
	dir := t.TempDir()
	web := testutil.WebConfig(t, dir, map[string]string{"prometheus": "scrape-pass"})
	tb := startTestBroker(t, filepath.Join(dir, "data"), func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.WebConfigFile = web
	})
	for _, path := range []string{"/metrics", "/api/v1/cluster", "/api/v1/logs", "/healthz"} {
		get := func(user, pass string) int {
			req, _ := http.NewRequest(http.MethodGet, "http://"+tb.MetricsAddr()+path, nil)
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		require.Equal(t, http.StatusUnauthorized, get("", ""), path)
		require.Equal(t, http.StatusUnauthorized, get("prometheus", "wrong"), path)
		require.Equal(t, http.StatusOK, get("prometheus", "scrape-pass"), path)
	}
}

// TestPprofLoopbackOnlyWithoutWebConfig: profiles are not served beyond loopback without
// authentication; the error names the setting.
func TestPprofLoopbackOnlyWithoutWebConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.PprofListen = "0.0.0.0:6060"
	require.ErrorContains(t, cfg.Validate(), "pprof.listen")
	cfg.PprofListen = "127.0.0.1:6060"
	require.NoError(t, cfg.Validate())
	cfg.PprofListen = "0.0.0.0:6060"
	cfg.WebConfigFile = "web.yml"
	require.NoError(t, cfg.Validate())
}
