package snapshot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCaptureLogsFromBrokerAdminAPI(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/cluster":
			w.Write([]byte(`{"cluster_id":"c1","controller_id":1,"brokers":[],"topics":[]}`))
		case "/api/v1/events":
			w.Write([]byte(`[]`))
		case "/api/v1/logs":
			w.Write([]byte(`["time=2026-11-28T09:00:00Z level=WARN msg=\"too old\"",` +
				`"time=2026-11-28T10:00:05Z level=ERROR msg=\"fsync failed\" password=hunter2",` +
				`"time=2026-11-28T10:00:06Z level=WARN msg=\"ISR shrank\""]`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer admin.Close()
	c := NewCapturer(Config{AdminURLs: []string{admin.URL}, EventWindow: 10 * time.Minute})
	s := c.Capture(context.Background(), Target{IncidentID: 1, ImpactStart: at}, at.Add(time.Minute))
	var lines []string
	for _, l := range s.Logs {
		lines = append(lines, l.Line)
	}
	require.Len(t, lines, 2, "lines before the incident's window are left out: %v", lines)
	require.Contains(t, lines[0], "fsync failed")
	require.NotContains(t, lines[0], "hunter2", "secrets are redacted")
	require.Contains(t, lines[1], "ISR shrank")
}
