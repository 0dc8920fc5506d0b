package broker

import (
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogRingKeepsTheNewest(t *testing.T) {
	var r logRing
	require.Empty(t, r.recent())
	for i := range logRingSize + 3 {
		r.add(strconv.Itoa(i))
	}
	got := r.recent()
	require.Len(t, got, logRingSize)
	require.Equal(t, "3", got[0])
	require.Equal(t, strconv.Itoa(logRingSize+2), got[len(got)-1])
}

// TestRingHandlerKeepsNestedGroups checks that a kept line carries every group and attribute in
// the order they were added, not only the last group.
func TestRingHandlerKeepsNestedGroups(t *testing.T) {
	var r logRing
	h := &ringHandler{next: slog.NewTextHandler(io.Discard, nil), ring: &r}
	log := slog.New(h).With("node", 1).WithGroup("raft").With("peer", 2).WithGroup("transport")
	log.Warn("stopped", "err", "refused")
	got := r.recent()
	require.Len(t, got, 1)
	require.Contains(t, got[0], "node=1 raft.peer=2 raft.transport.err=refused")
}
