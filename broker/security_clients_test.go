package broker

import (
	"bytes"
	"context"
	"crypto/sha512"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/xdg-go/scram"
)

const kcatBin = "/usr/bin/kcat"

// kcat runs kcat against addr and returns stdout, stderr and whether it succeeded.
func kcat(t *testing.T, addr, stdin string, args ...string) (string, string, bool) {
	t.Helper()
	if _, err := exec.LookPath(kcatBin); err != nil {
		t.Skipf("kcat not installed at %s (apt-get install kcat; .ci/run installs it): %v", kcatBin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcatBin, append([]string{"-b", addr, "-X", "broker.address.family=v4", "-m", "15"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err == nil
}

// TestKcatSecurity drives librdkafka through kcat: SASL_SSL with SCRAM-SHA-512 and
// PLAIN (right and wrong passwords) and mTLS on an SSL listener that requires
// client certificates.
func TestKcatSecurity(t *testing.T) {
	pki := newTestPKI(t)
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0,MTLS://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL,MTLS:SSL"
		c.SSLKeystoreLocation = pki.server.Keystore
		c.SSLTruststoreLocation = pki.ca.CertFile
		c.SASLEnabledMechanisms = "PLAIN,SCRAM-SHA-512"
		c.ListenerOverrides = map[string]ListenerOverride{"mtls": {SSLClientAuth: "required"}}
		c.SSLPrincipalMappingRules = "RULE:^CN=([^,]*),.*$/$1/"
	})
	sasl := func(mech, pass string) []string {
		return []string{"-X", "security.protocol=SASL_SSL", "-X", "ssl.ca.location=" + pki.ca.CertFile,
			"-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=admin", "-X", "sasl.password=" + pass}
	}
	addr := b.ListenerAddr("CLIENT")
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			topic := "kcat-" + strings.ToLower(strings.ReplaceAll(mech, "-", ""))
			_, stderr, ok := kcat(t, addr, "k1:v1\nk2:v2\n", append(sasl(mech, "admin-secret"), "-P", "-t", topic, "-K:", "-X", "acks=all")...)
			require.True(t, ok, "produce: %s", stderr)
			out, stderr, ok := kcat(t, addr, "", append(sasl(mech, "admin-secret"), "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s\n")...)
			require.True(t, ok, "consume: %s", stderr)
			require.Equal(t, "k1:v1\nk2:v2\n", out)

			_, stderr, ok = kcat(t, addr, "", append(sasl(mech, "wrong"), "-L")...)
			require.False(t, ok)
			require.Contains(t, stderr, "Authentication failed", "librdkafka reports SASL_AUTHENTICATION_FAILED's message")
		})
	}

	t.Run("mTLS", func(t *testing.T) {
		client, err := pki.ca.Issue("kcat", "kcat-user", nil, time.Hour)
		require.NoError(t, err)
		mtls := b.ListenerAddr("MTLS")
		out, stderr, ok := kcat(t, mtls, "", "-X", "security.protocol=SSL", "-X", "ssl.ca.location="+pki.ca.CertFile,
			"-X", "ssl.certificate.location="+client.CertFile, "-X", "ssl.key.location="+client.KeyFile, "-L")
		require.True(t, ok, "metadata with a client certificate: %s", stderr)
		require.Contains(t, out, mtls, "Metadata names the MTLS listener's address")
		_, _, ok = kcat(t, mtls, "", "-X", "security.protocol=SSL", "-X", "ssl.ca.location="+pki.ca.CertFile, "-L")
		require.False(t, ok, "no client certificate")
	})
}

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	*scram.ClientConversation
	gen scram.HashGeneratorFcn
}

func (c *scramClient) Begin(user, pass, authzID string) error {
	cl, err := c.gen.NewClient(user, pass, authzID)
	if err != nil {
		return err
	}
	c.ClientConversation = cl.NewConversation()
	return nil
}

// TestSaramaSCRAMOverTLS: sarama with SCRAM-SHA-512 over TLS produces and consumes;
// a wrong password fails with SASL_AUTHENTICATION_FAILED.
func TestSaramaSCRAMOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	b, _ := startSecure(t, saslSSLConfig(pki, "SCRAM-SHA-512"))
	addr := b.ListenerAddr("CLIENT")
	cfg := func(pass string) *sarama.Config {
		c := sarama.NewConfig()
		c.Version = sarama.V3_6_0_0
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = pki.clientTLS(t, "")
		c.Net.SASL.Enable = true
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		c.Net.SASL.User, c.Net.SASL.Password = "admin", pass
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{gen: scram.HashGeneratorFcn(sha512.New)} }
		c.Producer.Return.Successes = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Metadata.Retry.Max = 1
		return c
	}
	prod, err := sarama.NewSyncProducer([]string{addr}, cfg("admin-secret"))
	require.NoError(t, err)
	defer prod.Close()
	partition, offset, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "sarama-scram", Value: sarama.StringEncoder("over tls")})
	require.NoError(t, err)

	cons, err := sarama.NewConsumer([]string{addr}, cfg("admin-secret"))
	require.NoError(t, err)
	defer cons.Close()
	pc, err := cons.ConsumePartition("sarama-scram", partition, offset)
	require.NoError(t, err)
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		require.Equal(t, "over tls", string(m.Value))
	case <-time.After(30 * time.Second):
		t.Fatal("no message consumed")
	}

	_, err = sarama.NewClient([]string{addr}, cfg("wrong"))
	require.ErrorIs(t, err, sarama.ErrSASLAuthenticationFailed)
}
