package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/internal/testutil"
)

// Passwords of the secure cluster's users; the tests check none of them
// reaches the gateway's log or metrics.
var securePasswords = map[string]string{
	"admin":   "admin-Secret-1",
	"gateway": "gateway-Secret-2",
	"alice":   "alice-Secret-3",
	"bob":     "bob-Secret-4",
}

// startSecureCluster starts two in-process brokers whose client listener is
// SASL_PLAINTEXT (PLAIN and SCRAM), with the authorizer on, User:gateway in
// gateway.principals, and ACLs: alice owns topics and groups prefixed
// "alice-", bob "bob-", the gateway may describe every topic.
func startSecureCluster(t testing.TB, mutate ...func(*broker.Config)) *brokertest.Cluster {
	t.Helper()
	sc := brokertest.Start(t, brokertest.Config{
		Brokers:    2,
		Users:      securePasswords,
		Mechanisms: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
		Configure: func(c *broker.Config) {
			c.GatewayPrincipals = "User:gateway"
			for _, m := range mutate {
				m(c)
			}
		},
	})
	admin := kadm.NewClient(sc.AdminClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acls := []*kadm.ACLBuilder{
		// The gateway learns partition leaders and coordinators as itself.
		kadm.NewACLs().Allow("User:gateway").Topics("*").Groups("*").TransactionalIDs("*").
			Operations(kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral),
	}
	for _, u := range []string{"alice", "bob"} {
		acls = append(acls, kadm.NewACLs().Allow("User:"+u).Topics(u+"-").Groups(u+"-").TransactionalIDs(u+"-").
			Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternPrefixed))
	}
	for _, b := range acls {
		res, err := admin.CreateACLs(ctx, b)
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
	}
	for _, topic := range []string{"alice-t", "bob-t"} {
		res, err := admin.CreateTopic(ctx, 2, 2, nil, topic)
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
	return sc
}

func scramMech(user string, bits int) sasl.Mechanism {
	a := scram.Auth{User: user, Pass: securePasswords[user]}
	if bits == 256 {
		return a.AsSha256Mechanism()
	}
	return a.AsSha512Mechanism()
}

func plainMech(user, pass string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pass}.AsMechanism()
}

// startSecureGateway starts a SASL_PLAINTEXT gateway that logs in to the
// brokers as User:gateway; its log is returned.
func startSecureGateway(t *testing.T, sc *brokertest.Cluster, adjust ...func(*Config)) (*testGateway, *testutil.Buffer) {
	t.Helper()
	pass := sc.PasswordFile("gateway")
	g := startGateway(t, sc.Bootstrap(), append([]func(*Config){func(c *Config) {
		c.ClientSecurityProtocol = "SASL_PLAINTEXT"
		c.Backend = clientsec.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "SCRAM-SHA-512",
			SASLUsername: "gateway", SASLPasswordFile: pass}
		c.MetricsListen = "127.0.0.1:0"
	}}, adjust...)...)
	return g, g.logs
}

// gatewayClient is a client that knows only the gateway's address.
func gatewayClient(t *testing.T, g *testGateway, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, g.Addr(), append([]kgo.Opt{kgo.SASL(mech)}, opts...)...)
}

