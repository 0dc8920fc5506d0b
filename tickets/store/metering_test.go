package store

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTenantSamplesUpsertPeriodAndRetention(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	start := time.Date(2026, 3, 31, 23, 58, 0, 0, time.UTC)
	var rows []TenantSample
	for i := range 5 {
		for _, tn := range []string{"alpha", "beta"} {
			rows = append(rows, TenantSample{Tenant: tn, Minute: UnixMinute(start) + int64(i), BytesIn: int64(1000 + i), DiskBytes: 1 << 40})
		}
	}
	marks := []MeteringMark{{Series: `sluice_tenant_bytes_in_total{instance="b1",tenant="alpha"}`, Tenant: "alpha", Metric: "bytes_in", Minute: UnixMinute(start) + 5, Value: 12345}}
	require.NoError(t, st.RecordMetering(ctx, rows, marks))

	// Writing a minute again replaces it: collection is idempotent.
	marks[0].Value, marks[0].Minute = 99999, marks[0].Minute+1
	require.NoError(t, st.RecordMetering(ctx, []TenantSample{{Tenant: "alpha", Minute: UnixMinute(start), BytesIn: 7, Source: SourceSpread}}, marks))
	got, err := st.MeteringMarks(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, int64(99999), got[marks[0].Series].Value)

	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	march, err := st.TenantSamples(ctx, "alpha", start.Add(-time.Hour), april)
	require.NoError(t, err)
	require.Len(t, march, 2)
	require.Equal(t, int64(7), march[0].BytesIn)
	require.Equal(t, SourceSpread, march[0].Source)
	require.Equal(t, start, march[0].Start())
	apr, err := st.TenantSamples(ctx, "alpha", april, april.AddDate(0, 1, 0))
	require.NoError(t, err)
	require.Len(t, apr, 3)
	require.Equal(t, int64(1<<40), apr[2].DiskBytes)

	tenants, err := st.MeteredTenants(ctx, april, april.AddDate(0, 1, 0))
	require.NoError(t, err)
	require.Equal(t, []string{"alpha", "beta"}, tenants)

	n, err := st.DeleteTenantSamplesBefore(ctx, april)
	require.NoError(t, err)
	require.Equal(t, int64(4), n)
	march, err = st.TenantSamples(ctx, "alpha", start.Add(-time.Hour), april)
	require.NoError(t, err)
	require.Empty(t, march)
}

func TestTenantMembersAreNeverAdmins(t *testing.T) {
	st, _ := openTest(t)
	ctx := context.Background()
	require.NoError(t, st.CreateUser(ctx, "ann", "0123456789ab", RoleViewer))
	require.NoError(t, st.CreateUser(ctx, "root", "0123456789ab", RoleAdmin))
	us, err := st.ListUsers(ctx)
	require.NoError(t, err)
	ids := map[string]uint{}
	for _, u := range us {
		ids[u.Username] = u.ID
	}
	u, err := st.SetUserTenant(ctx, ids["ann"], "payments", "admin")
	require.NoError(t, err)
	require.Equal(t, "payments", u.Tenant)
	_, err = st.SetUserRole(ctx, ids["ann"], RoleAdmin, "admin")
	require.ErrorIs(t, err, ErrConflict)
	_, err = st.SetUserTenant(ctx, ids["root"], "payments", "admin")
	require.ErrorIs(t, err, ErrConflict)
	_, err = st.SetUserTenant(ctx, 9999, "payments", "admin")
	require.ErrorIs(t, err, ErrNotFound)
	_, sessUser, err := func() (*Session, *User, error) {
		cookie, _, err := st.CreateSession(ctx, ids["ann"], time.Hour)
		if err != nil {
			return nil, nil, err
		}
		return st.LookupSession(ctx, cookie)
	}()
	require.NoError(t, err)
	require.Equal(t, "payments", sessUser.Tenant)
}
