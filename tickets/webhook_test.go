package tickets

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

var t0 = time.Date(2026, 5, 1, 10, 42, 7, 0, time.UTC)

func kinds(evs []store.TimelineEvent) []string {
	var out []string
	for _, e := range evs {
		if e.Kind != "snapshot" { // captured asynchronously
			out = append(out, e.Kind)
		}
	}
	return out
}

func TestWebhookResentGroupUpdatesNeverDuplicates(t *testing.T) {
	ts := startService(t)
	p := amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, map[string]string{"broker": "2"}})
	first := ts.notify(p)
	require.Len(t, first.Opened, 1)
	for range 3 { // group_interval and repeat_interval re-sends, config reloads
		ts.clock.Advance(time.Minute)
		res := ts.notify(p)
		require.Empty(t, res.Opened)
		require.Equal(t, 0, res.NewAlarms)
		require.Equal(t, 1, res.UpdatedAlarms)
	}
	incs := ts.incidents("")
	require.Len(t, incs, 1)
	d := ts.incident(incs[0].ID)
	require.Len(t, d.Alarms, 1)
	require.Equal(t, store.StatusTriggered, d.Status)
	require.Equal(t, "critical", d.Severity)
	require.Equal(t, "local", d.Cluster)
	require.Equal(t, []string{"2"}, d.Brokers)
	require.Equal(t, []string{"created", "alarm_firing"}, kinds(d.Timeline))
	require.Equal(t, t0, d.ImpactStartAt.UTC())
}

func TestWebhookTracksStatePerAlert(t *testing.T) {
	ts := startService(t)
	a := amAlert{"URP", "fpA", "firing", t0, map[string]string{"topic": "orders"}}
	b := amAlert{"URP", "fpB", "firing", t0.Add(time.Second), map[string]string{"topic": "payments"}}
	res := ts.notify(amPayload("URP", "firing", 0, a, b))
	id := res.Opened[0]
	require.Equal(t, 2, res.NewAlarms)

	// One alert resolved, the other still firing: the group is "firing".
	a.status = "resolved"
	ts.notify(amPayload("URP", "firing", 0, a, b))
	d := ts.incident(id)
	require.Equal(t, store.StatusTriggered, d.Status)
	require.Equal(t, []string{"orders", "payments"}, d.Topics)
	states := map[string]string{}
	for _, al := range d.Alarms {
		states[al.Fingerprint] = al.Status
	}
	require.Equal(t, map[string]string{"fpA": "resolved", "fpB": "firing"}, states)

	// A lying top-level status is not trusted: B is still firing.
	ts.notify(amPayload("URP", "resolved", 0, a, b))
	require.Equal(t, store.StatusTriggered, ts.incident(id).Status)

	// A late firing re-send of A (resolved is final for fingerprint+startsAt)
	// is ignored.
	a.status = "firing"
	res = ts.notify(amPayload("URP", "firing", 0, a, b))
	require.Equal(t, 1, res.Ignored)

	// All resolved: the incident resolves by itself.
	a.status, b.status = "resolved", "resolved"
	ts.clock.Advance(3 * time.Minute)
	ts.notify(amPayload("URP", "resolved", 0, a, b))
	d = ts.incident(id)
	require.Equal(t, store.StatusResolved, d.Status)
	require.Equal(t, "alertmanager", d.ResolvedBy)
	require.Equal(t, []string{"created", "alarm_firing", "alarm_firing", "alarm_resolved", "alarm_resolved", "resolved"}, kinds(d.Timeline))
}

func TestWebhookResolveWithoutFiringCreatesNothingVisible(t *testing.T) {
	ts := startService(t)
	res := ts.notify(amPayload("Ghost", "resolved", 0, amAlert{"Ghost", "fpG", "resolved", t0, nil}))
	require.Equal(t, 1, res.Ignored)
	require.Empty(t, res.Opened)
	require.Empty(t, ts.incidents(""))
}

