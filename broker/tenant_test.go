package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/internal/testutil"
)

// startTenantBroker starts a SASL broker with the authorizer on, the admin interface on loopback,
// and the SCRAM users alice (tenant pay) and bob (tenant shop) besides the super user admin.
func startTenantBroker(t *testing.T, mod func(*Config)) (*Broker, *adminapi.Client) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "SCRAM-SHA-512"
		c.AuthorizerClassName = StandardAuthorizer
		c.SuperUsers = "User:admin"
		c.AdminListen = "127.0.0.1:0"
		c.Tenants.TenantDiskCheckIntervalMs = 100
		if mod != nil {
			mod(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := kadm.NewClient(saslUserClient(t, b.ListenerAddr("CLIENT"), "admin", "admin-secret"))
	users, err := admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pw"},
		{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "bob-pw"},
	})
	require.NoError(t, err)
	require.NoError(t, users.Error())
	return b, &adminapi.Client{URLs: []string{"http://" + b.AdminAddr()}}
}

// TestTenantAdminAPI drives the management API with its Go client: plans and tenants are
// created, listed and deleted; bad documents get 400, clashes 409, unknown names 404, each with a
// message and nothing changed.
func TestTenantAdminAPI(t *testing.T) {
	b, cl := startTenantBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	_, err := cl.PutPlan(ctx, adminapi.Plan{Name: "small", ProduceBytesPerSecond: 1 << 20, Partitions: 4, Connections: 2})
	require.NoError(t, err)
	pay, err := cl.PutTenant(ctx, adminapi.Tenant{Name: "pay", Plan: "small", Principals: []string{"User:alice"}, Prefixes: []string{"pay."},
		SlackChannel: "#pay", Email: "pay@example.com"})
	require.NoError(t, err)
	require.Equal(t, "pay", pay.Name)
	got, err := cl.Tenant(ctx, "pay")
	require.NoError(t, err)
	require.Equal(t, pay, got)
	plans, err := cl.Plans(ctx)
	require.NoError(t, err)
	require.Len(t, plans, 1)
	require.Equal(t, adminapi.DiskPolicyReject, plans[0].DiskPolicy)

	index := b.quorum.Image().Index
	status := func(err error) int {
		var ae *adminapi.APIError
		require.True(t, errors.As(err, &ae), "%v", err)
		require.NotEmpty(t, ae.Message)
		return ae.Status
	}
	_, err = cl.PutTenant(ctx, adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:bob"}, Prefixes: []string{"pay.shop."}})
	require.Equal(t, http.StatusConflict, status(err))
	require.Contains(t, err.Error(), `overlaps prefix "pay." of tenant "pay"`)
	_, err = cl.PutTenant(ctx, adminapi.Tenant{Name: "shop", Plan: "gold", Principals: []string{"User:bob"}, Prefixes: []string{"shop."}})
	require.Equal(t, http.StatusBadRequest, status(err))
	require.Contains(t, err.Error(), `plan "gold" does not exist`)
	_, err = cl.PutPlan(ctx, adminapi.Plan{Name: "bad", Partitions: -1})
	require.Equal(t, http.StatusBadRequest, status(err))
	require.Contains(t, err.Error(), "partitions")
	_, err = cl.Tenant(ctx, "nobody")
	require.Equal(t, http.StatusNotFound, status(err))
	require.Equal(t, http.StatusNotFound, status(cl.DeleteTenant(ctx, "nobody")))

	// Raw bodies the Go client would never send.
	base := "http://" + b.AdminAddr()
	for _, c := range []struct{ path, body, want string }{
		{"/api/v1/tenants/shop", `{"name":"shop","plan":"small","prefixes":["shop."],"owner":"x"}`, "unknown field"},
		{"/api/v1/tenants/shop", `{"name":"other","plan":"small","prefixes":["shop."]}`, "differs from the path"},
		{"/api/v1/tenants/shop", `{"name":"shop"`, "body"},
		{"/api/v1/tenants/shop", `{"plan":"small","prefixes":["shop."]} {}`, "more than one"},
		{"/api/v1/tenants/shop", `{"plan":"small","prefixes":["` + strings.Repeat("a", 5<<20) + `"]}`, "body"},
		{"/api/v1/plans/x", `{"produce_bytes_per_second":"fast"}`, "body"},
	} {
		req, err := http.NewRequest(http.MethodPut, base+c.path, strings.NewReader(c.body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body)
		require.Contains(t, string(body), c.want)
	}
	require.Equal(t, index, b.quorum.Image().Index, "refused changes write nothing")

	require.NoError(t, cl.DeleteTenant(ctx, "pay"))
	tenants, err := cl.Tenants(ctx)
	require.NoError(t, err)
	require.Empty(t, tenants)
	require.Zero(t, b.quorum.Image().ACLs.Len(), "the tenant's acls went with it")
}

// TestTenantAdminWritesNeedAnAdmin serves the admin interface on a non-loopback address: without
// a web config writes are refused (reads are not); with basic auth only the users of
// admin.write.users may write.
func TestTenantAdminWritesNeedAnAdmin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Run("unauthenticated", func(t *testing.T) {
		b, _ := startTenantBroker(t, func(c *Config) { c.AdminListen = "0.0.0.0:0" })
		_, port, err := net.SplitHostPort(b.AdminAddr())
		require.NoError(t, err)
		// The address is not loopback even when reached through 127.0.0.1.
		cl := &adminapi.Client{URLs: []string{"http://127.0.0.1:" + port}}
		_, err = cl.PutPlan(ctx, adminapi.Plan{Name: "small"})
		var ae *adminapi.APIError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, http.StatusForbidden, ae.Status)
		require.Contains(t, ae.Message, "web.config.file")
		plans, err := cl.Plans(ctx)
		require.NoError(t, err)
		require.Empty(t, plans)
	})
	t.Run("basic auth", func(t *testing.T) {
		dir := t.TempDir()
		web := testutil.WebConfig(t, dir, map[string]string{"ops": "ops-pw", "prometheus": "prom-pw"})
		b, _ := startTenantBroker(t, func(c *Config) { c.WebConfigFile = web; c.Tenants.AdminWriteUsers = "ops" })
		url := "http://" + b.AdminAddr()
		var ae *adminapi.APIError
		_, err := (&adminapi.Client{URLs: []string{url}}).PutPlan(ctx, adminapi.Plan{Name: "small"})
		require.ErrorAs(t, err, &ae)
		require.Equal(t, http.StatusUnauthorized, ae.Status)
		_, err = (&adminapi.Client{URLs: []string{url}, Username: "prometheus", Password: "prom-pw"}).PutPlan(ctx, adminapi.Plan{Name: "small"})
		require.ErrorAs(t, err, &ae)
		require.Equal(t, http.StatusForbidden, ae.Status)
		require.Contains(t, ae.Message, "admin.write.users")
		_, err = (&adminapi.Client{URLs: []string{url}, Username: "ops", Password: "ops-pw"}).PutPlan(ctx, adminapi.Plan{Name: "small"})
		require.NoError(t, err)
	})
}

