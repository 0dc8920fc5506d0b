package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicemq/sluice/internal/testutil"

	"github.com/sluicemq/sluice/stack/localca"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and client certificates.
type testPKI struct {
	ca     *localca.CA
	server localca.Pair
	dir    string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := localca.New(dir, "test CA", 24*time.Hour)
	require.NoError(t, err)
	server, err := ca.Issue("server", "broker1", []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	require.NoError(t, err)
	return &testPKI{ca: ca, server: server, dir: dir}
}

// clientTLS trusts the CA and, with a non-empty cn, presents a client certificate.
func (p *testPKI) clientTLS(t testing.TB, cn string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(p.ca.CertFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cn != "" {
		pair, err := p.ca.Issue("client-"+cn, cn, nil, time.Hour)
		require.NoError(t, err)
		cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// startSecure starts a broker configured by mod on a fresh data dir, with an admin
// SCRAM-SHA-512 user whose password comes from a file, and returns it with its log.
func startSecure(t *testing.T, mod func(*Config)) (*Broker, *testutil.Buffer) {
	t.Helper()
	dir := t.TempDir()
	pass := filepath.Join(dir, "admin.pass")
	require.NoError(t, os.WriteFile(pass, []byte("admin-secret\n"), 0o600))
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.OffsetsTopicNumPartitions = 1
	cfg.InitialSCRAMUsers = []InitialSCRAMUser{{Name: "admin", PasswordFile: pass}}
	mod(&cfg)
	logs := &testutil.Buffer{}
	b, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("broker did not stop")
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	select {
	case <-b.Ready():
	case <-time.After(20 * time.Second):
		t.Fatalf("broker not ready; log:\n%s", logs.String())
	}
	// The initial credentials are written by the first controller term.
	testutil.WaitFor(t, 10*time.Second, "the initial SCRAM user in the metadata", func() bool { _, ok := b.quorum.Image().Scram("admin", mechSCRAM512); return ok })
	return b, logs
}

func saslSSLConfig(pki *testPKI, mechanisms string) func(*Config) {
	return func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL"
		c.SSLKeystoreLocation = pki.server.Keystore
		c.SSLTruststoreLocation = pki.ca.CertFile
		c.SASLEnabledMechanisms = mechanisms
	}
}

// ping connects with the options and asks for metadata.
func ping(t *testing.T, opts ...kgo.Opt) error {
	t.Helper()
	cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))...)
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	return err
}

func TestSASLSSLMechanisms(t *testing.T) {
	pki := newTestPKI(t)
	b, logs := startSecure(t, saslSSLConfig(pki, "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"))
	addr := b.ListenerAddr("CLIENT")
	tlsCfg := pki.clientTLS(t, "")
	client := func(m sasl.Mechanism) []kgo.Opt {
		return []kgo.Opt{kgo.SeedBrokers(addr), kgo.DialTLSConfig(tlsCfg.Clone()), kgo.SASL(m)}
	}
	good512 := scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()

	t.Run("scram-sha-512 right password", func(t *testing.T) {
		require.NoError(t, ping(t, client(good512)...))
	})
	t.Run("scram-sha-512 wrong password", func(t *testing.T) {
		err := ping(t, client(scram.Auth{User: "admin", Pass: "nope"}.AsSha512Mechanism())...)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	})
	t.Run("scram-sha-256 without a 256 credential", func(t *testing.T) {
		err := ping(t, client(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism())...)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	})
	t.Run("plain right and wrong", func(t *testing.T) {
		require.NoError(t, ping(t, client(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())...))
		err := ping(t, client(plain.Auth{User: "admin", Pass: "admin-secret2"}.AsMechanism())...)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
		err = ping(t, client(plain.Auth{User: "mallory", Pass: "x"}.AsMechanism())...)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	})
	t.Run("no sasl", func(t *testing.T) {
		err := ping(t, kgo.SeedBrokers(addr), kgo.DialTLSConfig(tlsCfg.Clone()))
		require.Error(t, err)
	})
	t.Run("no tls", func(t *testing.T) {
		require.Error(t, ping(t, kgo.SeedBrokers(addr), kgo.SASL(good512)))
	})

	t.Run("users managed through the Kafka API", func(t *testing.T) {
		cl, err := kgo.NewClient(client(good512)...)
		require.NoError(t, err)
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
			{User: "alice", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-pw"},
		})
		require.NoError(t, err)
		require.NoError(t, res["alice"].Err)
		// kadm checks iterations itself; the broker must too.
		bad := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "bob", 1, 100, []byte("salt"), bytes.Repeat([]byte{1}, 32)
		bad.Upsertions = append(bad.Upsertions, up, up)
		up.Name, up.Iterations = "carl", 4096
		bad.Upsertions = append(bad.Upsertions, up)
		badResp, err := bad.RequestWith(ctx, cl)
		require.NoError(t, err)
		require.Len(t, badResp.Results, 2)
		require.Equal(t, kerr.UnacceptableCredential.Code, badResp.Results[0].ErrorCode)
		require.Equal(t, int16(0), badResp.Results[1].ErrorCode)

		require.NoError(t, ping(t, client(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism())...))
		require.ErrorIs(t, ping(t, client(scram.Auth{User: "bob", Pass: "bob-pw"}.AsSha256Mechanism())...), kerr.SaslAuthenticationFailed)

		desc, err := adm.DescribeUserSCRAMs(ctx)
		require.NoError(t, err)
		require.Contains(t, desc, "alice")
		require.Contains(t, desc, "admin")
		require.NotContains(t, desc, "bob")
		require.Equal(t, int32(4096), desc["alice"].CredInfos[0].Iterations)

		del, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha256}, {User: "carol", Mechanism: kadm.ScramSha256}}, nil)
		require.NoError(t, err)
		require.NoError(t, del["alice"].Err)
		require.ErrorIs(t, del["carol"].Err, kerr.ResourceNotFound)
		require.ErrorIs(t, ping(t, client(scram.Auth{User: "alice", Pass: "alice-pw"}.AsSha256Mechanism())...), kerr.SaslAuthenticationFailed)
	})

	failures := promtestutil.ToFloat64(b.sec.authFailed.WithLabelValues("CLIENT", mechSCRAM512))
	require.GreaterOrEqual(t, failures, 1.0)
	require.Contains(t, logs.String(), "authentication failed")
	require.Contains(t, logs.String(), "remote=127.0.0.1:")
	for _, secret := range []string{"admin-secret", "admin-secret2", "alice-pw", "nope"} {
		require.NotContains(t, logs.String(), secret, "a password in the log")
	}
}

