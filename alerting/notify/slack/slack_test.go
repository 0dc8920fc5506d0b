package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain checks the notifier and the interaction handler leave no goroutine behind (the
// httptest servers are closed by each test).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	botToken = "xoxb-test"
	secret   = "8f742231b10e8888abcd99yyyzzz85a5"
)

// fakeWebAPI speaks the Slack Web API methods the notifier and the handler call
// (chat.postMessage, chat.update) as Slack does: form-encoded requests authenticated with the
// bot token, JSON answers with "ok".
type fakeWebAPI struct {
	mu    sync.Mutex
	calls []apiCall
	n     int
	// fail, when set, answers the next calls with this HTTP status.
	fail []int
}

type apiCall struct {
	Method string
	Form   url.Values
}

func (f *fakeWebAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// Slack takes the token as a bearer credential or as a form field.
	if r.Header.Get("Authorization") != "Bearer "+botToken && r.PostForm.Get("token") != botToken {
		_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	f.mu.Lock()
	if len(f.fail) > 0 {
		code := f.fail[0]
		f.fail = f.fail[1:]
		f.mu.Unlock()
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"ok":false,"error":"ratelimited"}`)
		return
	}
	f.calls = append(f.calls, apiCall{method, r.PostForm})
	f.n++
	ts := fmt.Sprintf("1700000000.%06d", f.n)
	f.mu.Unlock()
	switch method {
	case "chat.postMessage":
		if r.PostForm.Get("channel") == "#nowhere" {
			_, _ = io.WriteString(w, `{"ok":false,"error":"channel_not_found"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0ALERTS", "ts": ts})
	case "chat.update":
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": r.PostForm.Get("ts"), "text": r.PostForm.Get("text")})
	default:
		_, _ = io.WriteString(w, `{"ok":false,"error":"unknown_method"}`)
	}
}

func (f *fakeWebAPI) all() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiCall(nil), f.calls...)
}

func newBot(t *testing.T, api *httptest.Server, store *Store) *Notifier {
	t.Helper()
	n, err := New(Config{Token: botToken, APIURL: api.URL + "/api", Channel: "#alerts", SendResolved: true, DashboardURL: "http://grafana:3000"}, store, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return n
}

func urpAlert(resolved bool) *alert.Alert {
	start := time.Now().Add(-time.Minute)
	end := time.Now().Add(time.Hour)
	if resolved {
		end = time.Now().Add(-time.Second)
	}
	return alert.New(model.Alert{
		Labels: model.LabelSet{"alertname": "SluiceUnderReplicatedPartitions", "severity": "critical", "cluster": "prod", "instance": "b1:9308", "broker": "1"},
		Annotations: model.LabelSet{
			"summary": "2 under-replicated partitions led by broker b1:9308", "value": "2",
			"runbook_url": "https://example.com/runbooks/SluiceUnderReplicatedPartitions.md", "dashboard": "sluice-broker",
		},
		StartsAt: start, EndsAt: end,
	}, time.Now(), false)
}

func groupCtx() context.Context {
	ctx := notify.WithGroupKey(context.Background(), `{}:{alertname="SluiceUnderReplicatedPartitions"}`)
	ctx = notify.WithReceiverName(ctx, "oncall")
	return notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "SluiceUnderReplicatedPartitions", "cluster": "prod"})
}