// TestTenantPlanCaps holds a tenant to its plan's partitions, connections and disk: each refusal
// names the plan and the numbers, and the other tenant is not affected.
func TestTenantPlanCaps(t *testing.T) {
	b, cl := startTenantBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := cl.PutPlan(ctx, adminapi.Plan{Name: "small", Partitions: 3, Connections: 3, DiskBytes: 20 << 10})
	require.NoError(t, err)
	_, err = cl.PutPlan(ctx, adminapi.Plan{Name: "big"})
	require.NoError(t, err)
	_, err = cl.PutTenant(ctx, adminapi.Tenant{Name: "pay", Plan: "small", Principals: []string{"User:alice"}, Prefixes: []string{"pay."}})
	require.NoError(t, err)
	_, err = cl.PutTenant(ctx, adminapi.Tenant{Name: "shop", Plan: "big", Principals: []string{"User:bob"}, Prefixes: []string{"shop."}})
	require.NoError(t, err)
	addr := b.ListenerAddr("CLIENT")
	aliceCl := saslUserClient(t, addr, "alice", "alice-pw")
	alice := kadm.NewClient(aliceCl)

	// Partitions: 2 + 1 fit, one more does not, neither by CreateTopics nor by CreatePartitions.
	res, err := alice.CreateTopic(ctx, 2, 1, nil, "pay.orders")
	require.NoError(t, err)
	require.NoError(t, res.Err, res.ErrMessage)
	res, err = alice.CreateTopic(ctx, 2, 1, nil, "pay.refunds")
	require.ErrorIs(t, err, kerr.PolicyViolation)
	require.Contains(t, res.ErrMessage, `plan "small" allows 3`)
	res, err = alice.CreateTopic(ctx, 1, 1, nil, "pay.refunds")
	require.NoError(t, err)
	require.NoError(t, res.Err)
	cp, err := alice.CreatePartitions(ctx, 1, "pay.orders")
	require.NoError(t, err)
	require.ErrorIs(t, cp["pay.orders"].Err, kerr.PolicyViolation)
	require.Contains(t, cp["pay.orders"].ErrMessage, `tenant "pay" has 3 partitions`)
	bob := kadm.NewClient(saslUserClient(t, addr, "bob", "bob-pw"))
	res, err = bob.CreateTopic(ctx, 8, 1, nil, "shop.orders")
	require.NoError(t, err)
	require.NoError(t, res.Err, "the other tenant's plan is unlimited")

	// Connections: once alice's admin client is gone, three connections fit and the fourth is
	// refused at authentication with the plan in the message; bob is not affected.
	aliceCl.Close()
	require.Eventually(t, func() bool { u, _ := b.tenantUsage("pay"); return u.Connections == 0 }, 20*time.Second, 10*time.Millisecond,
		"closed connections are released")
	var extra []*kgo.Client
	for i := range 3 {
		c := saslUserClient(t, addr, "alice", "alice-pw")
		require.NoError(t, c.Ping(ctx), "connection %d", i+1)
		extra = append(extra, c)
	}
	over := saslUserClient(t, addr, "alice", "alice-pw")
	err = over.Ping(ctx)
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	require.Contains(t, err.Error(), `tenant "pay" is at the 3 connections per broker of its plan "small"`)
	require.NoError(t, saslUserClient(t, addr, "bob", "bob-pw").Ping(ctx), "bob connects")
	over.Close()
	for _, c := range extra {
		c.Close()
	}
	require.Eventually(t, func() bool { u, _ := b.tenantUsage("pay"); return u.Connections == 0 }, 20*time.Second, 10*time.Millisecond,
		"closed connections are released")

	// Disk: produce until the tenant is over 20 KiB; then its produce requests are refused with
	// POLICY_VIOLATION naming the plan, and bob's are not.
	require.Eventually(t, func() bool { return b.tenants.current().anyDisk }, 10*time.Second, 10*time.Millisecond)
	prodBob := saslUserClient(t, addr, "bob", "bob-pw")
	require.NoError(t, prodBob.ProduceSync(ctx, &kgo.Record{Topic: "shop.orders", Value: make([]byte, 30<<10)}).FirstErr())
	prod := saslUserClient(t, addr, "alice", "alice-pw", kgo.ProducerBatchMaxBytes(1<<20))
	require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: "pay.refunds", Value: make([]byte, 30<<10)}).FirstErr())
	var last error
	require.Eventually(t, func() bool {
		last = prod.ProduceSync(ctx, &kgo.Record{Topic: "pay.refunds", Value: []byte("x")}).FirstErr()
		return last != nil
	}, 30*time.Second, 50*time.Millisecond)
	require.ErrorIs(t, last, kerr.PolicyViolation)
	require.NoError(t, prodBob.ProduceSync(ctx, &kgo.Record{Topic: "shop.orders", Value: []byte("y")}).FirstErr(), "bob's plan has no disk cap")
	u, ok := b.tenantUsage("pay")
	require.True(t, ok)
	require.Greater(t, u.DiskBytes, int64(20<<10))
	require.Equal(t, 3, u.Partitions)
}

