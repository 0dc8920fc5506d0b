package tickets

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

const testSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"

// slackPress sends a block_actions interaction as Slack does: a form with a
// JSON payload, signed with secret.
func slackPress(t *testing.T, base, secret, user, action, value string) int {
	t.Helper()
	payload, err := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]string{"id": user},
		"actions": []map[string]string{{"action_id": action, "block_id": "sluice_actions", "value": value, "type": "button"}},
	})
	require.NoError(t, err)
	body := url.Values{"payload": {string(payload)}}.Encode()
	req, err := http.NewRequest("POST", base+"/api/v1/integrations/slack/interactions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSlackButtonsOnIncidentMessages: Acknowledge and Resolve on the ticket
// service's own message change the incident, once, through the service
// layer; Open links the incident page; unsigned presses change nothing.
func TestSlackButtonsOnIncidentMessages(t *testing.T) {
	f := newOutboxFixture(t)
	secretFile := filepath.Join(t.TempDir(), "signing")
	require.NoError(t, os.WriteFile(secretFile, []byte(testSigningSecret+"\n"), 0o600))
	f.cfg.Notifications.Slack.SigningSecretFile = secretFile
	svc := f.open()
	stop := f.run(svc)
	defer stop()
	ctx := context.Background()
	tok, err := svc.Store().CreateToken(ctx, "am", store.RoleOperator)
	require.NoError(t, err)
	ts := &testService{Service: svc, t: t, base: "http://" + svc.Addr(), operator: tok, viewer: tok}
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	// Delivered: the message is posted and recorded, so its buttons answer.
	testutil.WaitFor(t, 10*time.Second, "the Slack message to be delivered", func() bool { ms := outbox(t, svc); return len(ms) > 0 && ms[0].DeliveredAt != nil })
	msg := f.slack.since(0)[0]
	require.Contains(t, msg.Blocks, slack.ActionAck)
	require.Contains(t, msg.Blocks, slack.ActionOpen)
	require.Contains(t, msg.Blocks, fmt.Sprintf(`"url":"http://%s/incidents/%d"`, svc.Addr(), id), "Open links the incident page")
	recID := slack.MessageID(notify.Receiver, "#ops", fmt.Sprintf("sluice-tickets/incident/%d", id))

	require.Equal(t, http.StatusUnauthorized, slackPress(t, ts.base, "not the secret", "U666", slack.ActionAck, recID))
	require.Equal(t, store.StatusTriggered, ts.incident(id).Status, "a forged press changes nothing")

	require.Equal(t, http.StatusOK, slackPress(t, ts.base, testSigningSecret, "U123", slack.ActionAck, recID))
	d := ts.incident(id)
	require.Equal(t, store.StatusAcknowledged, d.Status)
	require.Equal(t, "slack:U123", d.FirstAckBy)
	require.Equal(t, http.StatusOK, slackPress(t, ts.base, testSigningSecret, "U124", slack.ActionAck, recID), "a second press is a no-op")
	require.Equal(t, "slack:U123", ts.incident(id).FirstAckBy)
	require.Equal(t, http.StatusOK, slackPress(t, ts.base, testSigningSecret, "U123", slack.ActionOpen, recID))

	require.Equal(t, http.StatusOK, slackPress(t, ts.base, testSigningSecret, "U123", slack.ActionResolve, recID))
	d = ts.incident(id)
	require.Equal(t, store.StatusResolved, d.Status)
	require.Equal(t, "slack:U123", d.ResolvedBy)
	// Both changes are announced through the outbox: the message turns green.
	testutil.WaitFor(t, 10*time.Second, "the Slack message to be updated as RESOLVED", func() bool {
		for _, c := range f.slack.since(0) {
			if c.Method == "chat.update" && strings.Contains(c.Blocks, "RESOLVED") {
				return true
			}
		}
		return false
	})
}

func TestSlackInteractionsNeedASigningSecret(t *testing.T) {
	f := newOutboxFixture(t)
	svc := f.open()
	stop := f.run(svc)
	defer stop()
	code := slackPress(t, "http://"+svc.Addr(), testSigningSecret, "U1", slack.ActionAck, "x")
	require.Equal(t, http.StatusNotFound, code)
}
