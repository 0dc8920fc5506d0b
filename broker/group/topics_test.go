package group

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestTopicsChanged: deleting a subscribed topic rebalances the group, removes
// its committed offsets, and refuses the old generation's commits of it until
// the group rejoins; groups of other topics keep their state and offsets.
func TestTopicsChanged(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	ids, gen := stableGroup(ctx, t, c, "g", 1, joinOpts{})
	requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[0]}, map[string]map[int32]int64{"t1": {0: 5, 1: 6}}, 0)
	otherIDs, otherGen := stableGroup(ctx, t, c, "other", 1, joinOpts{protocols: []protocol{{name: "range", metadata: consumerMeta("t2")}}})
	requireCommit(t, c, "other", commitOpts{version: 7, gen: otherGen, member: otherIDs[0]}, map[string]map[int32]int64{"t2": {0: 7}}, 0)

	c.TopicsChanged([]string{"t1"}, []string{"t1"}) // deleted and created again
	testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c, "g").State == "PreparingRebalance"`, func() bool { return describe(ctx, t, c, "g").State == "PreparingRebalance" })
	testutil.WaitFor(t, 5*time.Second, `len(c.CommittedOffsets("g")["t1"]) == 0`, func() bool { return len(c.CommittedOffsets("g")["t1"]) == 0 })
	require.Equal(t, "Stable", describe(ctx, t, c, "other").State)
	require.Equal(t, int64(7), c.CommittedOffsets("other")["t2"][0])

	// The member's stale position of the deleted topic is refused, also
	// while the group prepares the rebalance.
	requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[0]}, map[string]map[int32]int64{"t1": {0: 5}}, kerr.RebalanceInProgress.Code)
	require.Empty(t, c.CommittedOffsets("g")["t1"])

	// Once rejoined, the new generation commits the new topic.
	rj := recv(t, joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[0]}))
	require.Zero(t, rj.ErrorCode)
	require.Zero(t, recv(t, syncAsync(ctx, c, "g", ids[0], rj.Generation, 4, map[string][]byte{ids[0]: nil})).ErrorCode)
	requireCommit(t, c, "g", commitOpts{version: 7, gen: rj.Generation, member: ids[0]}, map[string]map[int32]int64{"t1": {0: 1}}, 0)
	require.Equal(t, int64(1), c.CommittedOffsets("g")["t1"][0])
}
