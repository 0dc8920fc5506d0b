package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// tlsSource holds the broker's certificate and trusted CAs, read from the PEM files of
// ssl.keystore.location and ssl.truststore.location, and hands out TLS configurations
// that always use the newest ones: reload swaps them in without a restart, for new
// connections (open ones keep the session they negotiated).
type tlsSource struct {
	keystore, truststore string

	mu      sync.RWMutex
	cert    *tls.Certificate
	pool    *x509.CertPool
	modTime time.Time // newest modification time of the two files when last read
}

func newTLSSource(keystore, truststore string) (*tlsSource, error) {
	s := &tlsSource{keystore: keystore, truststore: truststore}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads both files again; on any error the previous certificate and CAs stay.
func (s *tlsSource) reload() error {
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

// changed reports whether either file changed on disk since it was last read.
func (s *tlsSource) changed() bool {
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

func (s *tlsSource) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, s.pool
}

// serverConfig is the TLS configuration of a listener with the given ssl.client.auth.
func (s *tlsSource) serverConfig(clientAuth string) *tls.Config {
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

// clientConfig is the TLS configuration this broker dials other brokers and controllers
// with: it presents its own certificate (for mTLS) and trusts the truststore's CAs.
func (s *tlsSource) clientConfig() *tls.Config {
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

// principalRule is one rule of ssl.principal.mapping.rules.
type principalRule struct {
	isDefault   bool
	pattern     *regexp.Regexp
	replacement string
	caseChange  byte // 'L', 'U' or 0
}

// parsePrincipalRules parses Kafka's ssl.principal.mapping.rules:
// "RULE:pattern/replacement/[LU],...,DEFAULT". Patterns match the whole subject (Kafka
// uses Matcher.matches) and may contain commas; "\/" is a slash inside a pattern.
func parsePrincipalRules(s string) ([]principalRule, error) {
	var rules []principalRule
	rest := strings.TrimSpace(s)
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			break
		}
		switch {
		case strings.HasPrefix(rest, "DEFAULT"):
			rules = append(rules, principalRule{isDefault: true})
			rest = rest[len("DEFAULT"):]
		case strings.HasPrefix(rest, "RULE:"):
			rest = rest[len("RULE:"):]
			var parts [2]string
			for i := range parts {
				var b strings.Builder
				j := 0
				for ; j < len(rest); j++ {
					if rest[j] == '\\' && j+1 < len(rest) && rest[j+1] == '/' {
						b.WriteByte('/')
						j++
						continue
					}
					if rest[j] == '/' {
						break
					}
					b.WriteByte(rest[j])
				}
				if j >= len(rest) {
					return nil, fmt.Errorf("rule %q: missing /", "RULE:"+s)
				}
				parts[i] = b.String()
				rest = rest[j+1:]
			}
			re, err := regexp.Compile("^(?:" + parts[0] + ")$")
			if err != nil {
				return nil, fmt.Errorf("rule pattern %q: %w", parts[0], err)
			}
			r := principalRule{pattern: re, replacement: parts[1]}
			if rest != "" && (rest[0] == 'L' || rest[0] == 'U') {
				r.caseChange = rest[0]
				rest = rest[1:]
			}
			rules = append(rules, r)
		default:
			return nil, fmt.Errorf("%q is neither RULE:... nor DEFAULT", rest)
		}
		rest = strings.TrimLeft(rest, " ")
		if rest != "" && rest[0] != ',' {
			return nil, fmt.Errorf("unexpected %q after a rule", rest)
		}
	}
	return rules, nil
}

// mapPrincipal applies the rules to a certificate subject (RFC 2253 form, e.g.
// "CN=broker1,O=Sluice") and returns the principal name: the first matching rule
// wins, DEFAULT (and no rule at all) keeps the subject.
func mapPrincipal(rules []principalRule, subject string) (string, error) {
	if len(rules) == 0 {
		return subject, nil
	}
	for _, r := range rules {
		if r.isDefault {
			return subject, nil
		}
		m := r.pattern.FindStringSubmatchIndex(subject)
		if m == nil {
			continue
		}
		out := string(r.pattern.ExpandString(nil, r.replacement, subject, m))
		switch r.caseChange {
		case 'L':
			out = strings.ToLower(out)
		case 'U':
			out = strings.ToUpper(out)
		}
		return out, nil
	}
	return "", fmt.Errorf("no ssl.principal.mapping.rules rule matches %q", subject)
}
