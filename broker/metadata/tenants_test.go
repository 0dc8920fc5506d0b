package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// TestTenants creates plans and tenants through the controller: the managed ACLs come and go with the
// tenant in the same entry, overlapping prefixes, shared principals, unknown plans and bad documents
// are refused without changing anything, and everything survives a snapshot and a restart.
func TestTenants(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 10 * time.Second })
	q := c.waitController(10 * time.Second)

	_, err := q.PutTenant(ctx, adminapi.Tenant{Name: "payments", Plan: "small", Principals: []string{"User:pay"}, Prefixes: []string{"payments."}})
	require.ErrorIs(t, err, ErrInvalid, "the plan does not exist yet")

	p, err := q.PutPlan(ctx, adminapi.Plan{Name: "small", ProduceBytesPerSecond: 1 << 20, Partitions: 10})
	require.NoError(t, err)
	require.Equal(t, adminapi.DiskPolicyReject, p.DiskPolicy, "the default disk policy")
	pay, err := q.PutTenant(ctx, adminapi.Tenant{Name: "payments", Plan: "small", Principals: []string{"User:pay2", "User:pay", "User:pay"},
		Prefixes: []string{"payments."}, SlackChannel: "#payments", Email: "pay@example.com"})
	require.NoError(t, err)
	require.Equal(t, []string{"User:pay", "User:pay2"}, pay.Principals)
	img := q.Image()
	require.Len(t, img.Tenants["payments"].ACLIDs, 2*1*3)
	require.Equal(t, 6, img.ACLs.Len())
	for _, b := range TenantACLs(pay) {
		require.Contains(t, img.ACLs.Bindings(), b)
	}

	before := q.Image().Index
	for _, bad := range []struct {
		t    adminapi.Tenant
		want error
	}{
		{adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:shop"}, Prefixes: []string{"pay"}}, ErrConflict},
		{adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:shop"}, Prefixes: []string{"payments.eu."}}, ErrConflict},
		{adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:pay"}, Prefixes: []string{"shop."}}, ErrConflict},
		{adminapi.Tenant{Name: "Shop", Plan: "small", Prefixes: []string{"shop."}}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small", Prefixes: []string{"shop/"}}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small"}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:*"}, Prefixes: []string{"shop."}}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"alice"}, Prefixes: []string{"shop."}}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small", Prefixes: []string{"shop.", "shop.eu."}}, ErrInvalid},
		{adminapi.Tenant{Name: "shop", Plan: "small", Prefixes: []string{"shop."}, Email: "not an address"}, ErrInvalid},
	} {
		_, err := q.PutTenant(ctx, bad.t)
		require.ErrorIs(t, err, bad.want, "%+v", bad.t)
	}
	_, err = q.PutPlan(ctx, adminapi.Plan{Name: "neg", DiskBytes: -1})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = q.PutPlan(ctx, adminapi.Plan{Name: "pol", DiskPolicy: "drop"})
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorIs(t, q.DeleteTenant(ctx, "nobody"), ErrNotFound)
	require.Equal(t, before, q.Image().Index, "refusals write nothing")

	shop, err := q.PutTenant(ctx, adminapi.Tenant{Name: "shop", Plan: "small", Principals: []string{"User:shop"}, Prefixes: []string{"shop."}})
	require.NoError(t, err)
	// Replacing a tenant replaces its ACLs.
	pay.Principals = []string{"User:pay"}
	_, err = q.PutTenant(ctx, pay)
	require.NoError(t, err)
	require.Equal(t, 3+3, q.Image().ACLs.Len())
	got, ok := q.Image().TenantOfPrincipal("User:shop")
	require.True(t, ok)
	require.Equal(t, "shop", got.Name)
	got, ok = q.Image().TenantOfResource("payments.orders")
	require.True(t, ok)
	require.Equal(t, "payments", got.Name)

	require.NoError(t, q.raft.Snapshot().Error())
	require.NoError(t, q.DeleteTenant(ctx, "shop"))
	require.Equal(t, 3, q.Image().ACLs.Len(), "the tenant's acls went with it")
	_ = shop

	want := q.Image()
	nd := c.start(c.stop(1))
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, nd.q.WaitApplied(ctx2, want.Index))
	require.Equal(t, want.SortedTenants(), nd.q.Image().SortedTenants())
	require.Equal(t, want.SortedPlans(), nd.q.Image().SortedPlans())
	require.Equal(t, want.ACLs.Bindings(), nd.q.Image().ACLs.Bindings())
}
