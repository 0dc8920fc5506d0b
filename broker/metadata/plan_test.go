package metadata

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPlanPartition(t *testing.T) {
	liveSet := func(ids ...int32) func(int32) bool { return func(id int32) bool { return slices.Contains(ids, id) } }
	p := func(replicas, isr []int32, leader, le, pe int32) Partition {
		return Partition{Replicas: replicas, ISR: isr, Leader: leader, LeaderEpoch: le, PartitionEpoch: pe}
	}
	for _, tc := range []struct {
		name               string
		p                  Partition
		live               func(int32) bool
		unclean, preferred bool
		want               *partitionChangeRecord
	}{
		{name: "steady", p: p([]int32{1, 2, 3}, []int32{1, 2, 3}, 1, 4, 7), live: liveSet(1, 2, 3), preferred: true},
		{name: "follower dies", p: p([]int32{1, 2, 3}, []int32{1, 2, 3}, 1, 4, 7), live: liveSet(1, 2),
			want: &partitionChangeRecord{Leader: 1, LeaderEpoch: 4, ISR: []int32{1, 2}, PartitionEpoch: 8, Reason: reasonISRShrink}},
		{name: "leader dies", p: p([]int32{1, 2, 3}, []int32{1, 3, 2}, 1, 4, 7), live: liveSet(2, 3),
			want: &partitionChangeRecord{Leader: 2, LeaderEpoch: 5, ISR: []int32{3, 2}, PartitionEpoch: 8, Reason: reasonClean}},
		{name: "leader dies, only out-of-sync replicas live", p: p([]int32{1, 2}, []int32{1}, 1, 4, 7), live: liveSet(2),
			want: &partitionChangeRecord{Leader: -1, LeaderEpoch: 5, ISR: []int32{1}, PartitionEpoch: 8, Reason: reasonOffline}},
		{name: "unclean", p: p([]int32{1, 2}, []int32{1}, 1, 4, 7), live: liveSet(2), unclean: true,
			want: &partitionChangeRecord{Leader: 2, LeaderEpoch: 5, ISR: []int32{2}, PartitionEpoch: 8, Reason: reasonUnclean}},
		{name: "unclean never elects a replica a reassignment is adding", live: liveSet(4), unclean: true,
			p:    Partition{Replicas: []int32{4, 1}, ISR: []int32{1}, AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 7},
			want: &partitionChangeRecord{Leader: -1, LeaderEpoch: 5, ISR: []int32{1}, PartitionEpoch: 8, Reason: reasonOffline}},
		{name: "a reassignment's adding replica not in the ISR is not elected", live: liveSet(2, 4),
			p:    Partition{Replicas: []int32{4, 2, 1}, ISR: []int32{1, 2}, AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 7},
			want: &partitionChangeRecord{Leader: 2, LeaderEpoch: 5, ISR: []int32{2}, PartitionEpoch: 8, Reason: reasonClean}},
		{name: "offline stays offline", p: p([]int32{1, 2}, []int32{1}, -1, 5, 8), live: liveSet(2)},
		{name: "offline, everything dead, unclean", p: p([]int32{1, 2}, []int32{1}, -1, 5, 8), live: liveSet(), unclean: true},
		{name: "last ISR member returns", p: p([]int32{1, 2}, []int32{1}, -1, 5, 8), live: liveSet(1, 2),
			want: &partitionChangeRecord{Leader: 1, LeaderEpoch: 6, ISR: []int32{1}, PartitionEpoch: 9, Reason: reasonClean}},
		{name: "whole ISR dies at once", p: p([]int32{1, 2, 3}, []int32{1, 2}, 1, 0, 0), live: liveSet(3),
			want: &partitionChangeRecord{Leader: -1, LeaderEpoch: 1, ISR: []int32{1, 2}, PartitionEpoch: 1, Reason: reasonOffline}},
		{name: "preferred back in sync", p: p([]int32{1, 2, 3}, []int32{2, 3, 1}, 2, 4, 7), live: liveSet(1, 2, 3), preferred: true,
			want: &partitionChangeRecord{Leader: 1, LeaderEpoch: 5, ISR: []int32{2, 3, 1}, PartitionEpoch: 8, Reason: reasonPreferred}},
		{name: "preferred not checked", p: p([]int32{1, 2, 3}, []int32{2, 3, 1}, 2, 4, 7), live: liveSet(1, 2, 3)},
		{name: "preferred not in sync", p: p([]int32{1, 2, 3}, []int32{2, 3}, 2, 4, 7), live: liveSet(1, 2, 3), preferred: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := planPartition(tc.p, tc.live, tc.unclean, tc.preferred)
			if tc.want == nil {
				require.False(t, ok, "unexpected change %+v", got)
				return
			}
			require.True(t, ok)
			require.Equal(t, *tc.want, got)
		})
	}
}

