package tickets

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/tickets/snapshot"
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

// TestSnapshotOfBrokerBehindWebConfig: the fault snapshot reaches a broker's admin interface
// behind a web config with the basic auth of snapshot.admin_http_config; with a wrong password
// the snapshot says the broker refused, without echoing the password.
func TestSnapshotOfBrokerBehindWebConfig(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("admin-pass-123"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  tickets: "+string(hash)+"\n"), 0o600))
	pw := filepath.Join(dir, "admin-password")
	require.NoError(t, os.WriteFile(pw, []byte("admin-pass-123\n"), 0o600))
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.AdminListen = "127.0.0.1:0"
	cfg.OffsetsTopicNumPartitions = 1
	cfg.WebConfigFile = web
	b := brokertest.Run(t, cfg)
	ctx := context.Background()

	now := time.Now()
	withAuth := snapshot.NewCapturer(snapshot.Config{AdminURLs: []string{b.AdminAddr()},
		AdminHTTPConfig: commoncfg.HTTPClientConfig{BasicAuth: &commoncfg.BasicAuth{Username: "tickets", PasswordFile: pw}}})
	s := withAuth.Capture(ctx, snapshot.Target{IncidentID: 1, ImpactStart: now}, now)
	require.NotNil(t, s.Cluster, "errors: %v", s.Errors)
	require.Equal(t, cfg.ClusterID, s.Cluster.ID)

	without := snapshot.NewCapturer(snapshot.Config{AdminURLs: []string{"http://tickets:wrong-pass-456@" + b.AdminAddr()}})
	s = without.Capture(ctx, snapshot.Target{IncidentID: 1, ImpactStart: now}, now)
	require.Nil(t, s.Cluster)
	joined := strings.Join(s.Errors, "\n")
	require.Contains(t, joined, "401")
	require.NotContains(t, joined, "wrong-pass-456", "a password in the URL is not echoed")
}
