package tickets

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// fakeTenantAdmin is a test double of the brokers' tenant API for unit
// tests: tenants and plans in memory, refusing what the controller refuses
// (a tenant on an unknown plan). The integration test runs real brokers.
type fakeTenantAdmin struct {
	mu      sync.Mutex
	tenants map[string]Tenant
	plans   map[string]Plan
}

func newFakeTenantAdmin() *fakeTenantAdmin {
	return &fakeTenantAdmin{tenants: map[string]Tenant{}, plans: map[string]Plan{}}
}

func (f *fakeTenantAdmin) ListTenants(context.Context) ([]Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Tenant
	for _, t := range f.tenants {
		out = append(out, t)
	}
	return out, nil
}

func (f *fakeTenantAdmin) GetTenant(_ context.Context, name string) (*Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tenants[name]
	if !ok {
		return nil, &brokerAPIError{Status: 404, Message: "no tenant " + name}
	}
	return &t, nil
}

func (f *fakeTenantAdmin) PutTenant(_ context.Context, t Tenant) (*Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.plans[t.Plan]; !ok {
		return nil, &brokerAPIError{Status: 400, Message: "plan: no plan " + t.Plan}
	}
	f.tenants[t.Name] = t
	return &t, nil
}

func (f *fakeTenantAdmin) DeleteTenant(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tenants[name]; !ok {
		return &brokerAPIError{Status: 404, Message: "no tenant " + name}
	}
	delete(f.tenants, name)
	return nil
}

