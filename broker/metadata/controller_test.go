package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

// partitionOf reads a partition from the image of q.
func partitionOf(q *Quorum, topic string, i int32) Partition {
	p, _ := q.Image().Partition(topic, i)
	return p
}

// shrinkTo has the leader of topic-0 shrink its ISR to isr.
func shrinkTo(t *testing.T, q *Quorum, topic string, isr ...int32) {
	t.Helper()
	tp := q.Image().Topic(topic)
	p := tp.Partitions[0]
	_, err := q.AlterPartition(context.Background(), tp.ID, 0, p.Leader, p.LeaderEpoch, p.PartitionEpoch, isr)
	require.NoError(t, err)
}

// TestUncleanElection checks a partition whose whole ISR dies goes offline and keeps its last ISR
// member, gets that member back as a clean leader when it returns, and elects an out-of-sync replica
// only when the topic enables unclean leader election.
func TestUncleanElection(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 300 * time.Millisecond })
	q := c.waitController(10 * time.Second)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(5*time.Second, 1, 2, 3)
	for _, name := range []string{"clean", "unclean", "later"} {
		_, err := q.CreateTopic(ctx, name, -1, -1, [][]int32{{1, 2}}, nil)
		require.NoError(t, err)
		shrinkTo(t, q, name, 1)
	}
	require.NoError(t, q.AlterTopicConfigs(ctx, "unclean", map[string]string{"unclean.leader.election.enable": "true"}))

	c.stopBroker(1)
	testutil.WaitFor(t, 5*time.Second, "broker 1 fenced", func() bool { return !q.Image().Live(1) })
	// The fencing entry also decided every election.
	require.Equal(t, Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: -1, LeaderEpoch: 1, PartitionEpoch: 2}, partitionOf(q, "clean", 0))
	require.Equal(t, Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: -1, LeaderEpoch: 1, PartitionEpoch: 2}, partitionOf(q, "later", 0))
	require.Equal(t, Partition{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 2}, partitionOf(q, "unclean", 0))

	// Enabling unclean election elects at once.
	require.NoError(t, q.AlterTopicConfigs(ctx, "later", map[string]string{"unclean.leader.election.enable": "true"}))
	require.Equal(t, Partition{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 2, PartitionEpoch: 3}, partitionOf(q, "later", 0))
	var unclean []string
	for _, e := range q.Image().Events {
		if e.Type == EventUncleanLeaderElected {
			unclean = append(unclean, e.Topic)
		}
	}
	require.Equal(t, []string{"unclean", "later"}, unclean)

	// The last ISR member returns and leads cleanly again.
	c.startBroker(1)
	testutil.WaitFor(t, 5*time.Second, "clean partition back online", func() bool { return partitionOf(q, "clean", 0).Leader == 1 })
	require.Equal(t, Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 3}, partitionOf(q, "clean", 0))
}

// TestAlterPartition checks Kafka's AlterPartition validation.
func TestAlterPartition(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.PreferredLeaderInterval = -1 })
	q := c.waitController(10 * time.Second)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(5*time.Second, 1, 2, 3)
	tp, err := q.CreateTopic(ctx, "t", -1, -1, [][]int32{{1, 2, 3}}, nil)
	require.NoError(t, err)
	id := tp.ID

	_, err = q.AlterPartition(ctx, id, 0, 2, 0, 0, []int32{2})
	require.ErrorIs(t, err, kerr.NotLeaderForPartition)
	_, err = q.AlterPartition(ctx, id, 0, 1, -1, 0, []int32{1})
	require.ErrorIs(t, err, kerr.FencedLeaderEpoch)
	_, err = q.AlterPartition(ctx, id, 0, 1, 0, 0, []int32{2, 3})
	require.ErrorIs(t, err, kerr.InvalidRequest)
	_, err = q.AlterPartition(ctx, id, 0, 1, 0, 0, []int32{1, 4})
	require.ErrorIs(t, err, kerr.IneligibleReplica)
	_, err = q.AlterPartition(ctx, id, 1, 1, 0, 0, []int32{1})
	require.ErrorIs(t, err, kerr.UnknownTopicOrPartition)
	_, err = q.AlterPartition(ctx, [16]byte{1}, 0, 1, 0, 0, []int32{1})
	require.ErrorIs(t, err, kerr.UnknownTopicID)

	p, err := q.AlterPartition(ctx, id, 0, 1, 0, 0, []int32{1, 2})
	require.NoError(t, err)
	require.Equal(t, Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, PartitionEpoch: 1}, p)
	// A retry of an applied change gets the current state.
	p, err = q.AlterPartition(ctx, id, 0, 1, 0, 0, []int32{1, 2})
	require.NoError(t, err)
	require.Equal(t, int32(1), p.PartitionEpoch)
	// A stale partition epoch with another ISR is refused.
	_, err = q.AlterPartition(ctx, id, 0, 1, 0, 0, []int32{1})
	require.ErrorIs(t, err, kerr.InvalidUpdateVersion)

	// Broker 3 shuts down (asks to be fenced): it cannot rejoin the ISR while fenced.
	b3 := c.brokers[3]
	c.stopBroker(3)
	fenced, err := q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 3, BrokerEpoch: b3.epoch, AppliedIndex: q.Image().Index, WantFence: true})
	require.NoError(t, err)
	require.True(t, fenced)
	_, err = q.AlterPartition(ctx, id, 0, 1, 0, 1, []int32{1, 2, 3})
	require.ErrorIs(t, err, kerr.IneligibleReplica)
	p, err = q.AlterPartition(ctx, id, 0, 1, 0, 1, []int32{1})
	require.NoError(t, err)
	require.Equal(t, int32(2), p.PartitionEpoch)

	// Broker 1 shuts down: leadership moves to 2 (clean) with a new leader epoch, and 1's old epochs
	// are fenced. Broker 2 was dropped from the ISR above, so first put it back.
	p, err = q.AlterPartition(ctx, id, 0, 1, 0, 2, []int32{1, 2})
	require.NoError(t, err)
	b1 := c.brokers[1]
	c.stopBroker(1)
	_, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 1, BrokerEpoch: b1.epoch, WantFence: true})
	require.NoError(t, err)
	p = partitionOf(q, "t", 0)
	require.Equal(t, Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 1, PartitionEpoch: 4}, p)
	_, err = q.AlterPartition(ctx, id, 0, 1, 0, 3, []int32{1})
	require.ErrorIs(t, err, kerr.NotLeaderForPartition)
	_, err = q.AlterPartition(ctx, id, 0, 2, 0, 4, []int32{2})
	require.ErrorIs(t, err, kerr.FencedLeaderEpoch)
}

