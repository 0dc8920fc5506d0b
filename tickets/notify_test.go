package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	amnotify "github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/notify"
)

// slackCall is one Web API call the fake Slack received.
type slackCall struct {
	Method, Channel, Text, ThreadTS, TS, Blocks string
}

// fakeSlack speaks the Slack Web API's wire format for chat.postMessage and
// chat.update (form-encoded requests, JSON answers), as the real slack-go
// client sends them, and records the calls.
type fakeSlack struct {
	mu    sync.Mutex
	calls []slackCall
	n     int
	// limited is how many of the next requests are answered 429 with
	// Retry-After: 30, as Slack rate-limits; they are not recorded.
	limited int
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	if f.limited > 0 {
		f.limited--
		f.mu.Unlock()
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer xoxb-test" && r.Form.Get("token") != "xoxb-test" {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	method := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	f.mu.Lock()
	c := slackCall{Method: method, Channel: r.Form.Get("channel"), Text: r.Form.Get("text"), ThreadTS: r.Form.Get("thread_ts"),
		TS: r.Form.Get("ts"), Blocks: r.Form.Get("blocks")}
	f.calls = append(f.calls, c)
	f.n++
	ts := fmt.Sprintf("1777000000.%06d", f.n)
	f.mu.Unlock()
	switch method {
	case "chat.postMessage":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0OPS", "ts": ts})
	case "chat.update":
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": c.Channel, "ts": c.TS, "text": c.Text})
	default:
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "unknown_method"})
	}
}

func (f *fakeSlack) since(i int) []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slackCall(nil), f.calls[i:]...)
}

func (f *fakeSlack) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// TestNotifications drives changes through the API and checks what reaches a
// fake Slack Web API (through alerting/notify/slack and the real slack-go
// client) and a real SMTP server (through alerting/notify/email).
func TestNotifications(t *testing.T) {
	fs := &fakeSlack{}
	slackSrv := httptest.NewServer(fs)
	t.Cleanup(slackSrv.Close)
	sink := testutil.StartSMTP(t)
	smtpAddr := sink.Addr
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "slack.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("xoxb-test\n"), 0o600))

	// `sluice alerting` posted the BrokerDown group to #ops earlier and keeps
	// the message in its store; the tickets webhook is in the same receiver.
	alertingMessages := filepath.Join(dir, "slack-messages.json")
	payload := amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, map[string]string{"broker": "2"}})
	groupKey := payload["groupKey"].(string)
	st, err := slack.OpenStore(alertingMessages)
	require.NoError(t, err)
	an, err := slack.New(slack.Config{Token: "xoxb-test", Channel: "#ops", APIURL: slackSrv.URL + "/api/"}, st, testLogger())
	require.NoError(t, err)
	actx := amnotify.WithReceiverName(amnotify.WithGroupKey(context.Background(), groupKey), "tickets")
	v := an.Notify(actx, alert.New(model.Alert{Labels: model.LabelSet{"alertname": "BrokerDown", "severity": "critical"}, StartsAt: t0}, t0, false))
	require.NoError(t, v.Err())
	alertTS := fs.since(0)[0]
	require.Equal(t, "chat.postMessage", alertTS.Method)
	rec, ok := st.Get(slack.MessageID("tickets", "#ops", groupKey))
	require.True(t, ok)

	ts := startService(t, func(c *Config) {
		c.ExternalURL = "https://tickets.example.com/"
		c.Notifications = notify.Config{
			Slack: &notify.SlackConfig{TokenFile: tokenFile, Channel: "#ops", APIURL: slackSrv.URL + "/api", AlertingMessagesFile: alertingMessages},
			Email: &notify.EmailConfig{Smarthost: smtpAddr, From: "tickets@example.com", To: []string{"oncall@example.com"}, TLSPolicy: "none"},
		}
	})

	t.Run("incident from an alert answers in the alert's thread", func(t *testing.T) {
		mark := fs.count()
		id := ts.notify(payload).Opened[0]
		testutil.WaitFor(t, 5*time.Second, `fs.count() >= mark+1`, func() bool { return fs.count() >= mark+1 })
		ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/incidents/%d/ack", id), ts.operator, nil, nil)
		ts.must(http.StatusCreated, "POST", fmt.Sprintf("/api/v1/incidents/%d/comments", id), ts.operator, map[string]string{"body": "swapping the disk"}, nil)
		testutil.WaitFor(t, 5*time.Second, `fs.count() >= mark+3`, func() bool { return fs.count() >= mark+3 })
		calls := fs.since(mark)
		require.Len(t, calls, 3)
		for _, c := range calls {
			require.Equal(t, "chat.postMessage", c.Method)
			require.Equal(t, rec.Channel, c.Channel)
			require.Equal(t, rec.TS, c.ThreadTS, "in the alert's thread: %+v", c)
		}
		require.Contains(t, calls[0].Text, fmt.Sprintf("Incident #%d", id))
		require.Contains(t, calls[0].Text, "opened")
		require.Contains(t, calls[1].Text, "acknowledged by token:operator")
		require.Contains(t, calls[2].Text, "swapping the disk")
		require.Contains(t, calls[2].Text, fmt.Sprintf("<https://tickets.example.com/incidents/%d|Open in Sluice OPS>", id))
		testutil.WaitFor(t, 5*time.Second, `len(sink.Subjects()) >= 3`, func() bool { return len(sink.Subjects()) >= 3 })
		subjects := sink.Subjects()
		require.Contains(t, subjects[0], fmt.Sprintf("Incident #%d", id))
		require.Contains(t, subjects[1], "acknowledged")
	})

	t.Run("ticket gets its own message, changes in its thread", func(t *testing.T) {
		mark, mails := fs.count(), len(sink.Subjects())
		var tk struct{ ID uint }
		ts.must(http.StatusCreated, "POST", "/api/v1/tickets", ts.operator, map[string]string{"title": "Broker 2 disk is failing", "priority": "P2"}, &tk)
		testutil.WaitFor(t, 5*time.Second, `fs.count() >= mark+1`, func() bool { return fs.count() >= mark+1 })
		first := fs.since(mark)[0]
		require.Equal(t, "chat.postMessage", first.Method)
		require.Equal(t, "#ops", first.Channel)
		require.Empty(t, first.ThreadTS)
		require.Contains(t, first.Text, fmt.Sprintf("Ticket #%d", tk.ID))
		require.Contains(t, first.Blocks, "Broker 2 disk is failing")

		ts.must(http.StatusCreated, "POST", fmt.Sprintf("/api/v1/tickets/%d/comments", tk.ID), ts.operator, map[string]string{"body": "ordered a new disk"}, nil)
		testutil.WaitFor(t, 5*time.Second, `fs.count() >= mark+3`, func() bool { return fs.count() >= mark+3 })
		calls := fs.since(mark + 1)
		require.Equal(t, "chat.update", calls[0].Method, "the ticket's message is kept up to date")
		require.Equal(t, "chat.postMessage", calls[1].Method)
		require.NotEmpty(t, calls[1].ThreadTS)
		require.Contains(t, calls[1].Text, "ordered a new disk")

		ts.must(http.StatusOK, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "resolved"}, nil)
		testutil.WaitFor(t, 5*time.Second, `len(sink.Subjects()) >= mails+3`, func() bool { return len(sink.Subjects()) >= mails+3 })
		subjects := sink.Subjects()[mails:]
		require.Contains(t, subjects[0], fmt.Sprintf("Ticket #%d", tk.ID))
		require.Contains(t, subjects[0], "filed by token:operator")
		require.Contains(t, subjects[2], "[RESOLVED]")
	})
}