// TestBotPostsThenEditsAndThreads checks the first notification of a group posts a Block Kit
// message with the fields and buttons, and a later change edits it and replies in its thread.
func TestBotPostsThenEditsAndThreads(t *testing.T) {
	api := &fakeWebAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	store, err := OpenStore("")
	require.NoError(t, err)
	n := newBot(t, srv, store)

	require.NoError(t, n.Notify(groupCtx(), urpAlert(false)).Err())
	calls := api.all()
	require.Len(t, calls, 1)
	require.Equal(t, "chat.postMessage", calls[0].Method)
	require.Equal(t, "#alerts", calls[0].Form.Get("channel"))
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal([]byte(calls[0].Form.Get("blocks")), &blocks))
	types := []string{}
	for _, b := range blocks {
		types = append(types, b["type"].(string))
	}
	require.Equal(t, []string{"header", "section", "section", "context", "actions"}, types)
	raw := unescape(calls[0].Form.Get("blocks"))
	for _, want := range []string{"[FIRING:1] SluiceUnderReplicatedPartitions", "*Severity*\\ncritical", "*Cluster*\\nprod", "*Broker*\\n1", "*Value*\\n2",
		"|Runbook>", "http://grafana:3000/d/sluice-broker|Dashboard>", ActionAck, ActionResolve, ActionSilence, "Silence 1h"} {
		require.Contains(t, raw, want)
	}
	require.Contains(t, calls[0].Form.Get("text"), "2 under-replicated partitions", "plain-text fallback")

	// Same group again, unchanged: edited in place, no thread reply.
	require.NoError(t, n.Notify(groupCtx(), urpAlert(false)).Err())
	calls = api.all()
	require.Len(t, calls, 2)
	require.Equal(t, "chat.update", calls[1].Method)
	require.Equal(t, "1700000000.000001", calls[1].Form.Get("ts"))
	require.Equal(t, "C0ALERTS", calls[1].Form.Get("channel"))

	// Resolved: the message turns green, loses its buttons, and the thread says so.
	require.NoError(t, n.Notify(groupCtx(), urpAlert(true)).Err())
	calls = api.all()
	require.Len(t, calls, 4)
	require.Equal(t, "chat.update", calls[2].Method)
	require.Contains(t, calls[2].Form.Get("blocks"), "[RESOLVED] SluiceUnderReplicatedPartitions")
	require.NotContains(t, calls[2].Form.Get("blocks"), ActionAck)
	require.Equal(t, "chat.postMessage", calls[3].Method)
	require.Equal(t, "1700000000.000001", calls[3].Form.Get("thread_ts"))
	require.Contains(t, calls[3].Form.Get("text"), "Resolved")
}

// unescape undoes encoding/json's HTML escaping of < and >.
func unescape(s string) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(s)
}

// TestVerdicts checks which Slack failures are retried.
func TestVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    []int
		token   string
		channel string
		retry   bool
	}{
		{name: "server error", fail: []int{http.StatusInternalServerError}, retry: true},
		{name: "rate limited", fail: []int{http.StatusTooManyRequests}, retry: true},
		{name: "bad request", fail: []int{http.StatusBadRequest}, retry: false},
		{name: "invalid auth", token: "xoxb-wrong", retry: false},
		{name: "unknown channel", channel: "#nowhere", retry: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeWebAPI{fail: tc.fail}
			srv := httptest.NewServer(api)
			defer srv.Close()
			store, _ := OpenStore("")
			cfg := Config{Token: botToken, APIURL: srv.URL + "/api/", Channel: "#alerts"}
			if tc.token != "" {
				cfg.Token = tc.token
			}
			if tc.channel != "" {
				cfg.Channel = tc.channel
			}
			n, err := New(cfg, store, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			v := n.Notify(groupCtx(), urpAlert(false))
			require.Error(t, v.Err())
			require.Equal(t, tc.retry, v.ShouldRetry(), "%v", v.Err())
		})
	}
	require.True(t, verdict(errors.New("dial tcp: connection refused")).ShouldRetry())
}

// TestWebhookMode posts to an incoming webhook: one new message per notification, the same
// blocks without buttons (nothing could answer them).
func TestWebhookMode(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	n, err := New(Config{WebhookURL: srv.URL + "/services/T0/B0/xyz", SendResolved: true}, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)

	require.NoError(t, n.Notify(groupCtx(), urpAlert(false)).Err())
	require.NoError(t, n.Notify(groupCtx(), urpAlert(true)).Err())
	mu.Lock()
	require.Len(t, got, 2)
	require.Contains(t, got[0]["text"], "[FIRING:1] SluiceUnderReplicatedPartitions")
	b, _ := json.Marshal(got[0]["blocks"])
	require.Contains(t, string(b), `"type":"header"`)
	require.Contains(t, string(b), "SluiceUnderReplicatedPartitions.md|Runbook")
	require.NotContains(t, string(b), `"type":"actions"`)
	require.Contains(t, got[1]["text"], "[RESOLVED] SluiceUnderReplicatedPartitions")
	status = http.StatusInternalServerError
	mu.Unlock()

	v := n.Notify(groupCtx(), urpAlert(false))
	require.Error(t, v.Err())
	require.True(t, v.ShouldRetry(), "5xx is retried")
	mu.Lock()
	status = http.StatusNotFound
	mu.Unlock()
	v = n.Notify(groupCtx(), urpAlert(false))
	require.Error(t, v.Err())
	require.False(t, v.ShouldRetry(), "a webhook that does not exist is not retried")
}

