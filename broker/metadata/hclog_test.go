package metadata

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestStoppedPeerLoggedOnceThenRarely: raft's complaints about a stopped peer
// (as its replication loop logs them, several a second) are one WARN line, then
// one a minute with the number of repeats; another peer and other messages
// are not held back.
func TestStoppedPeerLoggedOnceThenRarely(t *testing.T) {
	buf := &testutil.Buffer{}
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	h := newHCLog(slog.New(slog.NewTextHandler(buf, nil)), hclog.Warn).(*hclogAdapter)
	h.repeats.now = func() time.Time { return now }
	l := h.Named("replication").With("term", 3)
	for i := 0; i < 200; i++ { // 100 s of retries every 500 ms
		l.Error("failed to heartbeat to", "peer", "127.0.0.1:9193", "backoff time", "50ms", "error", "dial tcp: connection refused")
		now = now.Add(500 * time.Millisecond)
	}
	l.Error("failed to appendEntries to", "peer", "127.0.0.1:9194", "error", "EOF")
	l.Error("something else went wrong")
	// A peer (or this broker) closing a connection is not worth a line at warn.
	l.Error("failed to decode incoming command", "error", "read tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection")
	l.Error("failed to decode incoming command", "error", "EOF")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 4, "%s", strings.Join(lines, "\n"))
	require.Contains(t, lines[0], "level=WARN")
	require.Contains(t, lines[0], "failed to heartbeat to")
	require.NotContains(t, lines[0], "repeated")
	require.Contains(t, lines[1], "repeated=119")
	require.Contains(t, lines[2], "127.0.0.1:9194")
	require.Contains(t, lines[3], "level=ERROR")
}
