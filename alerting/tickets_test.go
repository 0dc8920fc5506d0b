package alerting

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// ticketService records what reaches the ticket service's Alertmanager intake.
type ticketService struct {
	mu       sync.Mutex
	payloads []map[string]any
	auth     []string
	refused  int
}

func (s *ticketService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != TicketsPath {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") != "Bearer tok-123" || r.Header.Get("Content-Type") != "application/json" {
		s.refused++
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	var m map[string]any
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.payloads = append(s.payloads, m)
	w.WriteHeader(http.StatusAccepted)
}

func (s *ticketService) find(status string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.payloads {
		if p["status"] == status {
			return p, true
		}
	}
	return nil, false
}

// startManager runs a Manager from a config file body until the test ends.
func startManager(t *testing.T, dir, body string, logs io.Writer) *Manager {
	t.Helper()
	p := writeFile(t, dir, "alerting.yaml", body)
	cfg, err := LoadConfig(p)
	require.NoError(t, err)
	m, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), nil)
	require.NoError(t, err)
	testutil.Start(t, "alerting", m.Run)
	return m
}

func postAlerts(t *testing.T, m *Manager, body string) {
	t.Helper()
	resp, err := http.Post("http://"+m.Addr()+"/api/v2/alerts", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
}

// TestDefaultRoutingToLogAndTickets runs the embedded default (no routing file, no Slack, no
// SMTP) with the ticket service configured: a firing alert and its resolution reach the log and
// the ticket service, as Alertmanager webhook v4 payloads with the API token as bearer.
func TestDefaultRoutingToLogAndTickets(t *testing.T) {
	tickets := &ticketService{}
	srv := httptest.NewServer(tickets)
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, dir, "tickets-token", "tok-123\n")
	logs := &testutil.Buffer{}
	m := startManager(t, dir, fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
default_rules: false
tickets:
  url: %s/
  token_file: tickets-token
`, filepath.Join(dir, "data"), srv.URL), logs)

	start := time.Now().UTC().Truncate(time.Second)
	alert := fmt.Sprintf(`[{"labels":{"alertname":"SluiceBrokerDown","instance":"b1:9308","severity":"critical"},
"annotations":{"summary":"Broker b1:9308 is down"},"startsAt":%q,"generatorURL":"http://prom/graph"}]`, start.Format(time.RFC3339))
	postAlerts(t, m, alert)
	// The default route's group_wait is 5s.
	testutil.WaitFor(t, 20*time.Second, "the firing notification at the ticket service", func() bool { _, ok := tickets.find("firing"); return ok })
	p, _ := tickets.find("firing")
	require.Equal(t, "4", p["version"])
	require.Equal(t, "default", p["receiver"])
	require.Equal(t, `{}:{alertname="SluiceBrokerDown", instance="b1:9308"}`, p["groupKey"])
	require.Equal(t, map[string]any{"alertname": "SluiceBrokerDown", "instance": "b1:9308"}, p["groupLabels"])
	require.Equal(t, "http://"+m.Addr(), p["externalURL"])
	require.EqualValues(t, 0, p["truncatedAlerts"])
	alerts := p["alerts"].([]any)
	require.Len(t, alerts, 1)
	a := alerts[0].(map[string]any)
	require.Equal(t, "firing", a["status"])
	require.Equal(t, "critical", a["labels"].(map[string]any)["severity"])
	require.Equal(t, "Broker b1:9308 is down", a["annotations"].(map[string]any)["summary"])
	require.Equal(t, start.Format(time.RFC3339), a["startsAt"])
	require.Equal(t, "http://prom/graph", a["generatorURL"])
	require.NotEmpty(t, a["fingerprint"])
	require.Contains(t, logs.String(), "alert notification")
	require.Contains(t, logs.String(), "status=firing")

	// Resolved: promptly, to both.
	resolved := strings.Replace(alert, `"generatorURL"`, fmt.Sprintf(`"endsAt":%q,"generatorURL"`, time.Now().UTC().Format(time.RFC3339Nano)), 1)
	postAlerts(t, m, resolved)
	testutil.WaitFor(t, 10*time.Second, "the resolved notification at the ticket service", func() bool { _, ok := tickets.find("resolved"); return ok })
	p, _ = tickets.find("resolved")
	require.Equal(t, "resolved", p["alerts"].([]any)[0].(map[string]any)["status"])
	testutil.WaitFor(t, 5*time.Second, "the resolved notification in the log", func() bool { return strings.Contains(logs.String(), "status=resolved") })

	tickets.mu.Lock()
	defer tickets.mu.Unlock()
	require.Zero(t, tickets.refused)
	for _, h := range tickets.auth {
		require.Equal(t, "Bearer tok-123", h)
	}
	require.NotContains(t, logs.String(), "tok-123", "the token is never logged")
}

// TestTicketsTokenFromEnv checks the token can come from an environment variable, and that a
// missing one is an error at load, naming the field.
func TestTicketsTokenFromEnv(t *testing.T) {
	dir := t.TempDir()
	body := fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\ndefault_rules: false\ntickets:\n  url: http://127.0.0.1:1\n  token_env: SLUICE_TEST_TICKETS_TOKEN\n", filepath.Join(dir, "data"))
	cfg, err := ParseConfig([]byte(body))
	require.NoError(t, err)
	t.Setenv("SLUICE_TEST_TICKETS_TOKEN", "")
	_, err = New(cfg, nil, nil)
	require.ErrorContains(t, err, "tickets: token_env: the environment variable SLUICE_TEST_TICKETS_TOKEN is unset or empty")

	t.Setenv("SLUICE_TEST_TICKETS_TOKEN", "tok-123")
	m, err := New(cfg, nil, nil)
	require.NoError(t, err)
	m.close()
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "data")))
}
