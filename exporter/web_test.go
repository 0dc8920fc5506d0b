package exporter

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestWebConfigBasicAuth: with kafka_exporter's --web.config.file holding a basic auth user,
// the exporter answers nothing without the credentials Prometheus' scrape config sends.
func TestWebConfigBasicAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pass"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600))
	cfg := testConfig("127.0.0.1:1")
	cfg.WebConfigFile = web
	e := newExporter(t, cfg)
	testutil.Start(t, "the exporter", e.Run).WaitReady(t, e.Ready(), time.Minute)
	get := func(path, user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.Addr()+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{"/metrics", "/healthz"} {
		require.Equal(t, http.StatusUnauthorized, get(p, "", ""), p)
		require.Equal(t, http.StatusUnauthorized, get(p, "prometheus", "nope"), p)
		require.Equal(t, http.StatusOK, get(p, "prometheus", "scrape-pass"), p)
	}
}

// TestBadWebConfigRefused: a web config with a password that is not a bcrypt hash stops Run
// with an error naming the flag.
func TestBadWebConfigRefused(t *testing.T) {
	web := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prometheus: plain-text\n"), 0o600))
	cfg := testConfig("127.0.0.1:1")
	cfg.WebConfigFile = web
	e := newExporter(t, cfg)
	require.ErrorContains(t, e.Run(context.Background()), "--web.config.file")
}
