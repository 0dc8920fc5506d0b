package stack

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/stack/localca"
)

// secureSetup is what `sluice dev --secure` adds: a local CA with a certificate for
// the brokers, and the Kafka user admin with a generated password, all under
// DataDir/secure and kept across restarts.
type secureSetup struct {
	dir, caFile, keystore, passFile string
}

// prepareSecure makes (or reuses) the CA, the brokers' certificate and the admin's
// password file.
func prepareSecure(cfg Config) (*secureSetup, error) {
	dir := filepath.Join(cfg.DataDir, "secure")
	s := &secureSetup{
		dir:      dir,
		caFile:   filepath.Join(dir, "ca.pem"),
		keystore: filepath.Join(dir, "broker-keystore.pem"),
		passFile: filepath.Join(dir, "admin.password"),
	}
	if _, err := os.Stat(s.keystore); errors.Is(err, fs.ErrNotExist) {
		ca, err := localca.New(dir, "Sluice dev CA", 5*365*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("secure: %w", err)
		}
		if _, err := ca.Issue("broker", "sluice-dev-broker", []string{cfg.Host, "localhost"}, 5*365*24*time.Hour); err != nil {
			return nil, fmt.Errorf("secure: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.passFile); errors.Is(err, fs.ErrNotExist) {
		pw := make([]byte, 18)
		rand.Read(pw)
		if err := os.WriteFile(s.passFile, []byte(base64.RawURLEncoding.EncodeToString(pw)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("secure: %w", err)
		}
	} else if err != nil {
		return nil, err
	}
	return s, nil
}

// broker turns a broker's plaintext configuration into SASL_SSL on the same address.
func (s *secureSetup) broker(bc *broker.Config) {
	bc.Listeners = "CLIENT://" + bc.Listen
	bc.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL"
	bc.SSLKeystoreLocation, bc.SSLTruststoreLocation = s.keystore, s.caFile
	bc.SASLEnabledMechanisms = "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
	bc.InitialSCRAMUsers = []broker.InitialSCRAMUser{{Name: "admin", Mechanism: "SCRAM-SHA-512", PasswordFile: s.passFile}}
	// ACLs on, as in production: only admin may do anything until it grants ACLs. The
	// brokers reach each other on the loopback-only BROKER listener, unauthenticated,
	// so their principal there, User:ANONYMOUS, needs CLUSTER_ACTION; no client
	// listener ever yields that principal, as CLIENT authenticates everyone.
	bc.AuthorizerClassName = broker.StandardAuthorizer
	bc.SuperUsers = "User:admin;User:ANONYMOUS"
}

// client is how the stack's own clients (exporter, snapshots) connect.
func (s *secureSetup) client() clientsec.Config {
	return clientsec.Config{SecurityProtocol: "SASL_SSL", SSLCALocation: s.caFile, SASLMechanism: "SCRAM-SHA-512",
		SASLUsername: "admin", SASLPasswordFile: s.passFile}
}

// kcatLine is how to connect with kcat.
func (s *secureSetup) kcatLine(bootstrap string) string {
	return fmt.Sprintf("kcat -b %s -X security.protocol=SASL_SSL -X ssl.ca.location=%s -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=admin -X sasl.password=\"$(cat %s)\" -L",
		bootstrap, s.caFile, s.passFile)
}
