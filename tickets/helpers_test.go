package tickets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql's connection opener of pools closed at the end of Run.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
		// pgx's background health check of pools closed at the end of Run.
		goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
	)
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testClock is a clock tests move by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testDatabase returns the Database URL of a fresh schema on the PostgreSQL at
// $SLUICE_TEST_POSTGRES, dropped at cleanup, or "" for SQLite.
func testDatabase(t testing.TB) string {
	base := os.Getenv("SLUICE_TEST_POSTGRES")
	if base == "" {
		return ""
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	db, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	require.NoError(t, err)
	require.NoError(t, db.Exec("CREATE SCHEMA "+schema).Error)
	t.Cleanup(func() {
		db.Exec("DROP SCHEMA " + schema + " CASCADE")
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// testService is a running service with an admin, operator and viewer token.
type testService struct {
	*Service
	t        testing.TB
	base     string
	clock    *testClock
	admin    string
	operator string
	viewer   string
}

const testAdminPassword = "correct horse battery"

func startService(t testing.TB, mutate ...func(*Config)) *testService {
	t.Helper()
	return startServiceWith(t, Options{}, mutate...)
}

// startServiceWith is startService with opts (its clock is the test's).
func startServiceWith(t testing.TB, opts Options, mutate ...func(*Config)) *testService {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Database = testDatabase(t)
	cfg.AdminPassword = testAdminPassword
	cfg.ReopenWindow = 10 * time.Minute
	// Pages at once: the test clock stands still, so a page waiting out the
	// transient window would never be due (TestTransientIncidentDoesNotPage
	// moves the clock).
	cfg.TransientWindow = -1
	for _, m := range mutate {
		m(&cfg)
	}
	clock := &testClock{now: time.Date(2026, 5, 1, 10, 45, 0, 0, time.UTC)}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Now = clock.Now
	svc, err := New(ctx, cfg, testLogger(), opts)
	require.NoError(t, err)
	run := testutil.Start(t, "the ticket service", svc.Run)
	t.Cleanup(cancel) // before run stops, as when ctx was Run's too
	run.WaitReady(t, svc.Ready(), time.Minute)
	ts := &testService{Service: svc, t: t, base: "http://" + svc.Addr(), clock: clock}
	for _, r := range []struct {
		dst  *string
		role store.Role
	}{{&ts.admin, store.RoleAdmin}, {&ts.operator, store.RoleOperator}, {&ts.viewer, store.RoleViewer}} {
		tok, err := svc.Store().CreateToken(ctx, string(r.role), r.role)
		require.NoError(t, err)
		*r.dst = tok
	}
	return ts
}

// do sends a request with token (none if empty) and a body (marshalled unless
// it is a string or []byte) and returns the status and the body.
func (ts *testService) do(method, path, token string, body any) (int, []byte) {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		require.NoError(ts.t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	require.NoError(ts.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ts.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(ts.t, err)
	return resp.StatusCode, out
}

// must sends a request that must answer want, and decodes the answer into out.
func (ts *testService) must(want int, method, path, token string, body, out any) {
	ts.t.Helper()
	code, b := ts.do(method, path, token, body)
	require.Equal(ts.t, want, code, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(ts.t, json.Unmarshal(b, out), "%s", b)
	}
}

// amAlert builds one alert of a webhook payload.
type amAlert struct {
	name, fp, status string
	startsAt         time.Time
	labels           map[string]string
}

// amPayload is an Alertmanager webhook v4 payload of group with alerts.
func amPayload(group string, topStatus string, truncated int, alerts ...amAlert) map[string]any {
	var as []map[string]any
	for _, a := range alerts {
		labels := map[string]string{"alertname": a.name, "severity": "critical", "cluster": "local"}
		for k, v := range a.labels {
			labels[k] = v
		}
		ends := "0001-01-01T00:00:00Z"
		if a.status == "resolved" {
			ends = a.startsAt.Add(time.Minute).Format(time.RFC3339)
		}
		as = append(as, map[string]any{
			"status": a.status, "labels": labels, "annotations": map[string]string{"summary": a.name + " is firing"},
			"startsAt": a.startsAt.Format(time.RFC3339), "endsAt": ends,
			"generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0", "fingerprint": a.fp,
		})
	}
	return map[string]any{
		"version": "4", "groupKey": fmt.Sprintf(`{}/{severity="critical"}:{alertname=%q}`, group), "truncatedAlerts": truncated,
		"status": topStatus, "receiver": "tickets", "groupLabels": map[string]string{"alertname": group},
		"commonLabels": map[string]string{"alertname": group, "severity": "critical"}, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager:9093", "alerts": as,
	}
}

func (ts *testService) notify(payload map[string]any) store.IntakeResult {
	ts.t.Helper()
	var res store.IntakeResult
	ts.must(http.StatusOK, "POST", "/api/v1/integrations/alertmanager", ts.operator, payload, &res)
	return res
}

type incidentJSON struct {
	store.IncidentDetail
	SLA struct {
		AckBreached     bool `json:"ack_breached"`
		ResolveBreached bool `json:"resolve_breached"`
	} `json:"sla"`
}

func (ts *testService) incident(id uint) incidentJSON {
	ts.t.Helper()
	var d incidentJSON
	ts.must(http.StatusOK, "GET", fmt.Sprintf("/api/v1/incidents/%d", id), ts.viewer, nil, &d)
	return d
}

func (ts *testService) incidents(query string) []store.Incident {
	ts.t.Helper()
	var out struct{ Incidents []store.Incident }
	ts.must(http.StatusOK, "GET", "/api/v1/incidents"+query, ts.viewer, nil, &out)
	return out.Incidents
}

func itoa(id uint) string { return fmt.Sprint(id) }
