// Package tlsfiles serves TLS configurations from PEM files named the Kafka way
// (ssl.keystore.location: the private key and certificate chain in one file;
// ssl.truststore.location: trusted CAs), reloadable without a restart: the
// broker's listeners and peers, and `sluice gateway`'s client listener.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Source holds a server's certificate and trusted CAs, read from the PEM files of
// ssl.keystore.location and ssl.truststore.location, and hands out TLS configurations
// that always use the newest ones: reload swaps them in without a restart, for new
// connections (open ones keep the session they negotiated).
type Source struct {
	keystore, truststore string

	mu      sync.RWMutex
	cert    *tls.Certificate
	pool    *x509.CertPool
	modTime time.Time // newest modification time of the two files when last read
}

// New reads the keystore (a PEM file with the private key and the certificate
// chain) and the truststore (PEM CA certificates); either may be "".
func New(keystore, truststore string) (*Source, error) {
	s := &Source{keystore: keystore, truststore: truststore}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads both files again; on any error the previous certificate and CAs stay.
func (s *Source) Reload() error {
	var mod time.Time
	var cert *tls.Certificate
	if s.keystore != "" {
		pem, err := os.ReadFile(s.keystore)
		if err != nil {
			return fmt.Errorf("ssl.keystore.location: %w", err)
		}
		// One PEM file holds the key and the chain, as with Kafka's PEM keystore.
		c, err := tls.X509KeyPair(pem, pem)
		if err != nil {
			return fmt.Errorf("ssl.keystore.location: %s: %w", s.keystore, err)
		}
		cert = &c
		if st, err := os.Stat(s.keystore); err == nil {
			mod = st.ModTime()
		}
	}
	var pool *x509.CertPool
	if s.truststore != "" {
		pem, err := os.ReadFile(s.truststore)
		if err != nil {
			return fmt.Errorf("ssl.truststore.location: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ssl.truststore.location: %s holds no PEM certificate", s.truststore)
		}
		if st, err := os.Stat(s.truststore); err == nil && st.ModTime().After(mod) {
			mod = st.ModTime()
		}
	}
	s.mu.Lock()
	s.cert, s.pool, s.modTime = cert, pool, mod
	s.mu.Unlock()
	return nil
}

// Changed reports whether either file changed on disk since it was last read.
func (s *Source) Changed() bool {
	s.mu.RLock()
	last := s.modTime
	s.mu.RUnlock()
	for _, p := range []string{s.keystore, s.truststore} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.ModTime().After(last) {
			return true
		}
	}
	return false
}

// Files are the keystore and truststore paths.
func (s *Source) Files() (keystore, truststore string) { return s.keystore, s.truststore }

func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, s.pool
}

// ServerConfig is the TLS configuration of a listener with the given ssl.client.auth.
func (s *Source) ServerConfig(clientAuth string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}, ClientCAs: pool}
			switch clientAuth {
			case "required":
				c.ClientAuth = tls.RequireAndVerifyClientCert
			case "requested":
				c.ClientAuth = tls.VerifyClientCertIfGiven
			}
			return c, nil
		},
	}
}

// ClientConfig is the TLS configuration a broker dials other brokers and controllers
// with: it presents its own certificate (for mTLS) and trusts the truststore's CAs.
func (s *Source) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		},
		// The server certificate is verified against the current truststore: RootCAs
		// cannot change after the config is made, so verification is done here.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := s.current()
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool(), DNSName: cs.ServerName}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		},
	}
}
