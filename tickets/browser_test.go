package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

// fakePrometheus serves /api/v1/query_range in Prometheus' wire format with a
// ramp for every query, so the snapshot has charts.
func fakePrometheus(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, _ := time.Parse(time.RFC3339, "2026-05-01T10:15:00Z")
		var values []any
		for i := range 60 {
			values = append(values, []any{float64(start.Unix() + int64(i*30)), fmt.Sprint(i % 17)})
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix",
			"result": []any{map[string]any{"metric": map[string]string{"instance": "broker-1"}, "values": values}}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowser drives Debian's chromium through the UI: log in, open an
// incident's snapshot chart, acknowledge the incident, file a ticket for it.
// Screenshots go to $SLUICE_SCREENSHOTS (docs/screenshots keeps current ones).
func TestBrowser(t *testing.T) {
	br := startChromium(t)

	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminListen = "127.0.0.1:0"
	cfg.OffsetsTopicNumPartitions = 1
	b := brokertest.Run(t, cfg)
	prom := fakePrometheus(t)
	am := startAlerting(t)
	ts := startService(t, func(c *Config) {
		c.Snapshot.AdminURLs = []string{b.AdminAddr()}
		c.Snapshot.PrometheusURL = prom.URL
		c.AlertingURL = am
	})
	ts.clock.Advance(3 * time.Minute)
	id := ts.notify(amPayload("SluiceUnderReplicatedPartitions", "firing", 0,
		amAlert{"SluiceUnderReplicatedPartitions", "fp1", "firing", t0, map[string]string{"broker": "1", "topic": "orders"}})).Opened[0]
	testutil.WaitFor(t, 10*time.Second, `ts.incident(id).Snapshot != nil`, func() bool { return ts.incident(id).Snapshot != nil })

	ctx, cancel := context.WithTimeout(br.ctx, 60*time.Second)
	defer cancel()
	shot := br.shot
	var status, diagnosis, ticketStatus, heading, newToken, silenceState, tokenExpires, passwordFlash string
	err := chromedp.Do(ctx,
		chromedp.Navigate(ts.base+"/incidents"),
		chromedp.WaitVisible(chromedp.ID("username")),
		shot("tickets-login.png"),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), testAdminPassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("#incident-rows table")),
		textOf("h1", &heading),
		shot("tickets-incidents.png"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/incidents/%d"]`, id))),
		chromedp.WaitVisible(chromedp.ID("diagnosis")),
		textOf("#diagnosis", &diagnosis),
		chromedp.WaitVisible(chromedp.CSS("svg.chart polyline")),
		shot("tickets-incident-snapshot.png"),
		chromedp.Click(chromedp.ID("ack")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.querySelector("#incident-status") !== null && document.querySelector("#incident-status").textContent === "acknowledged"`,
				chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		}),
		textOf("#incident-status", &status),
		shot("tickets-incident-acknowledged.png"),
		chromedp.Navigate(fmt.Sprintf("%s/tickets?incident=%d", ts.base, id)),
		chromedp.WaitVisible(chromedp.ID("title")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("title").value = ""`),
		chromedp.SendKeys(chromedp.ID("title"), "Broker 1 keeps dropping out of the ISR"),
		chromedp.SendKeys(chromedp.ID("description"), "Replica fetches time out every few minutes; see the incident snapshot."),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("priority").value = "P2"`),
		shot("tickets-file-ticket.png"),
		chromedp.Click(chromedp.ID("file")),
		chromedp.WaitVisible(chromedp.ID("ticket-status")),
		textOf("#ticket-status", &ticketStatus),
		shot("tickets-ticket.png"),
		chromedp.Navigate(ts.base+"/cluster"),
		chromedp.WaitVisible(chromedp.CSS(".diagnosis")),
		shot("tickets-cluster.png"),
		chromedp.Navigate(ts.base+"/sla"),
		chromedp.WaitVisible(chromedp.CSS("h1")),
		shot("tickets-sla.png"),
		// Silence the incident's alarms in alerting, from its page.
		chromedp.Navigate(fmt.Sprintf("%s/silences?incident=%d", ts.base, id)),
		chromedp.WaitVisible(chromedp.ID("matchers")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("silence-comment").value = ""`),
		chromedp.SendKeys(chromedp.ID("silence-comment"), "Replacing broker 1's disk"),
		chromedp.Click(chromedp.ID("create-silence-button")),
		chromedp.WaitVisible(chromedp.CSS("tbody tr[id^=silence-] .badge")),
		textOf("tbody tr[id^=silence-] .badge", &silenceState),
		shot("tickets-silences.png"),
		// An admin mints an API token: shown once.
		chromedp.Navigate(ts.base+"/admin/tokens"),
		chromedp.WaitVisible(chromedp.ID("token-name")),
		chromedp.SendKeys(chromedp.ID("token-name"), "alertmanager"),
		chromedp.SendKeys(chromedp.ID("token-expires"), "1h"),
		chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("new-token")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			v, err := chromedp.Evaluate[string](`document.getElementById("new-token").value`)(ctx, tg)
			newToken = v
			return err
		}),
		// The page's script is a static file the CSP allows: focusing the
		// token selects it for copying.
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`(() => { const e = document.getElementById("new-token"); e.focus();
				return e.selectionStart === 0 && e.selectionEnd === e.value.length && e.value.length > 0 })()`,
				chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		}),
		textOf("tbody tr:last-child .token-expires", &tokenExpires),
		shot("tickets-admin-tokens.png"),
		chromedp.Navigate(ts.base+"/admin/users"),
		chromedp.WaitVisible(chromedp.ID("new-username")),
		chromedp.SendKeys(chromedp.ID("new-username"), "otto"),
		chromedp.SendKeys(chromedp.ID("new-password"), "operator password"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("new-role").value = "operator"`),
		chromedp.Click(chromedp.ID("create-user")),
		chromedp.WaitVisible(chromedp.CSS(`select[id^="role-"]`)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.body.textContent.includes("otto")`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		}),
		shot("tickets-admin-users.png"),
		// Every user changes their own password.
		chromedp.Click(chromedp.ID("change-password")),
		chromedp.WaitVisible(chromedp.ID("current-password")),
		chromedp.SendKeys(chromedp.ID("current-password"), testAdminPassword),
		chromedp.SendKeys(chromedp.ID("new-password"), "a new admin password"),
		chromedp.SendKeys(chromedp.ID("confirm-password"), "a new admin password"),
		chromedp.Click(chromedp.ID("save-password")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.body.textContent.includes("Password changed")`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
			return err
		}),
		textOf("[role=status]", &passwordFlash),
		shot("tickets-password.png"),
		// Still logged in: this session stays.
		chromedp.Navigate(ts.base+"/incidents"),
		chromedp.WaitVisible(chromedp.CSS("#incident-rows table")),
	)
	require.NoError(t, err)
	require.Equal(t, "Incidents", heading)
	require.NotEmpty(t, diagnosis)
	require.Equal(t, "acknowledged", strings.TrimSpace(status))
	require.Equal(t, "new", strings.TrimSpace(ticketStatus))

	d := ts.incident(id)
	require.Equal(t, store.StatusAcknowledged, d.Status)
	require.Equal(t, "admin", d.FirstAckBy)
	require.Len(t, d.Tickets, 1)
	require.Equal(t, "Broker 1 keeps dropping out of the ISR", d.Tickets[0].Title)
	require.Equal(t, "P2", d.Tickets[0].Priority)
	require.Equal(t, "active", strings.TrimSpace(silenceState))
	require.True(t, strings.HasPrefix(newToken, "slt_"), newToken)
	ts.must(http.StatusOK, "GET", "/api/v1/incidents", newToken, nil, nil)
	require.Equal(t, ts.clock.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05 UTC"), strings.TrimSpace(tokenExpires))
	ts.clock.Advance(time.Hour)
	code, _ := ts.do("GET", "/api/v1/incidents", newToken, nil)
	require.Equal(t, http.StatusUnauthorized, code, "the token expired after the hour chosen in the browser")
	require.Contains(t, passwordFlash, "Password changed")
	_, err = ts.Store().Authenticate(context.Background(), "admin", "a new admin password")
	require.NoError(t, err)
	_, err = ts.Store().Authenticate(context.Background(), "otto", "operator password")
	require.NoError(t, err)
	t.Logf("screenshots in %s", br.shots)
}
