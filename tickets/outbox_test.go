package tickets

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// outboxFixture starts and stops services on one database, as restarts of
// one deployment, with Slack at a fake.
type outboxFixture struct {
	t     *testing.T
	cfg   Config
	clock *testClock
	slack *fakeSlack
}

func newOutboxFixture(t *testing.T) *outboxFixture {
	fs := &fakeSlack{}
	srv := httptest.NewServer(fs)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "slack.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("xoxb-test\n"), 0o600))
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Database = testDatabase(t)
	cfg.AdminPassword = testAdminPassword
	cfg.TransientWindow = -1 // pages at once: the test clock stands still
	cfg.Notifications = notify.Config{Slack: &notify.SlackConfig{TokenFile: tokenFile, Channel: "#ops", APIURL: srv.URL + "/api"}}
	return &outboxFixture{t: t, cfg: cfg, clock: &testClock{now: t0.Add(time.Hour)}, slack: fs}
}

func (f *outboxFixture) open() *Service {
	svc, err := New(context.Background(), f.cfg, testLogger(), Options{Now: f.clock.Now})
	require.NoError(f.t, err)
	return svc
}

// run serves svc until the returned stop is called.
func (f *outboxFixture) run(svc *Service) (stop func()) {
	r := testutil.Start(f.t, "the ticket service", svc.Run)
	r.WaitReady(f.t, svc.Ready(), time.Minute)
	return func() { r.Stop(f.t) }
}

func outbox(t *testing.T, svc *Service) []store.OutboxMessage {
	var ms []store.OutboxMessage
	require.NoError(t, svc.Store().DB().Order("id").Find(&ms).Error)
	return ms
}

// TestNotificationSurvivesRestart: the service stops right after an
// incident change committed, before announcing it; the next start delivers
// it, once, and later starts do not deliver it again.
func TestNotificationSurvivesRestart(t *testing.T) {
	f := newOutboxFixture(t)
	ctx := context.Background()

	// First life: the webhook opens an incident and an operator acknowledges
	// it; the process dies before its workers run.
	first := f.open()
	tok, err := first.Store().CreateToken(ctx, "am", store.RoleOperator)
	require.NoError(t, err)
	api := httptest.NewServer(first.Handler())
	ts := &testService{Service: first, t: t, base: api.URL, operator: tok, viewer: tok}
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	ts.must(http.StatusOK, "POST", "/api/v1/incidents/"+itoa(id)+"/ack", tok, nil, nil)
	api.Close()
	require.NoError(t, first.Close())
	require.Zero(t, f.slack.count(), "nothing was sent before the crash")

	// Second life: both changes are delivered, in order, once.
	second := f.open()
	stop := f.run(second)
	testutil.WaitFor(t, 10*time.Second, "the second instance to deliver every message", func() bool {
		for _, m := range outbox(t, second) {
			if m.DeliveredAt == nil {
				return false
			}
		}
		return true
	})
	ms := outbox(t, second)
	require.Len(t, ms, 2)
	require.Equal(t, notify.IncidentOpened, ms[0].Kind)
	require.Equal(t, notify.IncidentAcknowledged, ms[1].Kind)
	for _, m := range ms {
		require.Equal(t, 1, m.Attempts)
		require.Equal(t, "slack", m.DeliveredTo)
	}
	calls := f.slack.since(0)
	require.Len(t, calls, 3, "the incident's message, then its update and the thread line of the ack: %+v", calls)
	require.Equal(t, "chat.postMessage", calls[0].Method)
	require.Contains(t, calls[0].Text, "opened")
	// The snapshot job queued with the incident ran too.
	testutil.WaitFor(t, 10*time.Second, "the snapshot taken by the second instance", func() bool {
		_, err := second.Store().LatestSnapshot(ctx, id, false)
		return err == nil
	})
	stop()

	// Third life: nothing is delivered twice.
	third := f.open()
	n, err := third.drainOutbox(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, f.slack.since(0), 3)
	require.NoError(t, third.Close())
}

// TestNotificationHonoursRetryAfter: a rate-limited delivery is retried no
// sooner than Slack's Retry-After, and then delivered once.
func TestNotificationHonoursRetryAfter(t *testing.T) {
	f := newOutboxFixture(t)
	f.slack.limited = 1
	svc := f.open()
	stop := f.run(svc)
	defer stop()
	ctx := context.Background()
	tk := &store.Ticket{Title: "disk", Priority: "P2", Status: "new"}
	_, err := svc.fileTicket(ctx, principal{Name: "otto", Role: store.RoleOperator}, &ticketRequest{Title: tk.Title, Priority: tk.Priority})
	require.NoError(t, err)
	var m store.OutboxMessage
	testutil.WaitFor(t, 10*time.Second, "the first delivery attempt", func() bool {
		ms := outbox(t, svc)
		m = ms[0]
		return len(ms) == 1 && m.Attempts == 1
	})
	require.Nil(t, m.DeliveredAt)
	require.Contains(t, m.LastError, "slack")
	require.GreaterOrEqual(t, m.NextAttemptAt.Sub(f.clock.Now()), 30*time.Second, "Retry-After is honoured")
	require.Zero(t, f.slack.count())
	resp, err := http.Get("http://" + svc.Addr() + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(metrics), "sluice_tickets_outbox_pending 1\n")

	f.clock.Advance(31 * time.Second)
	svc.kick()
	testutil.WaitFor(t, 10*time.Second, `outbox(t, svc)[0].DeliveredAt != nil`, func() bool { return outbox(t, svc)[0].DeliveredAt != nil })
	require.Equal(t, 1, f.slack.count())
	require.Equal(t, 2, outbox(t, svc)[0].Attempts)
}