func (f *fakeTenantAdmin) ListPlans(context.Context) ([]Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Plan
	for _, p := range f.plans {
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeTenantAdmin) PutPlan(_ context.Context, p Plan) (*Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.plans[p.Name] = p
	return &p, nil
}

func (f *fakeTenantAdmin) TenantUsage(_ context.Context, name string) (*TenantUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tenants[name]; !ok {
		return nil, &brokerAPIError{Status: 404, Message: "no tenant " + name}
	}
	return &TenantUsage{Tenant: name, BytesIn: 1234, DiskBytes: 5_000_000_000, Partitions: 3}, nil
}

// tenantFixture is a service with plans, tenants alpha and beta with a few
// samples each in May 2026, and ann, a member of alpha, with an API token.
type tenantFixture struct {
	*testService
	annID    uint
	annToken string
}

func startTenantFixture(t *testing.T) tenantFixture {
	ts := startServiceWith(t, Options{tenants: newFakeTenantAdmin()}, func(c *Config) {
		c.Billing.Prices = BillingPrices{ProduceMBs: 10_000_000, DiskGB: 100_000, Partition: 500_000}
	})
	for _, pl := range []Plan{
		{Name: "small", ProduceBytesPerSecond: 1_000_000, FetchBytesPerSecond: 2_000_000, DiskBytes: 10_000_000_000, Partitions: 10, Connections: 50},
		{Name: "large", ProduceBytesPerSecond: 50_000_000, FetchBytesPerSecond: 100_000_000, DiskBytes: 1_000_000_000_000, Partitions: 500, Connections: 1000},
	} {
		ts.must(http.StatusOK, "PUT", "/api/v1/plans/"+pl.Name, ts.admin, pl, nil)
	}
	for _, tn := range []Tenant{
		{Name: "alpha", Plan: "small", Prefixes: []string{"alpha."}, Principals: []string{"User:alpha-app"}, SlackChannel: "#alpha-alerts"},
		{Name: "beta", Plan: "large", Prefixes: []string{"beta.", "shared.beta-"}, Principals: []string{"User:beta-app"}, Email: "beta@example.com"},
	} {
		ts.must(http.StatusOK, "PUT", "/api/v1/tenants/"+tn.Name, ts.admin, tn, nil)
	}
	ctx := context.Background()
	may := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var rows []store.TenantSample
	for m := range 600 {
		rows = append(rows,
			store.TenantSample{Tenant: "alpha", Minute: store.UnixMinute(may) + int64(m), BytesIn: 30_000_000 + int64(m), BytesOut: 1000, DiskBytes: 2_000_000_000, Partitions: 4, PlanProduceBps: 1_000_000, PlanDiskBytes: 10_000_000_000},
			store.TenantSample{Tenant: "beta", Minute: store.UnixMinute(may) + int64(m), BytesIn: 777_000_000, DiskBytes: 900_000_000_000, Partitions: 300, PlanProduceBps: 50_000_000})
	}
	require.NoError(t, ts.Store().RecordMetering(ctx, rows, nil))
	require.NoError(t, ts.Store().CreateUser(ctx, "ann", "ann-password-1", store.RoleViewer))
	f := tenantFixture{testService: ts}
	var users struct{ Users []store.User }
	ts.must(http.StatusOK, "GET", "/api/v1/users", ts.admin, nil, &users)
	for _, u := range users.Users {
		if u.Username == "ann" {
			f.annID = u.ID
		}
	}
	ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/tenant", f.annID), ts.admin, map[string]string{"tenant": "alpha"}, nil)
	tok, _, err := ts.Store().MintToken(ctx, store.NewToken{Name: "ann-script", Role: store.RoleViewer, OwnerID: f.annID, CreatedBy: "test", TTL: time.Hour})
	require.NoError(t, err)
	f.annToken = tok
	return f
}

func TestTenantAdminAPIValidatesAndAudits(t *testing.T) {
	f := startTenantFixture(t)
	bad := []struct {
		body  Tenant
		field string
	}{
		{Tenant{Plan: "small"}, "prefixes"},
		{Tenant{Plan: "small", Prefixes: []string{"alpha/x"}}, "prefixes"},
		{Tenant{Plan: "small", Prefixes: []string{"g."}, Principals: []string{"alice"}}, "principals"},
		{Tenant{Plan: "small", Prefixes: []string{"g."}, Email: "Gamma <g@example.com>"}, "email"},
		{Tenant{Plan: "small", Prefixes: []string{"g."}, SlackChannel: "#Gamma Alerts"}, "slack_channel"},
		{Tenant{Prefixes: []string{"g."}}, "plan"},
		{Tenant{Plan: "gold", Prefixes: []string{"g."}}, "cluster refused: plan: no plan gold"},
		{Tenant{Name: "delta", Plan: "small", Prefixes: []string{"g."}}, "differs from the path"},
	}
	for _, b := range bad {
		code, body := f.do("PUT", "/api/v1/tenants/gamma", f.admin, b.body)
		require.Equal(t, http.StatusBadRequest, code, "%+v: %s", b.body, body)
		require.Contains(t, string(body), b.field)
	}
	code, body := f.do("PUT", "/api/v1/plans/tiny", f.admin, Plan{ProduceBytesPerSecond: -1, FetchBytesPerSecond: 1, DiskBytes: 1, Partitions: 1, Connections: 1})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(body), "produce_bytes_per_second")
	code, _ = f.do("PUT", "/api/v1/tenants/gamma", f.admin, `{"plan":"small","prefixes":["g."],"owner":"x"}`)
	require.Equal(t, http.StatusBadRequest, code, "unknown fields are refused")
	// Nothing of the refused requests reached the cluster.
	var list struct{ Tenants []Tenant }
	f.must(http.StatusOK, "GET", "/api/v1/tenants", f.admin, nil, &list)
	require.Len(t, list.Tenants, 2)

	// Only admins change tenants and plans.
	for _, tok := range []string{f.operator, f.viewer} {
		code, _ = f.do("PUT", "/api/v1/tenants/gamma", tok, Tenant{Plan: "small", Prefixes: []string{"g."}})
		require.Equal(t, http.StatusForbidden, code)
		code, _ = f.do("PUT", "/api/v1/plans/tiny", tok, Plan{ProduceBytesPerSecond: 1, FetchBytesPerSecond: 1, DiskBytes: 1, Partitions: 1, Connections: 1})
		require.Equal(t, http.StatusForbidden, code)
		code, _ = f.do("DELETE", "/api/v1/tenants/beta", tok, nil)
		require.Equal(t, http.StatusForbidden, code)
	}
	// Members: an unknown tenant is not found; an admin is never a member.
	code, _ = f.do("POST", fmt.Sprintf("/api/v1/users/%d/tenant", f.annID), f.admin, map[string]string{"tenant": "nobody"})
	require.Equal(t, http.StatusNotFound, code)
	var users struct{ Users []store.User }
	f.must(http.StatusOK, "GET", "/api/v1/users", f.admin, nil, &users)
	for _, u := range users.Users {
		if u.Username == "admin" {
			code, _ = f.do("POST", fmt.Sprintf("/api/v1/users/%d/tenant", u.ID), f.admin, map[string]string{"tenant": "beta"})
			require.Equal(t, http.StatusConflict, code)
		}
	}
	// A tenant with members is not deleted.
	code, body = f.do("DELETE", "/api/v1/tenants/alpha", f.admin, nil)
	require.Equal(t, http.StatusConflict, code, "%s", body)
	require.Contains(t, string(body), "ann")
	f.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/users/%d/tenant", f.annID), f.admin, map[string]string{"tenant": ""}, nil)
	f.must(http.StatusNoContent, "DELETE", "/api/v1/tenants/alpha", f.admin, nil, nil)
	code, _ = f.do("DELETE", "/api/v1/tenants/alpha", f.admin, nil)
	require.Equal(t, http.StatusNotFound, code)

	var audit struct{ Events []store.AuditEvent }
	f.must(http.StatusOK, "GET", "/api/v1/audit", f.admin, nil, &audit)
	var actions []string
	for _, e := range audit.Events {
		actions = append(actions, e.Action+" "+e.Target)
	}
	require.Contains(t, actions, "tenant.put tenant beta")
	require.Contains(t, actions, "plan.put plan small")
	require.Contains(t, actions, "user.tenant user ann")
	require.Contains(t, actions, "tenant.delete tenant alpha")
}

