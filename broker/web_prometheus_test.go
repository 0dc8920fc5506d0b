package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
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
	promURL := testutil.Prometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: broker
    basic_auth: {username: prometheus, password_file: %s}
    static_configs: [{targets: [%q]}]
  - job_name: wrong
    basic_auth: {username: prometheus, password_file: %s}
    static_configs: [{targets: [%q]}]
`, filepath.Join(dir, "good"), tb.MetricsAddr(), filepath.Join(dir, "bad"), tb.MetricsAddr()), "")

	type target struct {
		Labels    map[string]string `json:"labels"`
		Health    string            `json:"health"`
		LastError string            `json:"lastError"`
	}
	health := map[string]target{}
	testutil.WaitForErr(t, 60*time.Second, "prometheus: broker up, wrong password down", func() (bool, error) {
		resp, err := http.Get(promURL + "/api/v1/targets")
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
