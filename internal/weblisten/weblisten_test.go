package weblisten

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStateChangingRefusesNonLoopbackWithoutAuth(t *testing.T) {
	_, err := Listen(Options{Name: "alerting API", Address: "0.0.0.0:0", StateChanging: true}, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), Flag)
	require.Contains(t, err.Error(), "alerting API")

	// A web config that only sets headers authenticates nothing: still refused.
	dir := t.TempDir()
	p := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(p, []byte("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"), 0o600))
	_, err = Listen(Options{Name: "alerting API", Address: "0.0.0.0:0", StateChanging: true, WebConfigFile: p}, nil)
	require.ErrorContains(t, err, Flag)

	require.ErrorContains(t, CheckAddress("0.0.0.0:9093", "listen"), "listen")
	require.NoError(t, CheckAddress("127.0.0.1:9093", "listen"))
	require.NoError(t, CheckAddress("localhost:9093", "listen"))
	require.NoError(t, CheckAddress("[::1]:9093", "listen"))
}

func TestStartMessageSaysHowProtected(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		webUsers bool
		want     string
	}{
		{"loopback", Options{Name: "x", Address: "127.0.0.1:0", StateChanging: true}, false, "loopback-only"},
		{"read-only open", Options{Name: "x", Address: "0.0.0.0:0"}, false, "unauthenticated"},
		{"basic auth", Options{Name: "x", Address: "0.0.0.0:0", StateChanging: true}, true, "authenticated (basic auth"},
		{"own auth", Options{Name: "x", Address: "0.0.0.0:0", StateChanging: true, OwnAuth: "bearer tokens"}, false, "authenticated (bearer tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.webUsers {
				tc.opts.WebConfigFile = writeWebConfig(t, t.TempDir(), "", "alice", "s3cret")
			}
			var logs testutil.Buffer
			l, err := Listen(tc.opts, slog.New(slog.NewTextHandler(&logs, nil)))
			require.NoError(t, err)
			defer l.Close()
			require.Contains(t, l.Mode(), tc.want)
			require.Contains(t, logs.String(), "x listening")
			require.Contains(t, logs.String(), tc.want)
		})
	}
}

func TestBadWebConfigNamesTheField(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(p, []byte("basic_auth_users:\n  alice: not-a-bcrypt-hash\n"), 0o600))
	_, err := Listen(Options{Name: "x", Address: "127.0.0.1:0", WebConfigFile: p, ConfigField: "web.config.file"}, nil)
	require.ErrorContains(t, err, "web.config.file")
	require.NoError(t, os.WriteFile(p, []byte("unknown_key: 1\n"), 0o600))
	_, err = Listen(Options{Name: "x", Address: "127.0.0.1:0", WebConfigFile: p}, nil)
	require.ErrorContains(t, err, Flag)
}

// TestBasicAuthTLSAndBypass serves over TLS with a bcrypt basic auth user, as Prometheus'
// scrape config (basic_auth, tls_config.ca_file) reaches it, and lets requests the service
// authenticates itself (here a header) through without basic auth.
func TestBasicAuthTLSAndBypass(t *testing.T) {
	dir := t.TempDir()
	caPool := writeCert(t, dir)
	p := writeWebConfig(t, dir, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\n", "prometheus", "scrape-pass")
	l, err := Listen(Options{Name: "test", Address: "127.0.0.1:0", WebConfigFile: p, StateChanging: true, OwnAuth: "bearer tokens"}, nil)
	require.NoError(t, err)
	require.True(t, l.TLS())
	require.True(t, l.BasicAuth())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() {
		done <- l.Serve(srv, func(r *http.Request) bool { return r.Header.Get("X-Own-Credential") != "" })
	}()
	defer func() {
		require.NoError(t, srv.Shutdown(context.Background()))
		require.NoError(t, <-done)
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool}}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	get := func(user, pass, own string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+l.Addr()+"/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if own != "" {
			req.Header.Set("X-Own-Credential", own)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, "deny", resp.Header.Get("X-Frame-Options"))
		return resp.StatusCode, string(b)
	}
	code, _ := get("", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get("prometheus", "wrong", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := get("prometheus", "scrape-pass", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "hello", body)
	code, _ = get("", "", "token")
	require.Equal(t, http.StatusOK, code)

	// exporter-toolkit rereads the file at every request; so does BasicAuth, which services
	// that take credentials of their own ask.
	require.True(t, l.BasicAuth())
	require.NoError(t, os.WriteFile(p, []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\n"), 0o600))
	require.False(t, l.BasicAuth())
	require.False(t, l.WebAuth())
	code, _ = get("", "", "")
	require.Equal(t, http.StatusOK, code)

	// Plain HTTP to a TLS listener gets nowhere.
	resp, err := http.Get("http://" + l.Addr() + "/")
	if err == nil {
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	}
}

// writeWebConfig writes an exporter-toolkit web config with extra YAML and one bcrypt user.
func writeWebConfig(t *testing.T, dir, extra, user, pass string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	require.NoError(t, err)
	p := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(p, []byte(extra+"basic_auth_users:\n  "+user+": "+string(h)+"\n"), 0o600))
	return p
}

// writeCert writes a self-signed server.crt/server.key for 127.0.0.1 into dir.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.crt"), certPEM, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	return pool
}