// TestRequestsBeforeAuthentication: on a SASL listener only ApiVersions,
// SaslHandshake and SaslAuthenticate are served before authentication; anything else
// closes the connection without an answer.
func TestRequestsBeforeAuthentication(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
	})
	p := newPeer(b.ListenerAddr("CLIENT"), "attacker")
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "t", "1"
	_, err := p.request(ctx, av)
	require.NoError(t, err)
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 12
	_, err = p.request(ctx, md)
	require.Error(t, err, "Metadata before authentication must close the connection")

	reg := kmsg.NewPtrBrokerRegistrationRequest()
	reg.BrokerID, reg.ClusterID = 99, b.cfg.ClusterID
	_, err = p.request(ctx, reg)
	require.Error(t, err)
	_, ok := b.quorum.Image().Brokers[99]
	require.False(t, ok)
}

func TestListenerConfigErrors(t *testing.T) {
	cases := []struct {
		name, field string
		mod         func(*Config)
	}{
		{"plaintext on every interface", "listeners", func(c *Config) { c.Listen = "0.0.0.0:9092" }},
		{"explicit plaintext on every interface", "listeners", func(c *Config) {
			c.Listeners = "PLAINTEXT://:9092"
		}},
		{"ssl without client auth on every interface", "listeners", func(c *Config) {
			c.Listeners, c.SSLKeystoreLocation = "SSL://0.0.0.0:9093", "k.pem"
		}},
		{"no protocol", "listener.security.protocol.map", func(c *Config) { c.Listeners = "CLIENT://127.0.0.1:1" }},
		{"bad protocol", "listener.security.protocol.map", func(c *Config) {
			c.Listeners, c.ListenerSecurityProtocolMap = "CLIENT://127.0.0.1:1", "CLIENT:TLS"
		}},
		{"ssl without keystore", "ssl.keystore.location", func(c *Config) { c.Listeners = "SSL://127.0.0.1:1" }},
		{"bad client auth", "ssl.client.auth", func(c *Config) { c.SSLClientAuth = "maybe" }},
		{"bad mechanism", "sasl.enabled.mechanisms", func(c *Config) { c.SASLEnabledMechanisms = "GSSAPI" }},
		{"unknown inter-broker listener", "inter.broker.listener.name", func(c *Config) {
			c.Listeners, c.InterBrokerListenerName = "PLAINTEXT://127.0.0.1:1", "BROKER"
		}},
		{"authenticated inter-broker listener without principals", "broker.principals", func(c *Config) {
			c.Listeners, c.InterBrokerListenerName = "SASL_PLAINTEXT://127.0.0.1:1", "SASL_PLAINTEXT"
			c.SASLInterBrokerUsername, c.SASLInterBrokerPasswordFile = "b", "f"
		}},
		{"oauthbearer without jwks", "sasl.oauthbearer.jwks.endpoint.url", func(c *Config) {
			c.Listeners, c.SASLEnabledMechanisms = "SASL_PLAINTEXT://127.0.0.1:1", "OAUTHBEARER"
		}},
		{"unsecured tokens off loopback", "sasl.oauthbearer.unsecured.tokens.enable", func(c *Config) {
			c.Listeners, c.SASLEnabledMechanisms = "SASL_PLAINTEXT://0.0.0.0:1", "OAUTHBEARER"
			c.OAuthBearer.UnsecuredTokens = true
		}},
		{"initial user without password", "scram.initial.users[0]", func(c *Config) {
			c.InitialSCRAMUsers = []InitialSCRAMUser{{Name: "admin"}}
		}},
		{"bad principal rule", "ssl.principal.mapping.rules", func(c *Config) { c.SSLPrincipalMappingRules = "RULE:^CN=(.*)$" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tc.field), "error %q does not start with %q", err, tc.field)
		})
	}
}