func TestRetryDelayIsCapped(t *testing.T) {
	for range 20 { // jittered: check the bounds many times
		require.GreaterOrEqual(t, notify.RetryDelay(1, 0), 500*time.Millisecond)
		require.LessOrEqual(t, notify.RetryDelay(1, 0), 1500*time.Millisecond)
		require.LessOrEqual(t, notify.RetryDelay(40, 0), notify.MaxRetryInterval, "capped")
		require.Greater(t, notify.RetryDelay(12, 0), 30*time.Second, "grows")
	}
	require.Equal(t, 30*time.Second, notify.RetryDelay(1, 30*time.Second), "Retry-After is honoured")
	require.Less(t, notify.RetryDelay(1, 100*time.Hour), 100*time.Hour, "a receiver cannot park a message for ever")
}

// TestClusterPageIsCached: visits within cluster_cache_age share one
// snapshot; after it, the next visit captures a new one.
func TestClusterPageIsCached(t *testing.T) {
	ts := startService(t)
	b := newBrowser(t, ts)
	b.login("admin", testAdminPassword)
	for range 3 {
		code, _, _ := b.get("/cluster")
		require.Equal(t, 200, code)
	}
	captures := func() int {
		ts.cluster.mu.Lock()
		defer ts.cluster.mu.Unlock()
		return ts.cluster.captures
	}
	require.Equal(t, 1, captures())
	ts.clock.Advance(DefaultConfig().ClusterCacheAge)
	b.get("/cluster")
	require.Equal(t, 1, captures(), "exactly cluster_cache_age old is still fresh")
	ts.clock.Advance(time.Second)
	b.get("/cluster")
	require.Equal(t, 2, captures())

	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ClusterCacheAge = -time.Second
	require.ErrorContains(t, cfg.Validate(), "cluster_cache_age")
}

// TestSnapshotSecretsHiddenFromViewers: a snapshot holding a secret (captured
// before a pattern existed, or by a collector that missed it) is redacted on
// the incident page and in the API, not only in the bundle.
func TestSnapshotSecretsHiddenFromViewers(t *testing.T) {
	ts := startService(t)
	ctx := context.Background()
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	// The automatic snapshot first, so that ours is the latest.
	testutil.WaitFor(t, 10*time.Second, "the incident's snapshot", func() bool {
		_, err := ts.Store().LatestSnapshot(ctx, id, false)
		return err == nil
	})
	data := `{"captured_at":"2026-05-01T10:45:00Z","target":{"incident_id":` + itoa(id) + `},"logs":[` +
		`{"file":"broker.log","line":"WARN connect failed db_password=hunter2"},` +
		`{"file":"broker.log","line":"posting to https://hooks.slack.com/services/T1/B2/abcdefghijklmnopqrstuvwx"},` +
		`{"file":"broker.log","line":"Authorization: Basic dXNlcjpodW50ZXIy"}],` +
		`"errors":["dial postgres://u:pgpass42@db/x: refused","slack: xoxb-1234567890-abcdefghij"],"diagnosis":"broker 2 down"}`
	require.NoError(t, ts.Store().SaveSnapshot(ctx, &store.Snapshot{IncidentID: id, CapturedAt: t0, Reason: "test", Diagnosis: "broker 2 down", Data: data}))
	require.NoError(t, ts.Store().CreateUser(ctx, "vera", "viewer password", store.RoleViewer))
	b := newBrowser(t, ts)
	b.login("vera", "viewer password")
	_, page, _ := b.get("/incidents/" + itoa(id))
	_, api := ts.do("GET", "/api/v1/incidents/"+itoa(id)+"/snapshot", ts.viewer, nil)
	_, bundle := ts.do("GET", "/api/v1/incidents/"+itoa(id)+"/snapshot/bundle", ts.viewer, nil)
	require.Contains(t, page, "broker 2 down")
	for _, secret := range []string{"hunter2", "abcdefghijklmnopqrstuvwx", "dXNlcjpodW50ZXIy", "pgpass42", "xoxb-1234567890"} {
		require.NotContains(t, page, secret, "incident page")
		require.NotContains(t, string(api), secret, "snapshot API")
		require.NotContains(t, string(bundle), secret, "bundle (gzip: a cheap check only)")
	}
}