// TestGatewayAuthenticatesClients: franz-go clients authenticate through the
// gateway with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, and the brokers apply
// each client's ACLs: alice reads and writes her topic with a consumer group
// and is refused bob's, bob the other way round; a wrong password gets the
// broker's authentication error and no access.
func TestGatewayAuthenticatesClients(t *testing.T) {
	sc := startSecureCluster(t)
	g, logs := startSecureGateway(t, sc)
	ctx := testCtx(t, 2*time.Minute)

	for _, c := range []struct {
		name string
		mech sasl.Mechanism
		user string
	}{
		{"SCRAM-SHA-512", scramMech("alice", 512), "alice"},
		{"SCRAM-SHA-256", scramMech("bob", 256), "bob"},
		{"PLAIN", plainMech("alice", securePasswords["alice"]), "alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			own, other := c.user+"-t", "bob-t"
			if c.user == "bob" {
				other = "alice-t"
			}
			cl := gatewayClient(t, g, c.mech, kgo.DefaultProduceTopic(own), kgo.RecordRetries(3))
			var want []string
			for i := range 20 {
				v := fmt.Sprintf("%s-%s-%d", c.name, c.user, i)
				want = append(want, v)
				require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr())
			}
			// Another principal's topic: the broker refuses it as this client.
			err := cl.ProduceSync(ctx, &kgo.Record{Topic: other, Value: []byte("x")}).FirstErr()
			require.ErrorIs(t, err, kerr.TopicAuthorizationFailed, "writing %s as %s", other, c.user)

			cons := gatewayClient(t, g, c.mech, kgo.ConsumeTopics(own), kgo.ConsumerGroup(c.user+"-g-"+c.name),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := map[string]bool{}
			for len(got) < len(want) && ctx.Err() == nil {
				fs := cons.PollFetches(ctx)
				for _, e := range fs.Errors() {
					require.NoError(t, e.Err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if strings.HasPrefix(string(r.Value), c.name+"-") {
						got[string(r.Value)] = true
					}
				})
			}
			for _, v := range want {
				require.True(t, got[v], "record %s not consumed through the gateway", v)
			}
			require.NoError(t, cons.CommitUncommittedOffsets(ctx))

			// The other principal's group and topic: refused as this client.
			adm := kadm.NewClient(cl)
			_, err = adm.FetchOffsets(ctx, strings.TrimSuffix(other, "-t")+"-g")
			require.ErrorIs(t, err, kerr.GroupAuthorizationFailed)
			md, err := adm.Metadata(ctx)
			require.NoError(t, err)
			require.Contains(t, md.Topics.Names(), own)
			require.NotContains(t, md.Topics.Names(), other, "metadata lists only the client's own topics")
		})
	}

	t.Run("acks=0", func(t *testing.T) {
		// The Envelope is answered, the client is not: the gateway must not
		// wait for, nor send, an answer.
		adm := kadm.NewClient(gatewayClient(t, g, scramMech("alice", 512)))
		before, err := adm.ListEndOffsets(ctx, "alice-t")
		require.NoError(t, err)
		cl := gatewayClient(t, g, scramMech("alice", 512), kgo.DefaultProduceTopic("alice-t"),
			kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
		for range 10 {
			require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("acks0")}).FirstErr())
		}
		sum := func(o kadm.ListedOffsets) (n int64) {
			o.Each(func(l kadm.ListedOffset) { n += l.Offset })
			return n
		}
		testutil.WaitForErr(t, 30*time.Second, "ten acks=0 records written", func() (bool, error) {
			after, err := adm.ListEndOffsets(ctx, "alice-t")
			return err == nil && sum(after)-sum(before) == 10, err
		})
		require.NoError(t, cl.Ping(ctx), "the connection still works")
	})

	t.Run("wrong password", func(t *testing.T) {
		for _, mech := range []sasl.Mechanism{
			scram.Auth{User: "alice", Pass: "not-" + securePasswords["alice"]}.AsSha512Mechanism(),
			plainMech("alice", "not-"+securePasswords["alice"]),
			scram.Auth{User: "mallory", Pass: "whatever-Pass"}.AsSha512Mechanism(),
		} {
			cl := newClient(t, g.Addr(), kgo.SASL(mech), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
			_, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			require.ErrorIs(t, err, kerr.SaslAuthenticationFailed, mech.Name())
			err = cl.ProduceSync(testCtx(t, 5*time.Second), &kgo.Record{Topic: "alice-t", Value: []byte("x")}).FirstErr()
			require.Error(t, err)
		}
		require.GreaterOrEqual(t, counterValue(t, g.reg, "sluice_gateway_authentication_failures_total"), 3.0)
	})

	// No secret in the gateway's log or metrics.
	metrics := scrape(t, g.MetricsAddr())
	require.Contains(t, metrics, "sluice_gateway_authentications_total")
	for user, pass := range securePasswords {
		require.NotContains(t, logs.String(), pass, "%s's password in the gateway log", user)
		require.NotContains(t, metrics, pass, "%s's password in the gateway metrics", user)
	}
}

// scrape returns the text of a /metrics page.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := httpGet("http://" + addr + "/metrics")
	require.NoError(t, err)
	return resp
}

