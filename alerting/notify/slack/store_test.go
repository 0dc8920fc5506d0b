package slack

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestStoreWritesDurablyAndReportsErrors: the message store is replaced as a whole (no
// temporary file left, the reopened store has the record), and a store that cannot be written
// is reported instead of being silently dropped: the notifier logs it, the button answers 500
// to Slack.
func TestStoreWritesDurablyAndReportsErrors(t *testing.T) {
	api := &fakeWebAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	store, err := OpenStore(filepath.Join(dir, "slack-messages.json"))
	require.NoError(t, err)
	require.NoError(t, newBot(t, srv, store).Notify(groupCtx(), urpAlert(false)).Err())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	again, err := OpenStore(filepath.Join(dir, "slack-messages.json"))
	require.NoError(t, err)
	id := MessageID("oncall", "#alerts", `{}:{alertname="SluiceUnderReplicatedPartitions"}`)
	_, ok := again.Get(id)
	require.True(t, ok)

	// The directory is gone: every write fails.
	broken, err := OpenStore(filepath.Join(dir, "gone", "slack-messages.json"))
	require.NoError(t, err)
	require.ErrorContains(t, broken.put(Record{ID: "x", Created: time.Now()}), "slack message store")
	logs := &testutil.Buffer{}
	n, err := New(Config{Token: botToken, APIURL: srv.URL + "/api", Channel: "#alerts"}, broken, slog.New(slog.NewTextHandler(logs, nil)))
	require.NoError(t, err)
	require.NoError(t, n.Notify(groupCtx(), urpAlert(false)).Err(), "the message was posted")
	require.Contains(t, logs.String(), "slack message not recorded")
	require.Contains(t, logs.String(), "gone")

	hlogs := &testutil.Buffer{}
	h := &Handler{Store: broken, Silence: (&silencer{}).silence, Logger: slog.New(slog.NewTextHandler(hlogs, nil))}
	h.SetConfig(secret, "")
	hsrv := httptest.NewServer(h)
	defer hsrv.Close()
	body := interaction(ActionAck, id, "U1")
	f := &interactionFixture{url: hsrv.URL}
	require.Equal(t, http.StatusInternalServerError, f.post(t, body, sign(secret, body, time.Now())))
	require.Contains(t, hlogs.String(), "slack action failed")
}
