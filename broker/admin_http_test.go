package broker

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicemq/sluice/broker/adminapi"
)

func TestAdminHTTPEvents(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.AdminListen = "127.0.0.1:0" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "audited")
	require.NoError(t, err)
	_, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: kadm.StringPtr("60000")}}, "audited")
	require.NoError(t, err)

	base := "http://" + tb.AdminAddr()
	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, body
	}
	code, body := get("/api/v1/events")
	require.Equal(t, http.StatusOK, code)
	var events []struct {
		Index uint64    `json:"index"`
		Time  time.Time `json:"time"`
		Type  string    `json:"type"`
		Topic string    `json:"topic"`
	}
	require.NoError(t, json.Unmarshal(body, &events))
	types := map[string]bool{}
	for _, e := range events {
		require.False(t, e.Time.IsZero(), "every event has a timestamp")
		if e.Topic == "audited" || e.Topic == "" {
			types[e.Type] = true
		}
	}
	require.True(t, types["broker_joined"], "events: %s", body)
	require.NotContains(t, string(body), "epoch=", "broker epochs are not published")
	require.True(t, types["topic_created"], "events: %s", body)
	require.True(t, types["config_changed"], "events: %s", body)

	last := events[len(events)-1].Index
	code, body = get("/api/v1/events?since=" + itoa(int(last)))
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, "[]", string(body))

	code, body = get("/api/v1/events?since=yesterday")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(body), "since")

	tb.logger.With("part", "test").Warn("disk nearly full", "free_bytes", 42)
	tb.logger.Info("not kept")
	code, body = get("/api/v1/logs")
	require.Equal(t, http.StatusOK, code)
	var lines []string
	require.NoError(t, json.Unmarshal(body, &lines))
	require.NotEmpty(t, lines)
	newest := lines[len(lines)-1]
	require.Contains(t, newest, "level=WARN")
	require.Contains(t, newest, `msg="disk nearly full"`)
	require.Contains(t, newest, "part=test")
	require.Contains(t, newest, "free_bytes=42")
	require.NotContains(t, string(body), "not kept")

	code, body = get("/api/v1/cluster")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(body), `"name": "audited"`)
	require.NotContains(t, string(body), "Epoch", "broker epochs are not published")
	require.NotContains(t, string(body), "Incarnation")
	// The document is exactly adminapi.Cluster, which the ticket service's snapshots decode.
	var doc adminapi.Cluster
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&doc))
	require.NotEmpty(t, doc.Brokers)
	require.NotEmpty(t, doc.Brokers[0].Host)
	require.Positive(t, doc.Brokers[0].Port)
	require.Contains(t, string(body), `"host":`, "snake_case keys, as the rest of the document")
}