// TestGatewayClientQuota: a produce byte-rate quota for alice throttles alice
// through the gateway (the throttle time reaches her in the produce response)
// and not bob, who has none.
func TestGatewayClientQuota(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc)
	ctx := testCtx(t, 2*time.Minute)
	admin := kadm.NewClient(sc.AdminClient(t))
	rate := 1024.0
	res, err := admin.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: []kadm.ClientQuotaEntityComponent{{Type: "user", Name: new("alice")}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: rate}},
	}})
	require.NoError(t, err)
	for _, r := range res {
		require.NoError(t, r.Err)
	}

	throttled := func(user string) time.Duration {
		h := &throttleHook{}
		cl := gatewayClient(t, g, scramMech(user, 512), kgo.WithHooks(h), kgo.DefaultProduceTopic(user+"-t"),
			kgo.ProducerLinger(0))
		for i := range 4 {
			r := &kgo.Record{Partition: 0, Value: []byte(strings.Repeat(fmt.Sprint(i), 16<<10))}
			require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())
		}
		return h.most()
	}
	// The quota reaches the brokers' caches with the metadata; poll.
	testutil.WaitFor(t, 60*time.Second, "alice throttled through the gateway", func() bool { return throttled("alice") > 0 })
	require.Zero(t, throttled("bob"), "bob has no quota")
}

// throttleHook records the longest throttle time brokers (here: the gateway)
// answered with.
type throttleHook struct {
	mu      sync.Mutex
	longest time.Duration
}

func (h *throttleHook) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.longest = max(h.longest, d)
}

func (h *throttleHook) most() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.longest
}

// TestGatewaySASLBadInput: before authentication only ApiVersions and SASL are
// served, frames are limited to 512 KiB, a malformed SASL message fails the
// exchange; each closes that connection only. Connections that have not
// authenticated are bounded in number and in time.
func TestGatewaySASLBadInput(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc, func(c *Config) {
		c.MaxUnauthenticatedConnections = 3
		c.AuthenticationTimeout = 3 * time.Second
	})
	ctx := testCtx(t, 2*time.Minute)
	good := gatewayClient(t, g, scramMech("alice", 512))
	require.NoError(t, good.Ping(ctx))

	dial := func() net.Conn {
		c, err := net.Dial("tcp", g.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "PLAIN"
	auth := func(b []byte) []byte {
		r := kmsg.NewPtrSASLAuthenticateRequest()
		r.SetVersion(1)
		r.SASLAuthBytes = b
		return encode(r)
	}
	hsFrame := encode(hs)
	cases := map[string][][]byte{
		"metadata before authentication":  {encode(kmsg.NewPtrMetadataRequest())},
		"envelope before authentication":  {encode(kmsg.NewPtrEnvelopeRequest())},
		"oversized frame":                 {frame(18, 0, 1, make([]byte, 600<<10))},
		"SaslAuthenticate first":          {auth([]byte("\x00alice\x00x"))},
		"malformed PLAIN":                 {hsFrame, auth([]byte("no-nul-bytes"))},
		"oversized SASL message":          {hsFrame, auth(make([]byte, 70<<10))},
		"unrelayed mechanism OAUTHBEARER": {encode(&kmsg.SASLHandshakeRequest{Version: 1, Mechanism: "OAUTHBEARER"})},
		"SaslHandshake v0":                {encode(&kmsg.SASLHandshakeRequest{Version: 0, Mechanism: "PLAIN"})},
	}
	for name, frames := range cases {
		t.Run(name, func(t *testing.T) {
			c := dial()
			for _, f := range frames {
				_, err := c.Write(f)
				require.NoError(t, err)
			}
			expectEnds(t, c)
		})
	}
	require.NoError(t, good.Ping(ctx), "the authenticated client is unaffected")

	t.Run("re-authentication as another user", func(t *testing.T) {
		c := dial()
		rawPlainLogin(t, c, "bob", securePasswords["bob"], false)
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.SetVersion(1)
		hs.Mechanism = "PLAIN"
		_, err := c.Write(encode(hs))
		require.NoError(t, err)
		_, err = readFrame(c)
		require.NoError(t, err)
		_, err = c.Write(auth([]byte("\x00alice\x00" + securePasswords["alice"])))
		require.NoError(t, err)
		body, err := readFrame(c)
		require.NoError(t, err)
		ar := kmsg.NewPtrSASLAuthenticateResponse()
		ar.SetVersion(1)
		require.NoError(t, ar.ReadFrom(body[4:]))
		require.Equal(t, kerr.SaslAuthenticationFailed.Code, ar.ErrorCode)
		require.Contains(t, *ar.ErrorMessage, "Cannot change principals")
		expectEnds(t, c)
	})

	// Three connections that do not authenticate hold every slot: a fourth is
	// closed at once; after the timeout they are closed and slots free again.
	idle := []net.Conn{dial(), dial(), dial()}
	testutil.WaitFor(t, 30*time.Second, "a fourth unauthenticated connection refused", func() bool {
		c := dial()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return errors.Is(err, io.EOF)
	})
	require.Positive(t, counterValue(t, g.reg, "sluice_gateway_unauthenticated_rejected_total"))
	for _, c := range idle {
		expectClosed(t, c) // the authentication timeout
	}
	fresh := gatewayClient(t, g, scramMech("bob", 512))
	require.NoError(t, fresh.Ping(ctx))
}

// TestGatewayReauthentication: with connections.max.reauth.ms the brokers'
// session lifetime binds clients at the gateway: franz-go re-authenticates
// through it (KIP-368) and keeps producing; once alice's credentials are
// removed her next re-authentication fails and she loses access, and a client
// that never re-authenticates is disconnected when its session ends.
func TestGatewayReauthentication(t *testing.T) {
	sc := startSecureCluster(t, func(c *broker.Config) { c.ConnectionsMaxReauthMs = 3000 })
	g, _ := startSecureGateway(t, sc)
	ctx := testCtx(t, 2*time.Minute)
	cl := gatewayClient(t, g, scramMech("alice", 512), kgo.DefaultProduceTopic("alice-t"), kgo.RecordRetries(2))
	deadline := time.Now().Add(8 * time.Second) // more than two sessions
	for time.Now().Before(deadline) {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("r")}).FirstErr())
	}

	// A raw client authenticates once and never again: after its session
	// it is disconnected.
	c, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer c.Close()
	rawPlainLogin(t, c, "bob", securePasswords["bob"], true)
	testutil.WaitFor(t, 30*time.Second, "the expired session closed", func() bool {
		if _, err := c.Write(encode(kmsg.NewPtrMetadataRequest())); err != nil {
			return true
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := readFrame(c)
		return err != nil
	})

	admin := kadm.NewClient(sc.AdminClient(t))
	res, err := admin.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "alice", Mechanism: kadm.ScramSha512},
		{User: "alice", Mechanism: kadm.ScramSha256}}, nil)
	require.NoError(t, err)
	require.NoError(t, res.Error())
	testutil.WaitFor(t, 60*time.Second, "alice loses access through the gateway", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return cl.ProduceSync(pctx, &kgo.Record{Value: []byte("r")}).FirstErr() != nil
	})
}

