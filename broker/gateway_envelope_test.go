package broker

import (
	"context"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	envelopepkg "github.com/sluicemq/sluice/broker/envelope"
	"github.com/sluicemq/sluice/internal/testutil"
)

// oneRecordBatch is a valid v2 record batch of one record.
func oneRecordBatch(value string) []byte {
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{Magic: 2, NumRecords: 1, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		FirstTimestamp: now, MaxTimestamp: now}
	rec := kmsg.Record{Value: []byte(value)}
	rb.Records = rec.AppendTo(nil)
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12)
	raw = rb.AppendTo(nil)
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(nil)
}

// TestGatewayEnvelopes checks the rules of Envelopes on a client listener: only
// gateway.principals may send them; the request inside, data path included, is
// served and authorized as the principal it names; SASL, ApiVersions, another
// Envelope and broker-only APIs never travel inside; a principal that is not a
// gateway's (a client forging one) gets CLUSTER_AUTHORIZATION_FAILED and
// nothing is written.
func TestGatewayEnvelopes(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "SCRAM-SHA-512"
		c.AuthorizerClassName = StandardAuthorizer
		c.SuperUsers = "User:admin"
		c.GatewayPrincipals = "User:gateway; User:other-gateway"
	})
	addr := b.ListenerAddr("CLIENT")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	login := func(user, pass string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
			kgo.RequestRetries(0))
		require.NoError(t, err)
		t.Cleanup(cl.Close)
		return cl
	}
	admin := kadm.NewClient(login("admin", "admin-secret"))
	users, err := admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "gateway", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "gateway-pass"},
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pass"},
	})
	require.NoError(t, err)
	require.NoError(t, users.Error())
	acls, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("alice-").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpAll))
	require.NoError(t, err)
	for _, r := range acls {
		require.NoError(t, r.Err)
	}
	for _, topic := range []string{"alice-t", "bob-t"} {
		res, err := admin.CreateTopic(ctx, 1, 1, nil, topic)
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
	gw := login("gateway", "gateway-pass")
	alice := login("alice", "alice-pass")
	testutil.WaitForErr(t, 30*time.Second, "the gateway user logs in", func() (bool, error) { return gw.Ping(ctx) == nil, gw.Ping(ctx) })

	produce := func(topic, value string) *kmsg.ProduceRequest {
		req := kmsg.NewPtrProduceRequest()
		req.Version = 9
		req.Acks = -1
		req.TimeoutMillis = 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = oneRecordBatch(value)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return req
	}
	send := func(from *kgo.Client, inner kmsg.Request, principal string) *kmsg.EnvelopeResponse {
		t.Helper()
		env := envelopepkg.Wrap(inner, "app", principal, "10.1.2.3")
		resp, err := env.RequestWith(ctx, from)
		require.NoError(t, err)
		return resp
	}
	endOffset := func(topic string) int64 {
		t.Helper()
		offs, err := admin.ListEndOffsets(ctx, topic)
		require.NoError(t, err)
		o, ok := offs.Lookup(topic, 0)
		require.True(t, ok)
		require.NoError(t, o.Err)
		return o.Offset
	}

	// The gateway's Envelope: served as alice, who may write her topic...
	p := produce("alice-t", "through the gateway")
	resp := send(gw, p, "User:alice")
	require.Zero(t, resp.ErrorCode)
	inner, err := envelopepkg.Unwrap(p, resp)
	require.NoError(t, err)
	require.Zero(t, inner.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
	require.Equal(t, int64(1), endOffset("alice-t"))
	// ... and not bob's: the ACLs are alice's, not the gateway's.
	p = produce("bob-t", "alice as herself")
	inner, err = envelopepkg.Unwrap(p, send(gw, p, "User:alice"))
	require.NoError(t, err)
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, inner.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)

	// A Fetch travels too, as alice.
	f := kmsg.NewPtrFetchRequest()
	f.Version = 11
	f.ReplicaID = -1
	f.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "alice-t"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	f.Topics = append(f.Topics, ft)
	inner, err = envelopepkg.Unwrap(f, send(gw, f, "User:alice"))
	require.NoError(t, err)
	fr := inner.(*kmsg.FetchResponse)
	require.Zero(t, fr.Topics[0].Partitions[0].ErrorCode)
	require.NotEmpty(t, fr.Topics[0].Partitions[0].RecordBatches)

	// Not a gateway: alice forging the gateway's Envelope for anyone.
	for _, principal := range []string{"User:alice", "User:admin", "User:gateway"} {
		resp := send(alice, produce("alice-t", "forged"), principal)
		require.Equal(t, kerr.ClusterAuthorizationFailed.Code, resp.ErrorCode, principal)
	}
	require.Equal(t, int64(1), endOffset("alice-t"), "nothing written by a refused Envelope")

	// What never travels inside, and malformed principals.
	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	hb.BrokerID = 1
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "PLAIN"
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.SetVersion(1)
	for name, c := range map[string]struct {
		req       kmsg.Request
		principal string
	}{
		"ApiVersions":       {kmsg.NewPtrApiVersionsRequest(), "User:alice"},
		"SaslHandshake":     {hs, "User:alice"},
		"SaslAuthenticate":  {au, "User:alice"},
		"Envelope":          {envelopepkg.Wrap(produce("alice-t", "nested"), "app", "User:alice", "10.1.2.3"), "User:alice"},
		"BrokerHeartbeat":   {hb, "User:alice"},
		"empty principal":   {produce("alice-t", "x"), ""},
		"principal no type": {produce("alice-t", "x"), "alice"},
	} {
		resp := send(gw, c.req, c.principal)
		require.Equal(t, kerr.InvalidRequest.Code, resp.ErrorCode, name)
	}
	require.Equal(t, int64(1), endOffset("alice-t"), "nothing written by a refused Envelope")
}

// TestGatewayPrincipalsConfig: gateway.principals must name TYPE:name
// principals, never the anonymous one.
func TestGatewayPrincipalsConfig(t *testing.T) {
	for _, c := range []struct{ value, err string }{
		{"User:ANONYMOUS", "gateway.principals: User:ANONYMOUS"},
		{"gateway", "gateway.principals: \"gateway\" is not TYPE:name"},
		{"User:gw;:x", "gateway.principals: \":x\""},
	} {
		cfg := DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.GatewayPrincipals = c.value
		_, err := cfg.listenerSpecs()
		require.ErrorContains(t, err, c.err, c.value)
	}
	cfg := DefaultConfig()
	cfg.GatewayPrincipals = " User:gw ; User:gw2 "
	_, err := cfg.listenerSpecs()
	require.NoError(t, err)
	require.Equal(t, []string{"User:gw", "User:gw2"}, cfg.gatewayPrincipals())
}
