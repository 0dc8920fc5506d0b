package metadata

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestClusterFailover runs three voters, each also a broker. It kills the controller and checks
// another takes over, fences the dead broker after its session, elects new leaders from the ISR with
// bumped epochs, keeps producer ID blocks disjoint, and gives the returning broker its preferred
// leaderships back once it is in sync again.
func TestClusterFailover(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3, nil)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(10*time.Second, 1, 2, 3)

	topic, err := call(c, func(q *Quorum) (Topic, error) { return q.CreateTopic(ctx, "events", 6, -1, nil, nil) })
	require.NoError(t, err)
	leaders := map[int32]int{}
	for _, p := range topic.Partitions {
		require.Len(t, p.Replicas, 3, "default replication factor with three live brokers")
		require.Equal(t, p.Replicas, p.ISR)
		require.Equal(t, p.Replicas[0], p.Leader)
		leaders[p.Leader]++
	}
	require.Equal(t, map[int32]int{1: 2, 2: 2, 3: 2}, leaders, "leaders spread round robin")
	for id := int32(1); id <= 3; id++ {
		q := c.node(id)
		testutil.WaitFor(t, 5*time.Second, "topic replicated", func() bool { return q.Image().Topic("events") != nil })
		require.Equal(t, topic.Partitions, q.Image().Topic("events").Partitions)
	}

	blocks := map[int64]bool{}
	allocate := func() {
		start, err := call(c, func(q *Quorum) (int64, error) { s, _, err := q.AllocateProducerIDs(ctx); return s, err })
		require.NoError(t, err)
		require.False(t, blocks[start], "block %d handed out twice", start)
		for b := range blocks {
			require.True(t, start >= b+ProducerIDBlockSize || start+ProducerIDBlockSize <= b, "blocks %d and %d overlap", b, start)
		}
		blocks[start] = true
	}
	allocate()
	allocate()

	// Kill the controller, which is also a broker.
	old := c.controller()
	dead := old.cfg.NodeID
	before := old.Image().Topic("events").Partitions
	c.stopBroker(dead)
	killed := time.Now()
	c.stop(dead)

	ctl := c.waitController(10 * time.Second)
	require.NotEqual(t, dead, ctl.cfg.NodeID)
	testutil.WaitFor(t, 10*time.Second, "dead broker fenced and its partitions moved", func() bool {
		img := ctl.Image()
		if img.Live(dead) {
			return false
		}
		for _, p := range img.Topic("events").Partitions {
			if p.Leader == dead || slices.Contains(p.ISR, dead) {
				return false
			}
		}
		return true
	})
	t.Logf("controller %d killed; controller %d took over and moved its leaderships after %s", dead, ctl.cfg.NodeID, time.Since(killed))
	img := ctl.Image()
	for i, p := range img.Topic("events").Partitions {
		b := before[i]
		require.NotEqual(t, int32(-1), p.Leader)
		require.Greater(t, p.PartitionEpoch, b.PartitionEpoch)
		if b.Leader == dead {
			require.Equal(t, b.LeaderEpoch+1, p.LeaderEpoch, "partition %d", i)
			require.Contains(t, b.ISR, p.Leader, "clean election from the ISR")
		} else {
			require.Equal(t, b.Leader, p.Leader)
			require.Equal(t, b.LeaderEpoch, p.LeaderEpoch)
		}
	}
	var fenced, elected bool
	for _, e := range img.Events {
		fenced = fenced || (e.Type == EventBrokerFenced && e.Broker == dead)
		elected = elected || e.Type == EventLeaderElected
		require.NotEqual(t, EventUncleanLeaderElected, e.Type)
	}
	require.True(t, fenced && elected, "events recorded: %v", img.Events)
	allocate()

	// The dead broker returns with a new incarnation; as the leaders see it catch up they add it back
	// to the ISR, and it gets its preferred leaderships back.
	cfg := Config{NodeID: dead, Voters: old.cfg.Voters, Dir: old.cfg.Dir, Logger: old.cfg.Logger, SessionTimeout: time.Second}
	c.start(cfg)
	c.startBroker(dead)
	c.waitLive(10*time.Second, 1, 2, 3)
	for i := range img.Topic("events").Partitions {
		_, err := call(c, func(q *Quorum) (Partition, error) {
			t := q.Image().Topic("events")
			p := t.Partitions[i]
			if slices.Contains(p.ISR, dead) {
				return p, nil
			}
			return q.AlterPartition(ctx, t.ID, int32(i), p.Leader, p.LeaderEpoch, p.PartitionEpoch, append(slices.Clone(p.ISR), dead))
		})
		require.NoError(t, err)
	}
	testutil.WaitFor(t, 10*time.Second, "preferred leaders restored", func() bool {
		q := c.controller()
		if q == nil {
			return false
		}
		for _, p := range q.Image().Topic("events").Partitions {
			if p.Leader != p.Replicas[0] || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	})
	allocate()
}