// rawPlainLogin authenticates a raw connection with PLAIN.
func rawPlainLogin(t *testing.T, c net.Conn, user, pass string, lifetime bool) {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "PLAIN"
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.SetVersion(1)
	au.SASLAuthBytes = []byte("\x00" + user + "\x00" + pass)
	for _, req := range []kmsg.Request{hs, au} {
		_, err := c.Write(encode(req))
		require.NoError(t, err)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		body, err := readFrame(c)
		require.NoError(t, err)
		resp := req.ResponseKind()
		require.NoError(t, resp.ReadFrom(body[4:]))
		switch r := resp.(type) {
		case *kmsg.SASLHandshakeResponse:
			require.Zero(t, r.ErrorCode)
		case *kmsg.SASLAuthenticateResponse:
			require.Zero(t, r.ErrorCode)
			if lifetime {
				require.Positive(t, r.SessionLifetimeMillis)
			}
		}
	}
}

// expectEnds checks that the gateway closes conn, after answering or not.
func expectEnds(t *testing.T, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the connection was not closed: %v", err)
}

// readFrame reads one size-prefixed frame.
func readFrame(c net.Conn) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return nil, err
	}
	n := int(size[0])<<24 | int(size[1])<<16 | int(size[2])<<8 | int(size[3])
	body := make([]byte, n)
	_, err := io.ReadFull(c, body)
	return body, err
}

