package tickets

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestListenerWebConfig: the ticket service's listener takes an exporter-toolkit web config, so
// Prometheus scrapes its /metrics with basic auth as it scrapes everything else.
func TestListenerWebConfig(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600))
	ts := startService(t, func(c *Config) { c.WebConfigFile = web })
	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, ts.base+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnauthorized, get("", ""))
	require.Equal(t, http.StatusUnauthorized, get("prometheus", "wrong"))
	require.Equal(t, http.StatusOK, get("prometheus", "scrape-pass"))
}