// TestTenantMemberSeesOnlyTheirTenant: ann, a member of alpha, reads
// alpha's page, usage and statements through the API and the UI, and gets
// 404 for beta's (she does not learn it exists) and 403 for everything of
// the platform team.
func TestTenantMemberSeesOnlyTheirTenant(t *testing.T) {
	f := startTenantFixture(t)

	var list struct{ Tenants []Tenant }
	f.must(http.StatusOK, "GET", "/api/v1/tenants", f.annToken, nil, &list)
	require.Equal(t, []string{"alpha"}, []string{list.Tenants[0].Name})
	require.Len(t, list.Tenants, 1)
	f.must(http.StatusOK, "GET", "/api/v1/tenants/alpha", f.annToken, nil, nil)
	f.must(http.StatusOK, "GET", "/api/v1/tenants/alpha/usage", f.annToken, nil, nil)
	var st Statement
	f.must(http.StatusOK, "GET", "/api/v1/tenants/alpha/statements/2026-05", f.annToken, nil, &st)
	require.Equal(t, int64(600), st.MinutesSampled)
	require.Equal(t, int64(600*30_000_000+599*600/2), st.BytesIn)
	require.Equal(t, ceilDiv(30_000_599, 60), st.PeakInBps)
	// 30 MB a minute is 500 kB/s, 600 kB/s with 20% headroom: small's 1 MB/s
	// and 10 GB cover it, and small is cheaper than large.
	require.Equal(t, "small", st.Suggested, st.SuggestedReason)
	require.Equal(t, int64(500_010), st.P95InBps, "minute 569 of 600 (nearest rank 570)")
	require.Equal(t, int64(5000), st.Utilisation.ProduceP95BP, "half of small's 1 MB/s")

	for _, path := range []string{"/api/v1/tenants/beta", "/api/v1/tenants/beta/usage", "/api/v1/tenants/beta/statements/2026-05",
		"/api/v1/tenants/beta/statements/2026-05?format=csv", "/api/v1/tenants/nobody"} {
		code, body := f.do("GET", path, f.annToken, nil)
		require.Equal(t, http.StatusNotFound, code, "%s: %s", path, body)
		require.NotContains(t, string(body), "777")
	}
	for _, path := range []string{"/api/v1/incidents", "/api/v1/tickets", "/api/v1/plans", "/api/v1/sla", "/api/v1/silences", "/api/v1/users"} {
		code, body := f.do("GET", path, f.annToken, nil)
		require.Equal(t, http.StatusForbidden, code, "%s: %s", path, body)
	}
	code, _ := f.do("PUT", "/api/v1/tenants/alpha", f.annToken, Tenant{Plan: "large", Prefixes: []string{"alpha."}})
	require.Equal(t, http.StatusForbidden, code)
	code, body := f.do("GET", "/api/v1/statements/2026-05", f.annToken, nil)
	require.Equal(t, http.StatusOK, code)
	sts, err := readStatementsCSV(bytes.NewReader(body))
	require.NoError(t, err)
	require.Len(t, sts, 1)
	require.Equal(t, "alpha", sts[0].Tenant)

	// Staff see both.
	code, body = f.do("GET", "/api/v1/statements/2026-05", f.viewer, nil)
	require.Equal(t, http.StatusOK, code)
	sts, err = readStatementsCSV(bytes.NewReader(body))
	require.NoError(t, err)
	require.Equal(t, []string{"alpha", "beta"}, []string{sts[0].Tenant, sts[1].Tenant})
	require.Equal(t, int64(600*777_000_000), sts[1].BytesIn)
	code, _ = f.do("GET", "/api/v1/statements/2026-13", f.viewer, nil)
	require.Equal(t, http.StatusBadRequest, code)

	// The web UI: ann lands on alpha's page and cannot reach beta's.
	b := newBrowser(t, f.testService)
	b.login("ann", "ann-password-1")
	code, _, h := b.get("/incidents")
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/tenants/alpha", h.Get("Location"))
	code, page, _ := b.get("/tenants/alpha")
	require.Equal(t, http.StatusOK, code, page)
	require.Contains(t, page, "alpha.")
	require.NotContains(t, page, `href="/incidents"`, "a member's navigation has no platform pages")
	code, page, _ = b.get("/tenants/alpha/statements/2026-05")
	require.Equal(t, http.StatusOK, code, page)
	require.Contains(t, page, "<svg")
	for _, path := range []string{"/tenants/beta", "/tenants/beta/statements/2026-05", "/tenants/beta/statements/2026-05?format=csv"} {
		code, page, _ = b.get(path)
		require.Equal(t, http.StatusNotFound, code, path)
		require.NotContains(t, page, "beta.")
	}
	for _, path := range []string{"/tickets", "/cluster", "/sla", "/silences", "/admin/users", "/incidents/1"} {
		code, _, _ = b.get(path)
		require.Equal(t, http.StatusForbidden, code, path)
	}
	code, _, h = b.get("/tenants")
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/tenants/alpha", h.Get("Location"))
	code, csvBody, _ := b.get("/statements/2026-05")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 2, strings.Count(csvBody, "\n"), "a header and alpha's line only: %s", csvBody)
	b.get("/tenants/alpha")
	code, _, _ = b.post("/tenants/alpha/delete", url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusForbidden, code)
	code, _, _ = b.post("/tenants", url.Values{"csrf": {b.csrf}, "name": {"alpha"}, "plan": {"large"}, "prefixes": {"alpha. beta."}})
	require.Equal(t, http.StatusForbidden, code)
}