func TestWebhookReopensWithinWindowElseOpensNew(t *testing.T) {
	ts := startService(t) // reopen window 10m
	a := amAlert{"Lag", "fpL", "firing", t0, map[string]string{"consumergroup": "billing"}}
	id := ts.notify(amPayload("Lag", "firing", 0, a)).Opened[0]
	ts.must(http.StatusOK, "POST", "/api/v1/incidents/"+itoa(id)+"/ack", ts.operator, nil, nil)
	a.status = "resolved"
	ts.notify(amPayload("Lag", "resolved", 0, a))
	require.Equal(t, store.StatusResolved, ts.incident(id).Status)

	// Fires again 5 minutes later: same incident, reopened, still acknowledged.
	ts.clock.Advance(5 * time.Minute)
	a2 := amAlert{"Lag", "fpL", "firing", t0.Add(5 * time.Minute), map[string]string{"consumergroup": "billing"}}
	res := ts.notify(amPayload("Lag", "firing", 0, a2))
	require.Equal(t, []uint{id}, res.Opened)
	d := ts.incident(id)
	require.Equal(t, store.StatusAcknowledged, d.Status)
	require.Equal(t, 1, d.ReopenCount)
	require.Nil(t, d.ResolvedAt)
	require.Len(t, d.Alarms, 2)
	require.Len(t, ts.incidents(""), 1)

	// Resolves, then fires again after the window: a new incident, the old one
	// closed.
	a2.status = "resolved"
	ts.notify(amPayload("Lag", "resolved", 0, a2))
	ts.clock.Advance(11 * time.Minute)
	a3 := amAlert{"Lag", "fpL", "firing", t0.Add(16 * time.Minute), nil}
	res = ts.notify(amPayload("Lag", "firing", 0, a3))
	require.Len(t, res.Opened, 1)
	require.NotEqual(t, id, res.Opened[0])
	require.Equal(t, store.StatusClosed, ts.incident(id).Status)
	require.Equal(t, store.StatusTriggered, ts.incident(res.Opened[0]).Status)
}

func TestWebhookRecordsTruncatedAlerts(t *testing.T) {
	ts := startService(t)
	id := ts.notify(amPayload("Many", "firing", 42, amAlert{"Many", "fpM", "firing", t0, nil})).Opened[0]
	d := ts.incident(id)
	require.Equal(t, 42, d.TruncatedAlerts)
	require.Contains(t, kinds(d.Timeline), "alarms_truncated")
}

func TestWebhookAlertUnderNewGroupKeyStaysWithItsIncident(t *testing.T) {
	ts := startService(t)
	a := amAlert{"DiskFull", "fpD", "firing", t0, nil}
	id := ts.notify(amPayload("DiskFull", "firing", 0, a)).Opened[0]
	// A routing edit changes the group key; the alert is the same one.
	res := ts.notify(amPayload("DiskFullRenamed", "firing", 0, a))
	require.Empty(t, res.Opened)
	require.Len(t, ts.incidents(""), 1)
	a.status = "resolved"
	ts.notify(amPayload("DiskFullRenamed", "resolved", 0, a))
	require.Equal(t, store.StatusResolved, ts.incident(id).Status)
}

func TestWebhookRejectsBadPayloads(t *testing.T) {
	ts := startService(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	for _, tc := range []struct {
		name, body string
		code       int
		msg        string
	}{
		{"malformed", `{"version":"4",`, 400, "malformed JSON"},
		{"version 3", `{"version":"3","groupKey":"g","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"2026-05-01T10:00:00Z"}]}`, 400, "version"},
		{"bad alert status", `{"version":"4","groupKey":"g","alerts":[{"status":"pending","labels":{"a":"b"},"startsAt":"2026-05-01T10:00:00Z"}]}`, 400, "neither firing nor resolved"},
		{"no startsAt", `{"version":"4","groupKey":"g","alerts":[{"status":"firing","labels":{"a":"b"}}]}`, 400, "startsAt"},
		{"oversized", `{"version":"4","groupKey":"` + strings.Repeat("x", 9000) + `"}`, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := ts.do("POST", "/api/v1/integrations/alertmanager", ts.operator, tc.body)
			require.Equal(t, tc.code, code, "%s", body)
			require.Contains(t, string(body), tc.msg)
		})
	}
	require.Empty(t, ts.incidents(""))
}