// httpGet returns a page's body.
func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestGatewayTenantMetering: a tenant whose principal is alice is metered for
// what alice produces through the gateway (the brokers see alice, not the
// gateway), and the per-principal series name alice.
func TestGatewayTenantMetering(t *testing.T) {
	sc := startSecureCluster(t)
	g, _ := startSecureGateway(t, sc)
	ctx := testCtx(t, 2*time.Minute)
	admin := sc.AdminAPI()
	_, err := admin.PutPlan(ctx, adminapi.Plan{Name: "standard", Partitions: 100})
	require.NoError(t, err)
	_, err = admin.PutTenant(ctx, adminapi.Tenant{Name: "pay", Plan: "standard", Principals: []string{"User:alice"}, Prefixes: []string{"alice-"}})
	require.NoError(t, err)
	testutil.WaitFor(t, 30*time.Second, "both brokers know the tenant", func() bool {
		return sc.Metric(t, "sluice_tenant_plan_partitions", "plan", "standard", "tenant", "pay") == 2*100
	})
	before := sc.Metric(t, "sluice_tenant_bytes_in_total", "tenant", "pay")
	cl := gatewayClient(t, g, scramMech("alice", 512), kgo.DefaultProduceTopic("alice-t"))
	value := make([]byte, 10<<10)
	_, _ = rand.Read(value) // incompressible: the meter counts batch bytes
	for range 20 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr())
	}
	defer func() {
		if t.Failed() {
			for _, b := range sc.Brokers {
				page, _ := httpGet("http://" + b.MetricsAddr() + "/metrics")
				for _, line := range strings.Split(page, "\n") {
					if strings.Contains(line, "pay") || strings.Contains(line, "alice") {
						t.Log(line)
					}
				}
			}
		}
	}()
	testutil.WaitFor(t, 30*time.Second, "alice's bytes metered to her tenant", func() bool {
		return sc.Metric(t, "sluice_tenant_bytes_in_total", "tenant", "pay")-before >= 20*10<<10
	})
	require.Positive(t, sc.Metric(t, "sluice_principal_topic_bytes_in_total", "principal", "User:alice", "topic", "alice-t"))
	require.Zero(t, sc.Metric(t, "sluice_principal_topic_bytes_in_total", "principal", "User:gateway"), "nothing is metered to the gateway")
}

// TestAuthConfig: the client authentication settings are validated, each error
// naming its flag; an authenticating gateway may bind any address, and must
// itself authenticate to the brokers.
func TestAuthConfig(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(pass, []byte("secret\n"), 0o600))
	backend := clientsec.Config{SecurityProtocol: "SASL_PLAINTEXT", SASLMechanism: "SCRAM-SHA-512", SASLUsername: "gateway", SASLPasswordFile: pass}
	for _, c := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"unknown protocol", Config{ClientSecurityProtocol: "SSL"}, "--client-security-protocol \"SSL\""},
		{"SASL_SSL without a keystore", Config{ClientSecurityProtocol: "SASL_SSL"}, "--ssl-keystore-location"},
		{"a keystore without SASL_SSL", Config{SSLKeystoreLocation: "/k.pem"}, "--ssl-keystore-location"},
		{"unreadable keystore", Config{ClientSecurityProtocol: "SASL_SSL", SSLKeystoreLocation: pass, Backend: backend}, "--ssl-keystore-location"},
		{"no backend credentials", Config{ClientSecurityProtocol: "SASL_PLAINTEXT"}, "must authenticate to the brokers"},
		{"unauthenticated bound", Config{ClientSecurityProtocol: "SASL_PLAINTEXT", MaxUnauthenticatedConnections: -1}, "--max-unauthenticated-connections"},
		{"authentication timeout", Config{ClientSecurityProtocol: "SASL_PLAINTEXT", AuthenticationTimeout: time.Millisecond}, "--authentication-timeout"},
		{"plaintext on every address", Config{Listen: "0.0.0.0:0"}, "--listen"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			if cfg.Listen == "" {
				cfg.Listen = "127.0.0.1:0"
			}
			cfg.Bootstrap = []string{"127.0.0.1:1"}
			_, err := New(cfg, slog.New(slog.DiscardHandler), nil)
			require.ErrorContains(t, err, c.err)
		})
	}
	g, err := New(Config{Listen: "0.0.0.0:0", Bootstrap: []string{"127.0.0.1:1"}, ClientSecurityProtocol: "SASL_PLAINTEXT", Backend: backend},
		slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err, "an authenticating gateway binds any address")
	g.ln.Close()
}