func TestTenantPagesForAdmins(t *testing.T) {
	f := startTenantFixture(t)
	b := newBrowser(t, f.testService)
	b.login("admin", testAdminPassword)
	code, page, _ := b.get("/tenants")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, `id="tenant-alpha"`)
	require.Contains(t, page, `id="plan-large"`)
	code, _, h := b.post("/plans", url.Values{"csrf": {b.csrf}, "name": {"medium"}, "produce_mb_s": {"10"}, "fetch_mb_s": {"20"},
		"disk_gb": {"100"}, "partitions": {"50"}, "connections": {"200"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/tenants", h.Get("Location"))
	var plans struct{ Plans []Plan }
	f.must(http.StatusOK, "GET", "/api/v1/plans", f.viewer, nil, &plans)
	require.Contains(t, plans.Plans, Plan{Name: "medium", ProduceBytesPerSecond: 10_000_000, FetchBytesPerSecond: 20_000_000,
		DiskBytes: 100_000_000_000, Partitions: 50, Connections: 200})
	code, page, _ = b.post("/plans", url.Values{"csrf": {b.csrf}, "name": {"broken"}, "produce_mb_s": {"-1"}, "fetch_mb_s": {"x"},
		"disk_gb": {"1"}, "partitions": {"1"}, "connections": {"1"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, page, "produce_mb_s")
	require.Contains(t, page, "fetch_mb_s")

	code, _, h = b.post("/tenants", url.Values{"csrf": {b.csrf}, "name": {"gamma"}, "plan": {"medium"}, "prefixes": {"gamma., gamma-"},
		"principals": {"User:gamma-app User:gamma-batch"}, "email": {"gamma@example.com"}})
	require.Equal(t, http.StatusSeeOther, code)
	require.Equal(t, "/tenants/gamma", h.Get("Location"))
	code, page, _ = b.get("/tenants/gamma")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "gamma. gamma-")
	require.Contains(t, page, "User:gamma-app User:gamma-batch")
	code, page, _ = b.post("/tenants", url.Values{"csrf": {b.csrf}, "name": {"delta"}, "plan": {"medium"}, "prefixes": {""}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, page, "prefixes")

	// Link a user as a member from the tenant page, then unlink.
	require.NoError(t, f.Store().CreateUser(context.Background(), "gus", "gus-password-1", store.RoleViewer))
	code, page, _ = b.get("/tenants/gamma")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, page, "gus (viewer)")
	var gus uint
	var users struct{ Users []store.User }
	f.must(http.StatusOK, "GET", "/api/v1/users", f.admin, nil, &users)
	for _, u := range users.Users {
		if u.Username == "gus" {
			gus = u.ID
		}
	}
	code, _, _ = b.post("/tenants/gamma/members", url.Values{"csrf": {b.csrf}, "user_id": {fmt.Sprint(gus)}, "action": {"add"}})
	require.Equal(t, http.StatusSeeOther, code)
	u, err := f.Store().GetUser(context.Background(), gus)
	require.NoError(t, err)
	require.Equal(t, "gamma", u.Tenant)
	code, _, _ = b.post("/tenants/gamma/delete", url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusConflict, code)
	code, _, _ = b.post("/tenants/gamma/members", url.Values{"csrf": {b.csrf}, "user_id": {fmt.Sprint(gus)}, "action": {"remove"}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = b.post("/tenants/gamma/delete", url.Values{"csrf": {b.csrf}})
	require.Equal(t, http.StatusSeeOther, code)
	code, _, _ = b.get("/tenants/gamma")
	require.Equal(t, http.StatusNotFound, code)
}

// TestTenantAlertReachesTheTenantsChannel: an incident opened by a tenant
// alert (tenant label) is sent to the tenant's own Slack channel and email
// as well as to operations' channel and address; another incident only to
// operations.
func TestTenantAlertReachesTheTenantsChannel(t *testing.T) {
	fs := &fakeSlack{}
	slackSrv := httptest.NewServer(fs)
	t.Cleanup(slackSrv.Close)
	sink := testutil.StartSMTP(t)
	smtpAddr := sink.Addr
	tokenFile := filepath.Join(t.TempDir(), "slack.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("xoxb-test\n"), 0o600))
	fake := newFakeTenantAdmin()
	fake.plans["small"] = Plan{Name: "small"}
	fake.tenants["payments"] = Tenant{Name: "payments", Plan: "small", Prefixes: []string{"payments."}, SlackChannel: "#payments-alerts", Email: "payments-team@example.com"}
	ts := startServiceWith(t, Options{tenants: fake}, func(c *Config) {
		c.Notifications = notify.Config{
			Slack: &notify.SlackConfig{TokenFile: tokenFile, Channel: "#ops", APIURL: slackSrv.URL + "/api"},
			Email: &notify.EmailConfig{Smarthost: smtpAddr, From: "tickets@example.com", To: []string{"oncall@example.com"}, TLSPolicy: "none"},
		}
	})
	id := ts.notify(amPayload("SluiceTenantThrottled", "firing", 0,
		amAlert{"SluiceTenantThrottled", "fpt", "firing", t0, map[string]string{"tenant": "payments"}})).Opened[0]
	testutil.WaitFor(t, 10*time.Second, "the alert in the tenant channel and operations", func() bool { return fs.count() >= 2 && len(sink.Subjects()) >= 2 })
	channels := map[string]string{}
	for _, c := range fs.since(0) {
		channels[c.Channel] = c.Text
	}
	require.Contains(t, channels, "#ops")
	require.Contains(t, channels["#payments-alerts"], "[tenant payments]")
	require.Contains(t, channels["#payments-alerts"], fmt.Sprintf("Incident #%d", id))
	var to []string
	for _, m := range sink.Messages() {
		to = append(to, m.Header.Get("To"))
	}
	require.ElementsMatch(t, []string{"<oncall@example.com>", "<payments-team@example.com>"}, to)

	// An incident without a tenant goes to operations only.
	slackMark, mailMark := fs.count(), len(sink.Subjects())
	ts.notify(amPayload("SluiceBrokerDown", "firing", 0, amAlert{"SluiceBrokerDown", "fpb", "firing", t0, map[string]string{"broker": "1"}}))
	testutil.WaitFor(t, 10*time.Second, "the operations notification", func() bool { return fs.count() >= slackMark+1 && len(sink.Subjects()) >= mailMark+1 })
	testutil.WaitFor(t, 10*time.Second, "the outbox to drain", func() bool {
		p, err := ts.Store().PendingOutbox(context.Background(), 10)
		return err == nil && len(p) == 0
	})
	for _, c := range fs.since(slackMark) {
		require.Equal(t, "#ops", c.Channel)
	}
	require.Len(t, sink.Subjects(), mailMark+1)
}