// sign computes Slack's request signature: v0=hex(hmac_sha256(secret, "v0:"+ts+":"+body)).
func sign(key, body string, ts time.Time) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("v0:" + t + ":" + body))
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", t)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

func interaction(action, messageID, user string) string {
	payload := fmt.Sprintf(`{"type":"block_actions","user":{"id":%q},"actions":[{"action_id":%q,"block_id":"sluice_actions","value":%q,"type":"button"}]}`, user, action, messageID)
	return "payload=" + url.QueryEscape(payload)
}

type silencer struct {
	mu    sync.Mutex
	calls []map[string]string
	by    []string
	d     []time.Duration
}

func (s *silencer) silence(_ context.Context, labels map[string]string, d time.Duration, by, _ string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, labels)
	s.by = append(s.by, by)
	s.d = append(s.d, d)
	return fmt.Sprintf("sil-%d", len(s.calls)), nil
}

func (s *silencer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// interactionFixture posts one bot message and serves the interaction handler.
type interactionFixture struct {
	api     *fakeWebAPI
	store   *Store
	sil     *silencer
	handler *Handler
	url     string
	id      string
}

func newInteractionFixture(t *testing.T) *interactionFixture {
	t.Helper()
	api := &fakeWebAPI{}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	store, err := OpenStore(t.TempDir() + "/slack-messages.json")
	require.NoError(t, err)
	n := newBot(t, apiSrv, store)
	require.NoError(t, n.Notify(groupCtx(), urpAlert(false)).Err())
	f := &interactionFixture{api: api, store: store, sil: &silencer{}}
	f.handler = &Handler{Store: store, Silence: f.sil.silence, Logger: slog.New(slog.DiscardHandler)}
	f.handler.SetConfig(secret, "http://grafana:3000")
	srv := httptest.NewServer(f.handler)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.id = MessageID("oncall", "#alerts", `{}:{alertname="SluiceUnderReplicatedPartitions"}`)
	_, ok := store.Get(f.id)
	require.True(t, ok)
	return f
}

func (f *interactionFixture) post(t *testing.T, body string, h http.Header) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestInteractionsRefused checks that requests Slack did not sign, or signed too long ago, get
// 401 and change nothing.
func TestInteractionsRefused(t *testing.T) {
	f := newInteractionFixture(t)
	body := interaction(ActionSilence, f.id, "U1")
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"wrong secret", sign("not-the-secret", body, time.Now()), http.StatusUnauthorized},
		{"stale timestamp", sign(secret, body, time.Now().Add(-6*time.Minute)), http.StatusUnauthorized},
		{"timestamp from the future", sign(secret, body, time.Now().Add(6*time.Minute)), http.StatusUnauthorized},
		{"no signature", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, http.StatusUnauthorized},
		{"signature of another body", sign(secret, interaction(ActionAck, f.id, "U1"), time.Now()), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, f.post(t, body, tc.header))
			require.Zero(t, f.sil.count())
			require.Len(t, f.api.all(), 1, "no Slack call beyond the first post")
			rec, _ := f.store.Get(f.id)
			require.Empty(t, rec.SilenceID)
			require.Empty(t, rec.AckedBy)
		})
	}
	t.Run("malformed payload", func(t *testing.T) {
		b := "payload=" + url.QueryEscape("{not json")
		require.Equal(t, http.StatusBadRequest, f.post(t, b, sign(secret, b, time.Now())))
	})
	t.Run("not configured", func(t *testing.T) {
		f.handler.SetConfig("", "")
		defer f.handler.SetConfig(secret, "http://grafana:3000")
		require.Equal(t, http.StatusNotFound, f.post(t, body, sign(secret, body, time.Now())))
	})
	t.Run("unknown message", func(t *testing.T) {
		b := interaction(ActionSilence, "0123456789abcdef", "U1")
		require.Equal(t, http.StatusOK, f.post(t, b, sign(secret, b, time.Now())))
		require.Zero(t, f.sil.count())
	})
}

