package group

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestRestartRestoresGroupsAndOffsets(t *testing.T) {
	ctx := testCtx(t)
	store := newMemStore()
	c1 := startCoordinator(t, delayConfig(), store)
	ids, gen := stableGroup(ctx, t, c1, "live", 2, joinOpts{})
	requireCommit(t, c1, "live", commitOpts{version: 8, gen: gen, member: ids[0], metadata: "m"}, map[string]map[int32]int64{"t1": {0: 10, 1: 20}}, 0)
	requireCommit(t, c1, "simple", commitOpts{version: 2, gen: -1}, map[string]map[int32]int64{"t2": {3: 30}}, 0)
	requireCommit(t, c1, "simple", commitOpts{version: 2, gen: -1}, map[string]map[int32]int64{"t2": {3: 31}}, 0)

	// A group that emptied keeps its generation; a deleted one is gone.
	emptied := recv(t, joinFull(ctx, t, c1, "emptied", joinOpts{version: 5}))
	require.Zero(t, emptied.ErrorCode)
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "emptied", emptied.MemberID
	require.Zero(t, c1.LeaveGroup(ctx, leave).ErrorCode)
	requireCommit(t, c1, "gone", commitOpts{version: 7, gen: -1}, map[string]map[int32]int64{"t": {0: 1}}, 0)
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{"gone"}
	require.Zero(t, c1.DeleteGroups(ctx, del).Groups[0].ErrorCode)
	before := describe(ctx, t, c1, "live")

	// A second coordinator over the same log, as after a broker restart or
	// a leadership move.
	c2 := startCoordinator(t, delayConfig(), store)
	require.Equal(t, map[string]map[int32]int64{"t1": {0: 10, 1: 20}}, c2.CommittedOffsets("live"))
	require.Equal(t, map[string]map[int32]int64{"t2": {3: 31}}, c2.CommittedOffsets("simple"))
	require.Nil(t, c2.CommittedOffsets("gone"))
	require.Equal(t, "Dead", describe(ctx, t, c2, "gone").State)

	after := describe(ctx, t, c2, "live")
	require.Equal(t, "Stable", after.State)
	require.Equal(t, before.Protocol, after.Protocol)
	require.Equal(t, before.Members, after.Members)

	// Members carry on with their generation, without a rebalance.
	for _, id := range ids {
		require.Zero(t, heartbeat(ctx, c2, "live", id, gen))
	}
	sync := recv(t, syncAsync(ctx, c2, "live", ids[1], gen, 4, nil))
	require.Zero(t, sync.ErrorCode)
	require.Equal(t, []byte("assignment-"+ids[1]), sync.MemberAssignment)

	d := describe(ctx, t, c2, "emptied")
	require.Equal(t, "Empty", d.State)
	require.Equal(t, "consumer", d.ProtocolType)
	r := recv(t, joinFull(ctx, t, c2, "emptied", joinOpts{version: 5}))
	require.Equal(t, int32(3), r.Generation, "generations continue after a restart")

	fetch := fetchV(c2, 7, "live", map[string][]int32{"t1": {0}})
	require.Equal(t, "m", *fetch.Topics[0].Partitions[0].Metadata)
	require.Equal(t, int32(7), fetch.Topics[0].Partitions[0].LeaderEpoch)
}

func TestRestoredMembersExpireWithoutHeartbeats(t *testing.T) {
	// Timers run on the synctest bubble's clock: no flake on a busy machine.
	synctest.Test(t, func(t *testing.T) {
		ctx := testCtx(t)
		store := newMemStore()
		c1 := startCoordinator(t, delayConfig(), store)
		stableGroup(ctx, t, c1, "g", 1, joinOpts{session: 50 * time.Millisecond})
		c1.Close()

		c2 := startCoordinator(t, delayConfig(), store)
		testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c2, "g").State == "Empty"`, func() bool { return describe(ctx, t, c2, "g").State == "Empty" })
	})
}

func TestStoredRecordFormats(t *testing.T) {
	ctx := testCtx(t)
	store := newMemStore()
	c := startCoordinator(t, delayConfig(), store)
	ids, gen := stableGroup(ctx, t, c, "g", 1, joinOpts{instance: "static-1"})
	requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[0], instance: "static-1"}, map[string]map[int32]int64{"t": {0: 9}}, 0)

	store.mu.Lock()
	recs := append([]Record(nil), store.logs[c.PartitionFor("g")]...)
	store.mu.Unlock()
	require.Len(t, recs, 2)

	var gk kmsg.GroupMetadataKey
	require.NoError(t, gk.ReadFrom(recs[0].Key))
	require.Equal(t, int16(2), gk.Version)
	var gv kmsg.GroupMetadataValue
	require.NoError(t, gv.ReadFrom(recs[0].Value))
	require.Equal(t, int16(3), gv.Version)
	require.Equal(t, gen, gv.Generation)
	require.Equal(t, "range", *gv.Protocol)
	require.Len(t, gv.Members, 1)
	require.Equal(t, "static-1", *gv.Members[0].InstanceID)
	require.Equal(t, consumerMeta("t1"), gv.Members[0].Subscription)
	require.Equal(t, []byte("assignment-"+ids[0]), gv.Members[0].Assignment)

	var ok kmsg.OffsetCommitKey
	require.NoError(t, ok.ReadFrom(recs[1].Key))
	require.Equal(t, kmsg.OffsetCommitKey{Version: 1, Group: "g", Topic: "t", Partition: 0}, ok)
	var ov kmsg.OffsetCommitValue
	require.NoError(t, ov.ReadFrom(recs[1].Value))
	require.Equal(t, int16(3), ov.Version)
	require.Equal(t, int64(9), ov.Offset)
	require.Equal(t, int32(7), ov.LeaderEpoch)
}

func TestLoadRejectsCorruptRecords(t *testing.T) {
	store := newMemStore()
	store.logs[0] = []Record{{Key: []byte{0, 1, 0xff}, Value: []byte{1}}}
	store.logs[1] = []Record{{Key: []byte{0, 9, 1, 2}, Value: []byte{3}}} // a newer record type: skipped
	c := New(testConfig(), store, nil)
	defer c.Close()
	err := c.LoadPartition(context.Background(), 0)
	require.ErrorContains(t, err, "partition 0")
	require.False(t, c.IsCoordinator("polygenelubricants"), "a failed load owns nothing")
	require.NoError(t, c.LoadPartition(context.Background(), 1))
}

func TestAppendErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err    error
		commit bool
		want   int16
	}{
		{errStoreDown, true, kerr.CoordinatorNotAvailable.Code},
		{kerr.NotEnoughReplicas, true, kerr.CoordinatorNotAvailable.Code},
		{kerr.NotLeaderForPartition, false, kerr.NotCoordinator.Code},
		{kerr.MessageTooLarge, true, kerr.InvalidCommitOffsetSize.Code},
		{kerr.MessageTooLarge, false, kerr.UnknownServerError.Code},
		{kerr.PolicyViolation, false, kerr.PolicyViolation.Code},
	} {
		require.Equal(t, tc.want, appendCode(tc.err, tc.commit), "%v", tc.err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(offsetKey("g", "t", 1), offsetValue(offsetCommit{offset: 5, metadata: "m"}))
	f.Add(groupKey("g"), []byte{0, 3, 0, 8, 'c', 'o', 'n', 's', 'u', 'm', 'e', 'r'})
	f.Add([]byte{0, 2}, []byte(nil))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		_, _ = decodeRecord(Record{Key: key, Value: value})
	})
}
