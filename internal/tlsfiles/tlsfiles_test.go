package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/stack/localca"
)

// TestReloadServesTheNewCertificate: a server config made once serves the
// certificate read last; a changed file is noticed and reloaded; a bad file
// keeps the previous certificate.
func TestReloadServesTheNewCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, err := localca.New(dir, "test CA", time.Hour)
	require.NoError(t, err)
	first, err := ca.Issue("first", "first", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	second, err := ca.Issue("second", "second", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	keystore := filepath.Join(dir, "keystore.pem")
	copyFile(t, first.Keystore, keystore)

	_, err = New(filepath.Join(dir, "missing.pem"), "")
	require.ErrorContains(t, err, "ssl.keystore.location")
	src, err := New(keystore, ca.CertFile)
	require.NoError(t, err)
	require.False(t, src.Changed())
	srv := src.ServerConfig("none")
	require.Equal(t, "first", servedCN(t, srv, ca.CertFile))

	copyFile(t, second.Keystore, keystore)
	later := time.Now().Add(2 * time.Second)
	require.NoError(t, os.Chtimes(keystore, later, later))
	require.True(t, src.Changed())
	require.NoError(t, src.Reload())
	require.Equal(t, "second", servedCN(t, srv, ca.CertFile))

	require.NoError(t, os.WriteFile(keystore, []byte("not PEM"), 0o600))
	require.Error(t, src.Reload())
	require.Equal(t, "second", servedCN(t, srv, ca.CertFile), "a bad file keeps the previous certificate")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
}

// servedCN is the common name of the certificate a TLS server with cfg presents.
func servedCN(t *testing.T, cfg *tls.Config, caFile string) string {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- tls.Server(a, cfg).Handshake() }()
	c := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	require.NoError(t, c.Handshake())
	require.NoError(t, <-done)
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}