// TestTenantFetchPlan holds a tenant's consumer to its plan's fetch bandwidth (within 10%).
func TestTenantFetchPlan(t *testing.T) {
	b, cl := startTenantBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const limit = 256 << 10
	_, err := cl.PutPlan(ctx, adminapi.Plan{Name: "reader", FetchBytesPerSecond: limit})
	require.NoError(t, err)
	_, err = cl.PutTenant(ctx, adminapi.Tenant{Name: "pay", Plan: "reader", Principals: []string{"User:alice"}, Prefixes: []string{"pay."}})
	require.NoError(t, err)
	addr := b.ListenerAddr("CLIENT")
	prod := saslUserClient(t, addr, "alice", "alice-pw", kgo.ProducerBatchCompression(kgo.NoCompression()))
	_, err = kadm.NewClient(prod).CreateTopic(ctx, 1, 1, nil, "pay.events")
	require.NoError(t, err)
	const total = 3 << 20
	for i := 0; i < total/(32<<10); i++ {
		v := make([]byte, 32<<10)
		rand.Read(v)
		require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: "pay.events", Value: v}).FirstErr())
	}
	cons := saslUserClient(t, addr, "alice", "alice-pw", kgo.ConsumeTopics("pay.events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<10), kgo.FetchMaxPartitionBytes(64<<10))
	// The first window's worth passes at once; the rate is measured after it.
	const warm = 512 << 10
	var got int
	var start time.Time
	for got < total {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) { got += len(r.Value) })
		if start.IsZero() && got >= warm {
			start = time.Now()
		}
	}
	rate := float64(got-warm) / time.Since(start).Seconds()
	t.Logf("fetch plan %d B/s: consumed at %.0f B/s", limit, rate)
	require.InDelta(t, limit, rate, limit*0.10)
	u, _ := b.tenantUsage("pay")
	require.Positive(t, u.ThrottleSeconds)
}