// TestTransientIncidentDoesNotPage: an incident whose alarms all resolve
// within the transient window is marked transient and sends nothing, neither
// the page nor the resolve; one that stays open pages once the window has
// passed.
func TestTransientIncidentDoesNotPage(t *testing.T) {
	fs := &fakeSlack{}
	slackSrv := httptest.NewServer(fs)
	t.Cleanup(slackSrv.Close)
	tokenFile := filepath.Join(t.TempDir(), "slack.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("xoxb-test\n"), 0o600))
	ts := startService(t, func(c *Config) {
		c.TransientWindow = time.Minute
		c.Notifications = notify.Config{Slack: &notify.SlackConfig{TokenFile: tokenFile, Channel: "#ops", APIURL: slackSrv.URL + "/api"}}
	})
	t0 := ts.clock.Now().Add(-time.Minute)

	// A blip: fires and resolves 20 s (store clock) later.
	blip := ts.notify(amPayload("Blip", "firing", 0, amAlert{"Blip", "fpb", "firing", t0, nil})).Opened[0]
	ts.clock.Advance(20 * time.Second)
	res := ts.notify(amPayload("Blip", "resolved", 0, amAlert{"Blip", "fpb", "resolved", t0, nil}))
	require.Equal(t, []uint{blip}, res.Resolved)
	d := ts.incident(blip)
	require.True(t, d.Incident.Transient)
	require.Contains(t, kinds(d.Timeline), "transient")
	// A real fault stays open.
	real := ts.notify(amPayload("Real", "firing", 0, amAlert{"Real", "fpr", "firing", t0, nil})).Opened[0]
	require.False(t, ts.incident(real).Incident.Transient)

	// Within the window nothing is sent; after it, only the real fault's page.
	pending, err := ts.Store().PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	require.Empty(t, pending, "the pages wait out the window")
	require.Zero(t, fs.count())
	ts.clock.Advance(2 * time.Minute)
	testutil.WaitFor(t, 30*time.Second, `fs.count() >= 1`, func() bool { return fs.count() >= 1 })
	testutil.WaitFor(t, 30*time.Second, "the outbox to drain", func() bool {
		p, err := ts.Store().PendingOutbox(context.Background(), 10)
		return err == nil && len(p) == 0
	})
	calls := fs.since(0)
	require.Len(t, calls, 1)
	require.Contains(t, calls[0].Text, fmt.Sprintf("Incident #%d", real))
}
