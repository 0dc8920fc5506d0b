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

type commitOpts struct {
	version   int16
	gen       int32
	member    string
	instance  string
	metadata  string
	retention time.Duration
}

func commitReq(group string, o commitOpts, offsets map[string]map[int32]int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version, req.Group, req.Generation, req.MemberID = o.version, group, o.gen, o.member
	if o.instance != "" {
		req.InstanceID = kmsg.StringPtr(o.instance)
	}
	if o.retention > 0 {
		req.RetentionTimeMillis = o.retention.Milliseconds()
	}
	for topic, ps := range offsets {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for p, off := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, off
			rp.LeaderEpoch = 7
			rp.Metadata = kmsg.StringPtr(o.metadata)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func commitCodes(resp *kmsg.OffsetCommitResponse) map[string]map[int32]int16 {
	out := make(map[string]map[int32]int16)
	for _, t := range resp.Topics {
		out[t.Topic] = make(map[int32]int16)
		for _, p := range t.Partitions {
			out[t.Topic][p.Partition] = p.ErrorCode
		}
	}
	return out
}

func requireCommit(t *testing.T, c *Coordinator, group string, o commitOpts, offsets map[string]map[int32]int64, want int16) {
	t.Helper()
	resp := c.OffsetCommit(testCtx(t), commitReq(group, o, offsets))
	require.Equal(t, int16(o.version), resp.Version)
	for topic, ps := range commitCodes(resp) {
		for p, code := range ps {
			require.Equal(t, want, code, "%s/%d", topic, p)
		}
	}
}

func fetchV(c *Coordinator, version int16, group string, topics map[string][]int32) *kmsg.OffsetFetchResponse {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = version, group
	for topic, ps := range topics {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = topic, ps
		req.Topics = append(req.Topics, rt)
	}
	return c.OffsetFetch(context.Background(), req)
}

func TestSimpleCommitAndFetchAcrossVersions(t *testing.T) {
	for _, tc := range []struct {
		commit, fetch int16
		epoch         int32 // what OffsetFetch reports
	}{
		{0, 0, -1}, {1, 1, -1}, {2, 1, -1}, {2, 2, -1}, {5, 5, -1}, {7, 7, 7}, {8, 7, 7}, {9, 6, 7},
	} {
		t.Run("", func(t *testing.T) {
			c := startCoordinator(t, testConfig(), newMemStore())
			o := commitOpts{version: tc.commit, gen: -1, metadata: "meta"}
			requireCommit(t, c, "simple", o, map[string]map[int32]int64{"t1": {0: 10, 1: 11}}, 0)

			resp := fetchV(c, tc.fetch, "simple", map[string][]int32{"t1": {0, 1, 2}})
			require.Zero(t, resp.ErrorCode)
			require.Len(t, resp.Topics, 1)
			got := map[int32]kmsg.OffsetFetchResponseTopicPartition{}
			for _, p := range resp.Topics[0].Partitions {
				got[p.Partition] = p
			}
			require.Equal(t, int64(10), got[0].Offset)
			require.Equal(t, int64(11), got[1].Offset)
			require.Equal(t, int64(-1), got[2].Offset, "never committed")
			require.Equal(t, "meta", *got[0].Metadata)
			require.Equal(t, "", *got[2].Metadata)
			if tc.fetch >= 5 {
				require.Equal(t, tc.epoch, got[0].LeaderEpoch)
			}
			require.Equal(t, map[string]map[int32]int64{"t1": {0: 10, 1: 11}}, c.CommittedOffsets("simple"))
			require.Equal(t, "Empty", describe(context.Background(), t, c, "simple").State)
		})
	}
}

func TestOffsetFetchAllAndMultiGroup(t *testing.T) {
	c := startCoordinator(t, testConfig(), newMemStore())
	o := commitOpts{version: 8, gen: -1}
	requireCommit(t, c, "a", o, map[string]map[int32]int64{"t1": {0: 1, 1: 2}, "t2": {0: 3}}, 0)
	requireCommit(t, c, "b", o, map[string]map[int32]int64{"t1": {0: 4}}, 0)

	// v2+: a null topic list fetches everything.
	resp := fetchV(c, 7, "a", nil)
	require.Len(t, resp.Topics, 2)
	require.Equal(t, "t1", resp.Topics[0].Topic)
	require.Len(t, resp.Topics[0].Partitions, 2)

	// v8: several groups, each with its own topics or all of them.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	ga := kmsg.NewOffsetFetchRequestGroup()
	ga.Group = "a"
	gb := kmsg.NewOffsetFetchRequestGroup()
	gb.Group = "b"
	tb := kmsg.NewOffsetFetchRequestGroupTopic()
	tb.Topic, tb.Partitions = "t1", []int32{0, 5}
	gb.Topics = []kmsg.OffsetFetchRequestGroupTopic{tb}
	gc := kmsg.NewOffsetFetchRequestGroup()
	gc.Group = "unknown"
	gc.Topics = []kmsg.OffsetFetchRequestGroupTopic{tb}
	req.Groups = []kmsg.OffsetFetchRequestGroup{ga, gb, gc}
	mresp := c.OffsetFetch(context.Background(), req)
	require.Len(t, mresp.Groups, 3)
	require.Len(t, mresp.Groups[0].Topics, 2)
	require.Equal(t, int64(4), mresp.Groups[1].Topics[0].Partitions[0].Offset)
	require.Equal(t, int64(-1), mresp.Groups[1].Topics[0].Partitions[1].Offset)
	require.Zero(t, mresp.Groups[2].ErrorCode)
	require.Equal(t, int64(-1), mresp.Groups[2].Topics[0].Partitions[0].Offset)
}

func TestOffsetFetchGroupErrorsPerVersion(t *testing.T) {
	c := New(testConfig(), newMemStore(), nil) // owns no partition
	v1 := fetchV(c, 1, "g", map[string][]int32{"t": {0}})
	require.Equal(t, kerr.NotCoordinator.Code, v1.Topics[0].Partitions[0].ErrorCode)
	v3 := fetchV(c, 3, "g", map[string][]int32{"t": {0}})
	require.Equal(t, kerr.NotCoordinator.Code, v3.ErrorCode)
	require.Empty(t, v3.Topics)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 9
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}}
	require.Equal(t, kerr.NotCoordinator.Code, c.OffsetFetch(context.Background(), req).Groups[0].ErrorCode)
}