func TestPrincipalMappingRules(t *testing.T) {
	rules, err := parsePrincipalRules(`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=([^,]*),O=(.*)$/$1@$2/L,DEFAULT`)
	require.NoError(t, err)
	for subject, want := range map[string]string{
		"CN=kafka-client,OU=ServiceUsers,O=Example": "kafka-client",
		"CN=Broker1,O=Sluice":                       "broker1@sluice",
		"OU=x,CN=y":                                 "OU=x,CN=y",
	} {
		got, err := mapPrincipal(rules, subject)
		require.NoError(t, err)
		require.Equal(t, want, got, subject)
	}
	rules, err = parsePrincipalRules(`RULE:^CN=a\/b$/ab/U`)
	require.NoError(t, err)
	got, err := mapPrincipal(rules, "CN=a/b")
	require.NoError(t, err)
	require.Equal(t, "AB", got)
	_, err = mapPrincipal(rules, "CN=c")
	require.Error(t, err, "no rule matches and no DEFAULT")
}

var _ = errors.New

// unsecuredJWT is an {"alg":"none"} token with the given claims.
func unsecuredJWT(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + "."
}

func TestOAuthBearerUnsecuredTokens(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "OAUTHBEARER"
		c.OAuthBearer.UnsecuredTokens = true
	})
	addr := b.ListenerAddr("CLIENT")
	tok := func(exp time.Time) kgo.Opt {
		return kgo.SASL(oauth.Auth{Token: unsecuredJWT(fmt.Sprintf(`{"sub":"admin","exp":%d}`, exp.Unix()))}.AsMechanism())
	}
	require.NoError(t, ping(t, kgo.SeedBrokers(addr), tok(time.Now().Add(time.Hour))))
	err := ping(t, kgo.SeedBrokers(addr), tok(time.Now().Add(-time.Hour)))
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	require.Contains(t, err.Error(), "invalid_token")
	err = ping(t, kgo.SeedBrokers(addr), kgo.SASL(oauth.Auth{Token: unsecuredJWT(`{"sub":"admin"}`)}.AsMechanism()))
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed, "a token without exp")
}

func TestOAuthBearerJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	raw, err := json.Marshal(jwks)
	require.NoError(t, err)
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(jwksFile, raw, 0o644))

	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "OAUTHBEARER,SCRAM-SHA-512"
		c.OAuthBearer = OAuthBearerConfig{JWKSEndpointURL: "file://" + jwksFile, ExpectedIssuer: "https://idp.example", ExpectedAudience: "sluice"}
	})
	addr := b.ListenerAddr("CLIENT")
	sign := func(k *ecdsa.PrivateKey, kid string, claims map[string]any) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid))
		require.NoError(t, err)
		s, err := jwt.Signed(signer).Claims(claims).Serialize()
		require.NoError(t, err)
		return s
	}
	claims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "svc-orders", "iss": "https://idp.example", "aud": "sluice", "exp": time.Now().Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	try := func(token string) error {
		return ping(t, kgo.SeedBrokers(addr), kgo.SASL(oauth.Auth{Token: token}.AsMechanism()))
	}
	require.NoError(t, try(sign(key, "k1", claims(nil))))
	for name, token := range map[string]string{
		"expired":        sign(key, "k1", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })),
		"wrong issuer":   sign(key, "k1", claims(func(c map[string]any) { c["iss"] = "https://evil.example" })),
		"wrong audience": sign(key, "k1", claims(func(c map[string]any) { c["aud"] = "other" })),
		"unknown key":    sign(other, "k1", claims(nil)),
		"unsigned":       unsecuredJWT(`{"sub":"svc-orders","iss":"https://idp.example","aud":"sluice","exp":4102444800}`),
		"no subject":     sign(key, "k1", claims(func(c map[string]any) { delete(c, "sub") })),
	} {
		err := try(token)
		require.ErrorIs(t, err, kerr.SaslAuthenticationFailed, name)
		require.Contains(t, err.Error(), "invalid_token", name)
	}
}