// TestRegistration checks broker epochs, fencing until caught up, and duplicate registrations.
func TestRegistration(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 10 * time.Second })
	q := c.waitController(10 * time.Second)
	b := Broker{ID: 7, Host: "h", Port: 9092, IncarnationID: [16]byte{1}}
	epoch, err := q.RegisterBroker(ctx, b)
	require.NoError(t, err)
	require.Equal(t, int64(q.Image().Index), epoch)
	again, err := q.RegisterBroker(ctx, b)
	require.NoError(t, err)
	require.Equal(t, epoch, again, "a retried registration keeps its epoch")

	fenced, err := q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, AppliedIndex: uint64(epoch) - 1})
	require.NoError(t, err)
	require.True(t, fenced, "not caught up with its registration yet")
	fenced, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, AppliedIndex: uint64(epoch)})
	require.NoError(t, err)
	require.False(t, fenced)
	_, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch - 1})
	require.ErrorIs(t, err, kerr.StaleBrokerEpoch)
	_, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 8})
	require.ErrorIs(t, err, kerr.BrokerIDNotRegistered)

	b.IncarnationID = [16]byte{2}
	_, err = q.RegisterBroker(ctx, b)
	require.ErrorIs(t, err, kerr.DuplicateBrokerRegistration, "the old incarnation's session lasts")
	_, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, WantFence: true})
	require.NoError(t, err)
	newEpoch, err := q.RegisterBroker(ctx, b)
	require.NoError(t, err)
	require.Greater(t, newEpoch, epoch)
	require.True(t, q.Image().Brokers[7].Fenced)
	_, err = q.RegisterBroker(ctx, Broker{ID: 9, Host: "", Port: 1})
	require.ErrorIs(t, err, kerr.InvalidRequest)
}

// TestTopicValidation checks Kafka's errors for manual assignments and partition growth.
func TestTopicValidation(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 10 * time.Second; cfg.DefaultPartitions = 2 })
	q := c.waitController(10 * time.Second)
	c.startBroker(1)
	c.startBroker(2)
	c.waitLive(5*time.Second, 1, 2)

	for _, tc := range []struct {
		asg     [][]int32
		wantErr string
	}{
		{[][]int32{{}}, "empty replica list"},
		{[][]int32{{1, 1}}, "broker 1 more than once"},
		{[][]int32{{1, 5}}, "broker 5, but no such broker is registered"},
		{[][]int32{{1, 2}, {1}}, "a partition with 1 replica(s), but this is not consistent with previous partitions, which have 2 replica(s)"},
	} {
		_, err := q.CreateTopic(ctx, "m", -1, -1, tc.asg, nil)
		require.ErrorIs(t, err, kerr.InvalidReplicaAssignment)
		require.ErrorContains(t, err, tc.wantErr)
	}
	_, err := q.CreateTopic(ctx, "m", 1, -1, [][]int32{{1}}, nil)
	require.ErrorIs(t, err, kerr.InvalidRequest)

	tp, err := q.CreateTopic(ctx, "m", -1, -1, nil, nil)
	require.NoError(t, err)
	require.Len(t, tp.Partitions, 2, "Config.DefaultPartitions")
	require.Len(t, tp.Partitions[0].Replicas, 2, "default replication factor: all live brokers below three")

	_, err = q.CreatePartitions(ctx, "m", 2, nil)
	require.ErrorIs(t, err, kerr.InvalidPartitions)
	_, err = q.CreatePartitions(ctx, "m", 1, nil)
	require.EqualError(t, err, "Topic currently has 2 partitions, which is higher than the requested 1.")
	_, err = q.CreatePartitions(ctx, "m", 4, [][]int32{{2, 1}})
	require.ErrorIs(t, err, kerr.InvalidReplicaAssignment)
	_, err = q.CreatePartitions(ctx, "m", 3, [][]int32{{2}})
	require.ErrorIs(t, err, kerr.InvalidReplicaAssignment)
	_, err = q.CreatePartitions(ctx, "nope", 3, nil)
	require.ErrorIs(t, err, kerr.UnknownTopicOrPartition)
	tp, err = q.CreatePartitions(ctx, "m", 4, [][]int32{{2, 1}, {1, 2}})
	require.NoError(t, err)
	require.Equal(t, Partition{Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 2}, tp.Partitions[2])
	tp, err = q.CreatePartitions(ctx, "m", 6, nil)
	require.NoError(t, err)
	require.Len(t, tp.Partitions, 6)
}