func TestMemberCommits(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	c.SetTopicChecker(func(topic string, _ int32) bool { return topic != "missing" })
	ids, gen := stableGroup(ctx, t, c, "g", 2, joinOpts{})
	offs := map[string]map[int32]int64{"t1": {0: 100}}

	for _, tc := range []struct {
		name string
		o    commitOpts
		want int16
	}{
		{"member v2", commitOpts{version: 2, gen: gen, member: ids[0]}, 0},
		{"member v7", commitOpts{version: 7, gen: gen, member: ids[1]}, 0},
		{"old generation", commitOpts{version: 7, gen: gen - 1, member: ids[0]}, kerr.IllegalGeneration.Code},
		{"unknown member", commitOpts{version: 7, gen: gen, member: "x"}, kerr.UnknownMemberID.Code},
		{"unknown instance", commitOpts{version: 7, gen: gen, member: ids[0], instance: "i"}, kerr.UnknownMemberID.Code},
		{"simple commit to a group with members", commitOpts{version: 7, gen: -1}, kerr.UnknownMemberID.Code},
		{"v0 is a simple commit", commitOpts{version: 0}, kerr.UnknownMemberID.Code},
		{"metadata too large", commitOpts{version: 7, gen: gen, member: ids[0], metadata: string(make([]byte, 4097))}, kerr.OffsetMetadataTooLarge.Code},
	} {
		t.Run(tc.name, func(t *testing.T) { requireCommit(t, c, "g", tc.o, offs, tc.want) })
	}
	t.Run("unknown topic", func(t *testing.T) {
		requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[0]}, map[string]map[int32]int64{"missing": {0: 1}}, kerr.UnknownTopicOrPartition.Code)
	})
	t.Run("no group and a generation", func(t *testing.T) {
		requireCommit(t, c, "other", commitOpts{version: 7, gen: 3, member: "m"}, offs, kerr.IllegalGeneration.Code)
	})
	t.Run("store down", func(t *testing.T) {
		store := newMemStore()
		c := startCoordinator(t, testConfig(), store)
		store.setFail(errStoreDown)
		requireCommit(t, c, "s", commitOpts{version: 7, gen: -1}, offs, kerr.CoordinatorNotAvailable.Code)
		store.setFail(kerr.MessageTooLarge)
		requireCommit(t, c, "s", commitOpts{version: 7, gen: -1}, offs, kerr.InvalidCommitOffsetSize.Code)
		require.Empty(t, c.CommittedOffsets("s"))
	})

	// A commit while the group completes a rebalance is refused, one while
	// it prepares one is accepted.
	j := joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[0]})
	testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c, "g").State == "PreparingRebalance"`, func() bool { return describe(ctx, t, c, "g").State == "PreparingRebalance" })
	requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[1]}, offs, 0)
	rj := recv(t, joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[1]}))
	require.Zero(t, rj.ErrorCode)
	require.Zero(t, recv(t, j).ErrorCode)
	requireCommit(t, c, "g", commitOpts{version: 7, gen: rj.Generation, member: ids[1]}, offs, kerr.RebalanceInProgress.Code)
}

func TestOffsetDelete(t *testing.T) {
	ctx := testCtx(t)
	store := newMemStore()
	c := startCoordinator(t, delayConfig(), store)
	ids, gen := stableGroup(ctx, t, c, "g", 1, joinOpts{}) // subscribed to t1
	offs := map[string]map[int32]int64{"t1": {0: 5}, "t2": {0: 6, 1: 7}}
	requireCommit(t, c, "g", commitOpts{version: 7, gen: gen, member: ids[0]}, offs, 0)

	del := func(group string, topics map[string][]int32) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for topic, ps := range topics {
			rt := kmsg.NewOffsetDeleteRequestTopic()
			rt.Topic = topic
			for _, p := range ps {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
			}
			req.Topics = append(req.Topics, rt)
		}
		return c.OffsetDelete(ctx, req)
	}
	resp := del("g", map[string][]int32{"t1": {0}})
	require.Zero(t, resp.ErrorCode)
	require.Equal(t, kerr.GroupSubscribedToTopic.Code, resp.Topics[0].Partitions[0].ErrorCode)
	resp = del("g", map[string][]int32{"t2": {0}})
	require.Zero(t, resp.Topics[0].Partitions[0].ErrorCode)
	require.Equal(t, map[string]map[int32]int64{"t1": {0: 5}, "t2": {1: 7}}, c.CommittedOffsets("g"))
	require.Equal(t, kerr.GroupIDNotFound.Code, del("nope", map[string][]int32{"t2": {0}}).ErrorCode)

	// Once empty, everything can go, and the group goes with its offsets.
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 3, "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[0]}}
	require.Zero(t, c.LeaveGroup(ctx, leave).Members[0].ErrorCode)
	require.Equal(t, "Empty", describe(ctx, t, c, "g").State)
	resp = del("g", map[string][]int32{"t1": {0}, "t2": {1}})
	require.Zero(t, resp.ErrorCode)
	require.Nil(t, c.CommittedOffsets("g"))
	require.Equal(t, "Dead", describe(ctx, t, c, "g").State)

	recs := store.records(t, c.PartitionFor("g"))
	last := recs[len(recs)-1]
	require.True(t, last.isMeta && last.meta == nil, "group tombstone last")
}

func TestOffsetsExpireInEmptyGroups(t *testing.T) {
	// Timers run on the synctest bubble's clock: no flake on a busy machine.
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.OffsetsRetention = 50 * time.Millisecond
		cfg.OffsetsRetentionCheckInterval = 5 * time.Millisecond
		store := newMemStore()
		c := startCoordinator(t, cfg, store)
		requireCommit(t, c, "g", commitOpts{version: 7, gen: -1}, map[string]map[int32]int64{"t": {0: 1}}, 0)
		// A v2 commit with its own, longer retention outlives the group default.
		requireCommit(t, c, "h", commitOpts{version: 2, gen: -1, retention: time.Hour}, map[string]map[int32]int64{"t": {0: 1}}, 0)
		testutil.WaitFor(t, 5*time.Second, `c.CommittedOffsets("g") == nil`, func() bool { return c.CommittedOffsets("g") == nil })
		require.NotNil(t, c.CommittedOffsets("h"))

		var tombstone bool
		for _, d := range store.records(t, c.PartitionFor("g")) {
			if d.group == "g" && d.isOffset && d.offset == nil {
				tombstone = true
			}
		}
		require.True(t, tombstone)
	})
}