// TestReauthentication: with connections.max.reauth.ms the broker announces the
// session lifetime (KIP-368); franz-go re-authenticates in time and keeps working, and
// a connection that does not is closed at its next request after the deadline.
func TestReauthentication(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.ConnectionsMaxReauthMs = 1500
	})
	addr := b.ListenerAddr("CLIENT")
	mech := scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()
	cl := newClient(t, addr, kgo.SASL(mech))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := promtestutil.ToFloat64(b.sec.authOK.WithLabelValues("CLIENT", mechSCRAM512))
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		require.NoError(t, err)
		time.Sleep(100 * time.Millisecond)
	}
	require.Greater(t, promtestutil.ToFloat64(b.sec.authOK.WithLabelValues("CLIENT", mechSCRAM512)), before+1, "re-authenticated")

	a := newAttacker(t, addr, nil)
	require.NoError(t, saslClientAuth(a, "admin", "admin-secret"))
	a.do(kmsg.NewPtrMetadataRequest())
	testutil.WaitFor(t, 10*time.Second, "the broker to close the connection", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := a.p.request(ctx, kmsg.NewPtrMetadataRequest())
		return err != nil
	})
}

// TestSASLHandshakeV0RawTokens: after SaslHandshake v0 the exchange continues in raw
// length-prefixed SASL frames (old clients), then Kafka requests follow.
func TestSASLHandshakeV0RawTokens(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "PLAIN"
	})
	for _, tc := range []struct {
		pass string
		ok   bool
	}{{"admin-secret", true}, {"wrong", false}} {
		a := newAttacker(t, b.ListenerAddr("CLIENT"), nil)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 0, "PLAIN"
		require.Equal(t, int16(0), a.do(hs).(*kmsg.SASLHandshakeResponse).ErrorCode)
		token := []byte("\x00admin\x00" + tc.pass)
		frame := append([]byte{0, 0, 0, byte(len(token))}, token...)
		_, err := a.p.nc.Write(frame)
		require.NoError(t, err)
		a.p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var size [4]byte
		_, err = io.ReadFull(a.p.r, size[:])
		if !tc.ok {
			require.Error(t, err, "a failed raw exchange closes the connection")
			continue
		}
		require.NoError(t, err)
		require.Equal(t, [4]byte{}, size, "PLAIN's answer is an empty token")
		md := kmsg.NewPtrMetadataRequest()
		md.Version = 1
		a.do(md)
	}
}

// TestTLSReload: a new keystore on disk is served to new connections after a reload,
// and a broken one keeps the previous certificate.
func TestTLSReload(t *testing.T) {
	pki := newTestPKI(t)
	keystore := filepath.Join(t.TempDir(), "keystore.pem")
	copyFile := func(src string) {
		raw, err := os.ReadFile(src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(keystore+".tmp", raw, 0o600))
		require.NoError(t, os.Rename(keystore+".tmp", keystore))
	}
	copyFile(pki.server.Keystore)
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL"
		c.SSLKeystoreLocation, c.SSLTruststoreLocation = keystore, pki.ca.CertFile
	})
	served := func() string {
		conn, err := tls.Dial("tcp", b.ListenerAddr("CLIENT"), pki.clientTLS(t, ""))
		require.NoError(t, err)
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "broker1", served())
	next, err := pki.ca.Issue("rotated", "broker1-rotated", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	copyFile(next.Keystore)
	require.NoError(t, b.ReloadTLS())
	require.Equal(t, "broker1-rotated", served())

	require.NoError(t, os.WriteFile(keystore, []byte("not a pem file"), 0o600))
	require.Error(t, b.ReloadTLS())
	require.Equal(t, "broker1-rotated", served(), "a broken keystore keeps the previous certificate")
}