func TestAssignReplicas(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	brokers := []int32{1, 2, 3, 4, 5}
	asg := assignReplicas(brokers, 20, 3, 0, rng)
	require.Len(t, asg, 20)
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	for _, r := range asg {
		require.Len(t, r, 3)
		require.Len(t, slicesCompactSorted(r), 3, "distinct replicas %v", r)
		leaders[r[0]]++
		for _, b := range r {
			replicas[b]++
		}
	}
	for _, b := range brokers {
		require.Equal(t, 4, leaders[b], "leaders spread evenly")
		require.Equal(t, 12, replicas[b], "replicas spread evenly")
	}
	// Consecutive partitions have consecutive leaders, continuing for added partitions.
	more := assignReplicas([]int32{7}, 2, 1, 3, rng)
	require.Equal(t, [][]int32{{7}, {7}}, more)
}

func slicesCompactSorted(s []int32) []int32 {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

func TestEntryEncoding(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	recs := []record{
		registerBrokerRecord{ID: 1, Host: "h", Port: 9092, IncarnationID: [16]byte{9}},
		createTopicRecord{Name: "t", TopicID: [16]byte{1}, Partitions: [][]int32{{1}}},
		partitionChangeRecord{TopicID: [16]byte{1}, Leader: -1, LeaderEpoch: 1, ISR: []int32{1}, PartitionEpoch: 1, Reason: reasonOffline},
	}
	data, err := encodeEntry(now, recs)
	require.NoError(t, err)
	got, err := decodeEntry(data)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i := range recs {
		require.Equal(t, recs[i], got[i].rec)
		require.True(t, now.Equal(got[i].time))
	}

	for _, bad := range []string{
		`{"v":2,"records":[]}`,
		`{"v":1,"records":[{"type":"nope","v":1,"data":{}}]}`,
		`{"v":1,"records":[{"type":"fence_broker","v":2,"data":{}}]}`,
		`{"v":1,"records":[{"type":"fence_broker","v":1,"data":[]}]}`,
		`not json`,
	} {
		_, err := decodeEntry([]byte(bad))
		require.Error(t, err, bad)
	}
}

// TestApplyAtomic checks an entry with one invalid record changes nothing, and that events are
// trimmed to MaxEvents.
func TestApplyAtomic(t *testing.T) {
	now := time.Now()
	st := func(recs ...record) []stamped {
		var out []stamped
		for _, r := range recs {
			out = append(out, stamped{time: now, rec: r})
		}
		return out
	}
	img, err := applyEntry(emptyImage(), 1, st(registerBrokerRecord{ID: 1, Host: "h", Port: 1}, unfenceBrokerRecord{ID: 1, Epoch: 1}), true)
	require.NoError(t, err)
	require.True(t, img.Live(1))
	_, err = applyEntry(img, 2, st(createTopicRecord{Name: "t", TopicID: [16]byte{1}, Partitions: [][]int32{{1}}},
		allocateProducerIDsRecord{BlockStart: 5, NextBlockStart: 10}), true)
	require.Error(t, err)
	require.Nil(t, img.Topic("t"))

	for i := uint64(2); i < MaxEvents+10; i += 2 {
		img, err = applyEntry(img, i, st(fenceBrokerRecord{ID: 1, Epoch: 1}), true)
		require.NoError(t, err)
		img, err = applyEntry(img, i+1, st(unfenceBrokerRecord{ID: 1, Epoch: 1}), true)
		require.NoError(t, err)
	}
	require.Len(t, img.Events, MaxEvents)
	require.Equal(t, EventBrokerUnfenced, img.Events[len(img.Events)-1].Type)
	require.Len(t, img.EventsSince(img.Index-2), 2)
}
