package alerting

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// closedAddr is an address nothing listens on: connections to it are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// TestReceiverSecretsNeverEchoed is the leak of issue 12: POST /api/v1/receivers/slack/test
// answered with the full Slack webhook URL in its error and wrote it to the log. Slack
// incoming-webhook URLs and webhook URLs are credentials: no response and no log line may hold
// them, whether the receiver's server refuses the connection or answers with an error.
func TestReceiverSecretsNeverEchoed(t *testing.T) {
	slackErr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid_token", http.StatusForbidden) // what Slack answers for a revoked webhook
	}))
	defer slackErr.Close()
	dead := closedAddr(t)
	secrets := map[string]string{
		"slack-refused":   "http://" + dead + "/services/T0SECRET1/B0SECRET1/hooksecret1xyz",
		"slack-forbidden": slackErr.URL + "/services/T0SECRET2/B0SECRET2/hooksecret2xyz",
		"webhook-refused": "http://hookuser:hookpass3xyz@" + dead + "/hook/hooksecret3xyz?token=hooksecret3q",
	}
	dir := t.TempDir()
	writeFile(t, dir, "slack-url", secrets["slack-forbidden"]+"\n")
	writeFile(t, dir, "alertmanager.yml", fmt.Sprintf(`route:
  receiver: slack-refused
  group_wait: 1s
  group_interval: 1m
  routes:
    - matchers: [team="a"]
      receiver: slack-forbidden
    - matchers: [team="b"]
      receiver: webhook-refused
receivers:
  - name: slack-refused
    slack_configs:
      - api_url: %s
        channel: "#alerts"
  - name: slack-forbidden
    slack_configs:
      - api_url_file: %s
        channel: "#alerts"
  - name: webhook-refused
    webhook_configs:
      - url: %s
`, secrets["slack-refused"], filepath.Join(dir, "slack-url"), secrets["webhook-refused"]))
	logs := &testutil.Buffer{}
	m := startManager(t, dir, fmt.Sprintf("listen: 127.0.0.1:0\ndata_dir: %s\ndefault_rules: false\nrouting_file: alertmanager.yml\n",
		filepath.Join(dir, "data")), logs)
	api := "http://" + m.Addr()

	leaks := func(s string) []string {
		var out []string
		for _, secret := range []string{"SECRET1", "SECRET2", "hooksecret", "hookpass3xyz", "/services/"} {
			if strings.Contains(s, secret) {
				out = append(out, secret)
			}
		}
		return out
	}
	for name := range secrets {
		code, body := call(t, http.MethodPost, api+"/api/v1/receivers/"+name+"/test", "application/json", "", "")
		require.Equal(t, http.StatusBadGateway, code, "%s: %s", name, body)
		require.Empty(t, leaks(body), "%s: the response holds a secret: %s", name, body)
		require.Regexp(t, `(slack|webhook)\[0\]`, body, "the error still says which integration failed")
	}

	// The notification pipeline logs its failures (and retries): no secret there either.
	postAlerts(t, m, `[{"labels":{"alertname":"A1"}},{"labels":{"alertname":"A2","team":"a"}},{"labels":{"alertname":"A3","team":"b"}}]`)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	testutil.WaitFor(t, 60*time.Second, "failed notifications logged for all three receivers", func() bool {
		failed := map[string]bool{}
		for _, line := range strings.Split(logs.String(), "\n") {
			for name := range secrets {
				if strings.Contains(line, "receiver="+name) && strings.Contains(line, "failed") {
					failed[name] = true
				}
			}
		}
		return len(failed) == len(secrets)
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		require.Empty(t, leaks(line), "a log line holds a secret: %s", line)
	}
}
