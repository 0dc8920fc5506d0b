package alerting

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// startProcCluster starts three `sluice broker` processes with metrics listeners, killed at
// cleanup; their logs are printed if the test failed.
func startProcCluster(t *testing.T) *chaos.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := chaos.StartCluster(ctx, chaos.ClusterConfig{Bin: testutil.SluiceBin(t), Dir: t.TempDir(), Brokers: 3})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(60))
		}
		cl.Close()
	})
	return cl
}

// fakeSlack speaks the Web API methods the notifier and the interaction handler use.
type fakeSlack struct {
	mu    sync.Mutex
	calls []slackCall
	n     int
}

type slackCall struct {
	Method string
	Form   url.Values
}

func (f *fakeSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	if r.Header.Get("Authorization") != "Bearer xoxb-test" && r.PostForm.Get("token") != "xoxb-test" {
		_, _ = io.WriteString(w, `{"ok":false,"error":"invalid_auth"}`)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, slackCall{method, r.PostForm})
	f.n++
	ts := fmt.Sprintf("1700000000.%06d", f.n)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch method {
	case "chat.postMessage":
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": "C0ALERTS", "ts": ts})
	case "chat.update":
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": r.PostForm.Get("ts"), "text": r.PostForm.Get("text")})
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "unknown_method"})
	}
}

func (f *fakeSlack) find(method, substr string) (slackCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.Method == method && strings.Contains(c.Form.Get("text")+c.Form.Get("blocks"), substr) {
			return c, true
		}
	}
	return slackCall{}, false
}

func (f *fakeSlack) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// webhookSink records Alertmanager webhook v4 payloads.
type webhookSink struct {
	mu  sync.Mutex
	got []map[string]any
}

func (h *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	h.mu.Lock()
	h.got = append(h.got, m)
	h.mu.Unlock()
}

func (h *webhookSink) find(status, alertname string) (map[string]any, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.got {
		if m["status"] != status {
			continue
		}
		for _, a := range m["alerts"].([]any) {
			am := a.(map[string]any)
			if am["labels"].(map[string]any)["alertname"] == alertname && am["status"] == status {
				return m, true
			}
		}
	}
	return nil, false
}

func signSlack(secret, body string, ts time.Time) http.Header {
	h := http.Header{}
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + t + ":" + body))
	h.Set("X-Slack-Request-Timestamp", t)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

// TestEndToEndBrokerKill kills a broker of a 3-process cluster and follows the
// under-replicated-partitions alert to Slack (fake Web API, real slack-go client), a real SMTP
// server and a webhook; then restarts the broker and waits for the resolutions.
func TestEndToEndBrokerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-process cluster")
	}
	cl := startProcCluster(t)

	kc, err := kgo.NewClient(kgo.SeedBrokers(cl.Bootstrap()...))
	require.NoError(t, err)
	defer kc.Close()
	adm := kadm.NewClient(kc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = adm.CreateTopic(ctx, 6, 3, nil, "orders")
	require.NoError(t, err)

	slackAPI := &fakeSlack{}
	slackSrv := httptest.NewServer(slackAPI)
	defer slackSrv.Close()
	hooks := &webhookSink{}
	hookSrv := httptest.NewServer(hooks)
	defer hookSrv.Close()
	sink := testutil.StartSMTP(t)

	dir := t.TempDir()
	routing := fmt.Sprintf(`
route:
  receiver: oncall
  group_by: [alertname, instance]
  group_wait: 1s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: oncall
    slack_configs:
      - app_token: xoxb-test
        app_url: %s/api/chat.postMessage
        channel: "#alerts"
        send_resolved: true
    email_configs:
      - to: oncall@example.com
        from: sluice@example.com
        smarthost: %s
        require_tls: false
        send_resolved: true
    webhook_configs:
      - url: %s/hook
        send_resolved: true
`, slackSrv.URL, sink.Addr, hookSrv.URL)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(routing), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "signing-secret"), []byte("s3cret\n"), 0o600))
	var targets strings.Builder
	for _, n := range cl.Nodes() {
		fmt.Fprintf(&targets, "  - {job: broker, address: %q, labels: {broker: %q}}\n", n.MetricsAddr, strconv.Itoa(int(n.ID)))
	}
	cfgYAML := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
evaluation_interval: 10s
scrape_interval: 5s
external_labels: {cluster: e2e}
routing_file: alertmanager.yml
dashboard_url: http://grafana.example:3000
slack:
  signing_secret_file: signing-secret