// TestInteractionButtonsIdempotent presses each button twice, with a valid signature: the
// first press edits the message, replies in its thread (and for Silence creates one silence of
// 1h over the group's labels); the second changes nothing.
func TestInteractionButtonsIdempotent(t *testing.T) {
	for _, tc := range []struct {
		action string
		note   string // the thread reply
		shown  string // what the edited message adds
		check  func(t *testing.T, rec Record, sil *silencer)
	}{
		{ActionAck, "Acknowledged by <@U1>", "Acknowledged by <@U1>", func(t *testing.T, rec Record, sil *silencer) {
			require.Equal(t, "U1", rec.AckedBy)
			require.Zero(t, sil.count())
		}},
		{ActionResolve, "Marked resolved by <@U1>; the message turns green when the alert stops firing", "Marked resolved by <@U1>", func(t *testing.T, rec Record, sil *silencer) {
			require.Equal(t, "U1", rec.ResolvedBy)
			require.Zero(t, sil.count())
		}},
		{ActionSilence, "Silenced for 1h by <@U1>", "Silenced 1h by <@U1> (silence sil-1)", func(t *testing.T, rec Record, sil *silencer) {
			require.Equal(t, 1, sil.count())
			require.Equal(t, map[string]string{"alertname": "SluiceUnderReplicatedPartitions", "cluster": "prod"}, sil.calls[0])
			require.Equal(t, time.Hour, sil.d[0])
			require.Equal(t, "slack:U1", sil.by[0])
			require.Equal(t, "sil-1", rec.SilenceID)
			require.Equal(t, "U1", rec.SilencedBy)
		}},
	} {
		t.Run(tc.action, func(t *testing.T) {
			f := newInteractionFixture(t)
			body := interaction(tc.action, f.id, "U1")
			require.Equal(t, http.StatusOK, f.post(t, body, sign(secret, body, time.Now())))
			calls := f.api.all()
			require.Len(t, calls, 3, "post, then update and thread reply")
			require.Equal(t, "chat.update", calls[1].Method)
			require.Equal(t, "1700000000.000001", calls[1].Form.Get("ts"))
			require.Contains(t, unescape(calls[1].Form.Get("blocks")), tc.shown)
			require.Equal(t, "chat.postMessage", calls[2].Method)
			require.Equal(t, "1700000000.000001", calls[2].Form.Get("thread_ts"))
			require.Equal(t, tc.note, calls[2].Form.Get("text"))
			rec, _ := f.store.Get(f.id)
			tc.check(t, rec, f.sil)

			// Pressed again (or retried by Slack, or by someone else): nothing more.
			for _, user := range []string{"U1", "U2"} {
				b := interaction(tc.action, f.id, user)
				require.Equal(t, http.StatusOK, f.post(t, b, sign(secret, b, time.Now())))
			}
			require.Len(t, f.api.all(), 3)
			rec, _ = f.store.Get(f.id)
			tc.check(t, rec, f.sil)

			// The record survives a restart: the store is reopened from its file.
			again, err := OpenStore(f.store.path)
			require.NoError(t, err)
			r2, ok := again.Get(f.id)
			require.True(t, ok)
			require.Equal(t, rec.AckedBy+rec.ResolvedBy+rec.SilenceID, r2.AckedBy+r2.ResolvedBy+r2.SilenceID)
		})
	}
}

// TestSilenceConcurrentPresses presses Silence from many clients at once: one silence.
func TestSilenceConcurrentPresses(t *testing.T) {
	f := newInteractionFixture(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := interaction(ActionSilence, f.id, fmt.Sprintf("U%d", i))
			req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(b))
			req.Header = sign(secret, b, time.Now())
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, f.sil.count())
	require.Len(t, f.api.all(), 3)
}
