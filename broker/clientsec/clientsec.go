// Package clientsec is how Sluice's own Kafka clients (the exporter, the ticket
// service's snapshot, `sluice users`) connect to a secured cluster: TLS and SASL
// settings with librdkafka's names, turned into franz-go options.
package clientsec

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicemq/sluice/internal/config"
)

// DefaultPasswordEnv is where the SASL password is read from when neither a password
// file nor another variable is named.
const DefaultPasswordEnv = "SLUICE_SASL_PASSWORD"

// Config is a Kafka client's security settings. The zero value is PLAINTEXT.
type Config struct {
	// SecurityProtocol is PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL,
	// librdkafka's security.protocol.
	SecurityProtocol string `yaml:"security.protocol"`
	// SSLCALocation is a PEM file of the CAs the brokers' certificates are checked
	// against; empty uses the system's.
	SSLCALocation string `yaml:"ssl.ca.location"`
	// SSLCertificateLocation and SSLKeyLocation are a client certificate and its key
	// (PEM), for listeners that require one (mTLS).
	SSLCertificateLocation string `yaml:"ssl.certificate.location"`
	SSLKeyLocation         string `yaml:"ssl.key.location"`
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default).
	SASLMechanism string `yaml:"sasl.mechanism"`
	// SASLUsername is the SASL user.
	SASLUsername string `yaml:"sasl.username"`
	// SASLPasswordFile or SASLPasswordEnv hold the password: a file (trailing
	// newline removed) or the name of an environment variable. Never the password
	// itself, so it stays out of files and process listings.
	SASLPasswordFile string `yaml:"sasl.password.file"`
	SASLPasswordEnv  string `yaml:"sasl.password.env"`
}

// RegisterFlags adds --security-protocol, --tls-ca, --tls-cert, --tls-key,
// --sasl-mechanism, --sasl-username, --sasl-password-file and --sasl-password-env.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.SecurityProtocol, "security-protocol", c.SecurityProtocol, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	fs.StringVar(&c.SSLCALocation, "tls-ca", c.SSLCALocation, "PEM file of the CAs that sign the brokers' certificates")
	fs.StringVar(&c.SSLCertificateLocation, "tls-cert", c.SSLCertificateLocation, "client certificate (PEM) for mTLS")
	fs.StringVar(&c.SSLKeyLocation, "tls-key", c.SSLKeyLocation, "client key (PEM) for mTLS")
	fs.StringVar(&c.SASLMechanism, "sasl-mechanism", c.SASLMechanism, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-512; alone it means --security-protocol SASL_PLAINTEXT)")
	fs.StringVar(&c.SASLUsername, "sasl-username", c.SASLUsername, "SASL user")
	fs.StringVar(&c.SASLPasswordFile, "sasl-password-file", c.SASLPasswordFile, "file holding the SASL password")
	fs.StringVar(&c.SASLPasswordEnv, "sasl-password-env", c.SASLPasswordEnv, "environment variable holding the SASL password (default "+DefaultPasswordEnv+")")
}

// ResolvePaths makes the relative file paths of a Config read from a configuration file relative
// to dir, that file's directory (paths from flags stay relative to the working directory).
func (c *Config) ResolvePaths(dir string) {
	for _, p := range []*string{&c.SSLCALocation, &c.SSLCertificateLocation, &c.SSLKeyLocation, &c.SASLPasswordFile} {
		*p = config.Path(dir, *p)
	}
}

func (c *Config) protocol() string {
	if c.SecurityProtocol == "" {
		if c.SASLMechanism != "" {
			return "SASL_PLAINTEXT" // a mechanism alone means SASL, as for kafka-acls.sh's users
		}
		return "PLAINTEXT"
	}
	return strings.ToUpper(c.SecurityProtocol)
}

// Validate names the first bad setting.
func (c *Config) Validate() error {
	p := c.protocol()
	switch p {
	case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
	default:
		return fmt.Errorf("security.protocol: %q is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", c.SecurityProtocol)
	}
	if (c.SSLCertificateLocation == "") != (c.SSLKeyLocation == "") {
		return fmt.Errorf("ssl.certificate.location, ssl.key.location: set both or neither")
	}
	if strings.HasPrefix(p, "SASL_") {
		switch strings.ToUpper(c.SASLMechanism) {
		case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return fmt.Errorf("sasl.mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
		}
		if c.SASLUsername == "" {
			return fmt.Errorf("sasl.username: required by %s", p)
		}
		if c.SASLPasswordFile != "" && c.SASLPasswordEnv != "" {
			return fmt.Errorf("sasl.password.file, sasl.password.env: not both")
		}
		if c.SASLPasswordFile == "" && c.SASLPasswordEnv == "" && os.Getenv(DefaultPasswordEnv) == "" {
			return fmt.Errorf("sasl.password.file, sasl.password.env: one is required by %s (or $%s)", p, DefaultPasswordEnv)
		}
	}
	return nil
}

// Opts are the franz-go options for these settings; nil for PLAINTEXT.
func (c *Config) Opts() ([]kgo.Opt, error) {
	tc, mech, err := c.Parts()
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// Parts are these settings as a TLS client configuration (nil without TLS) and a
// SASL mechanism (nil without SASL), for a client that speaks the protocol itself
// (the gateway's backend connections).
func (c *Config) Parts() (*tls.Config, sasl.Mechanism, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	p := c.protocol()
	var tc *tls.Config
	if p == "SSL" || p == "SASL_SSL" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.SSLCALocation != "" {
			pem, err := os.ReadFile(c.SSLCALocation)
			if err != nil {
				return nil, nil, fmt.Errorf("ssl.ca.location: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("ssl.ca.location: %s holds no PEM certificate", c.SSLCALocation)
			}
		}
		if c.SSLCertificateLocation != "" {
			cert, err := tls.LoadX509KeyPair(c.SSLCertificateLocation, c.SSLKeyLocation)
			if err != nil {
				return nil, nil, fmt.Errorf("ssl.certificate.location: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	if !strings.HasPrefix(p, "SASL_") {
		return tc, nil, nil
	}
	sec := config.Secret{FileKey: "sasl.password.file", EnvKey: "sasl.password.env", File: c.SASLPasswordFile, Env: c.SASLPasswordEnv}
	if sec.File == "" && sec.Env == "" {
		sec.Env = DefaultPasswordEnv
	}
	pass, err := sec.Read("")
	if err != nil {
		return nil, nil, err
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "PLAIN":
		return tc, plain.Auth{User: c.SASLUsername, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return tc, scram.Auth{User: c.SASLUsername, Pass: pass}.AsSha256Mechanism(), nil
	default:
		return tc, scram.Auth{User: c.SASLUsername, Pass: pass}.AsSha512Mechanism(), nil
	}
}