targets:
%s`, filepath.Join(dir, "data"), targets.String())
	cfgPath := filepath.Join(dir, "alerting.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfgYAML), 0o644))
	cfg, err := LoadConfig(cfgPath)
	require.NoError(t, err)

	m, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(t, <-done)
	}()
	api := "http://" + m.Addr()

	// All three targets up before the fault.
	testutil.WaitFor(t, 30*time.Second, "targets up", func() bool {
		ts := m.evaluator.Targets()
		up := 0
		for _, t := range ts {
			if t.Health == "up" {
				up++
			}
		}
		return up == 3
	})

	// Kill the broker that leads fewest partitions? Any follower will do: with RF 3 every
	// partition has the victim in its replica set, so the leaders on the others see URP.
	victim := int32(3)
	faultAt := time.Now()
	require.NoError(t, cl.Kill(victim))

	testutil.WaitFor(t, 90*time.Second, "URP firing on slack, email and webhook", func() bool {
		_, s := slackAPI.find("chat.postMessage", "SluiceUnderReplicatedPartitions")
		// SluiceBrokerDown fires too, in a group (and an email) of its own.
		_, e := sink.Find("SluiceUnderReplicatedPartitions")
		_, w := hooks.find("firing", "SluiceUnderReplicatedPartitions")
		return s && e && w
	})
	t.Logf("fault to notification on all three receivers: %s (evaluation_interval 10s, scrape_interval 5s, for 30s, group_wait 1s)", time.Since(faultAt).Round(100*time.Millisecond))

	post, _ := slackAPI.find("chat.postMessage", "SluiceUnderReplicatedPartitions")
	require.Equal(t, "#alerts", post.Form.Get("channel"))
	blocks := post.Form.Get("blocks")
	for _, want := range []string{"FIRING", "critical", "Runbook", "SluiceUnderReplicatedPartitions.md", "grafana.example:3000/d/sluice-broker", "sluice_ack", "sluice_resolve", "sluice_silence_1h", "e2e", "*Broker*", "*Value*"} {
		require.Contains(t, blocks, want)
	}
	msg, _ := sink.Find("SluiceUnderReplicatedPartitions")
	raw := msg.Raw
	require.Contains(t, msg.Header.Get("Subject"), "[FIRING")
	require.Equal(t, "oncall@example.com", msg.Header.Get("To")[strings.Index(msg.Header.Get("To"), "oncall"):strings.Index(msg.Header.Get("To"), "com")+3])
	require.NotEmpty(t, msg.Header.Get("Message-Id"))
	require.Contains(t, raw, "multipart/alternative")
	require.Contains(t, raw, "text/plain")
	require.Contains(t, raw, "text/html")
	hook, _ := hooks.find("firing", "SluiceUnderReplicatedPartitions")
	require.Equal(t, "4", hook["version"])
	require.Equal(t, "oncall", hook["receiver"])

	// The active alerts API shows it, and the rules API its value.
	var alerts struct {
		Data []struct {
			Labels map[string]string `json:"labels"`
		} `json:"data"`
	}
	getJSON(t, api+"/api/v1/alerts", &alerts)
	found := false
	for _, a := range alerts.Data {
		found = found || a.Labels["alertname"] == "SluiceUnderReplicatedPartitions"
	}
	require.True(t, found, "URP in /api/v1/alerts")

	// A forged interaction (bad signature) gets 401 and changes nothing.
	id := ""
	for _, line := range strings.Split(blocks, `"value":"`)[1:] {
		id = line[:strings.Index(line, `"`)]
		break
	}
	require.NotEmpty(t, id)
	payload := `{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"sluice_silence_1h","value":"` + id + `"}]}`
	body := "payload=" + url.QueryEscape(payload)
	before := slackAPI.count()
	req, _ := http.NewRequest(http.MethodPost, api+"/api/v1/slack/interactions", strings.NewReader(body))
	req.Header = signSlack("wrong-secret", body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	sils, err := m.dispatcher.Silences(context.Background())
	require.NoError(t, err)
	require.Empty(t, sils)
	require.Equal(t, before, slackAPI.count())

	// Restart the broker: resolutions arrive on all three, without waiting for group_interval (5m).
	resolvedStart := time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	require.NoError(t, cl.Restart(rctx, victim))
	testutil.WaitFor(t, 120*time.Second, "URP resolved on slack, email and webhook", func() bool {
		_, s := slackAPI.find("chat.update", "RESOLVED")
		_, e := sink.Find("[RESOLVED] SluiceUnderReplicatedPartitions")
		_, w := hooks.find("resolved", "SluiceUnderReplicatedPartitions")
		return s && e && w
	})
	t.Logf("broker restart to resolved notifications: %s", time.Since(resolvedStart).Round(100*time.Millisecond))
	upd, _ := slackAPI.find("chat.update", "RESOLVED")
	require.NotEmpty(t, upd.Form.Get("ts"), "chat.update edits the posted message")
	_, threaded := slackAPI.find("chat.postMessage", "Resolved")
	require.True(t, threaded, "the resolution is posted to the message's thread")
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(bufio.NewReader(resp.Body)).Decode(v))
}
