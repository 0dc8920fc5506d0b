package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestSingleVoterReopen applies records on a one-voter quorum, snapshots, applies more, and checks a
// reopened quorum rebuilds the same image from the snapshot plus the log after it.
func TestSingleVoterReopen(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 10 * time.Second })
	q := c.waitController(10 * time.Second)
	require.Equal(t, int32(1), q.ControllerID())
	c.startBroker(1)
	c.waitLive(5*time.Second, 1)

	topic, err := q.CreateTopic(ctx, "orders", 3, -1, nil, map[string]string{"retention.ms": "1000"})
	require.NoError(t, err)
	require.Len(t, topic.Partitions, 3)
	for _, p := range topic.Partitions {
		require.Equal(t, Partition{Replicas: []int32{1}, ISR: []int32{1}, Leader: 1}, p)
	}
	_, err = q.CreateTopic(ctx, "orders", 1, 1, nil, nil)
	require.ErrorIs(t, err, kerr.TopicAlreadyExists)
	require.EqualError(t, err, "Topic 'orders' already exists.")
	_, err = q.CreateTopic(ctx, "wide", 1, 3, nil, nil)
	require.ErrorIs(t, err, kerr.InvalidReplicationFactor)
	require.EqualError(t, err, "Replication factor: 3 larger than available brokers: 1.")
	_, err = q.CreateTopic(ctx, "bad/name", 1, 1, nil, nil)
	require.ErrorIs(t, err, kerr.InvalidTopicException)
	_, err = q.CreateTopic(ctx, "zero", 0, 1, nil, nil)
	require.ErrorIs(t, err, kerr.InvalidPartitions)
	start, n, err := q.AllocateProducerIDs(ctx)
	require.NoError(t, err)
	require.Equal(t, [2]int64{0, ProducerIDBlockSize}, [2]int64{start, n})

	require.NoError(t, q.raft.Snapshot().Error())

	_, err = q.CreatePartitions(ctx, "orders", 5, nil)
	require.NoError(t, err)
	require.NoError(t, q.AlterTopicConfigs(ctx, "orders", map[string]string{"retention.ms": "2000"}))
	doomed, err := q.CreateTopic(ctx, "doomed", 1, 1, nil, nil)
	require.NoError(t, err)
	require.NoError(t, q.DeleteTopic(ctx, doomed.ID))
	require.ErrorIs(t, q.DeleteTopic(ctx, doomed.ID), kerr.UnknownTopicID)
	start, _, err = q.AllocateProducerIDs(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(ProducerIDBlockSize), start)

	before := q.Image()
	require.Nil(t, before.Topic("doomed"))
	require.Equal(t, "2000", before.Topic("orders").Configs["retention.ms"])
	require.Len(t, before.Topic("orders").Partitions, 5)
	var types []EventType
	for _, e := range before.Events {
		types = append(types, e.Type)
	}
	require.Equal(t, []EventType{EventBrokerJoined, EventBrokerUnfenced, EventTopicCreated, EventPartitionsCreated,
		EventConfigChanged, EventTopicCreated, EventTopicDeleted}, types)

	c.stopBroker(1)
	cfg := c.stop(1)
	nd := c.start(cfg)
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, nd.q.WaitApplied(ctx2, before.Index))
	after := nd.q.Image()
	require.Equal(t, before.Brokers, after.Brokers)
	require.Equal(t, before.Topics, after.Topics)
	require.Equal(t, before.NextProducerIDBlock, after.NextProducerIDBlock)
	require.Equal(t, before.Events, after.Events)
	require.Equal(t, before.Topic("orders"), after.TopicByID(before.Topic("orders").ID))

	// The restarted controller continues the producer ID sequence.
	q = c.waitController(10 * time.Second)
	start, _, err = q.AllocateProducerIDs(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2*ProducerIDBlockSize), start)
}

// TestNotController checks controller operations are refused on a follower.
func TestNotController(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctl := c.waitController(10 * time.Second)
	for id := int32(1); id <= 3; id++ {
		q := c.node(id)
		if q == ctl {
			continue
		}
		testutil.WaitFor(t, 5*time.Second, "follower knows the controller", func() bool { return q.ControllerID() >= 0 })
		_, err := q.CreateTopic(context.Background(), "t", 1, 1, nil, nil)
		require.ErrorIs(t, err, ErrNotController)
		require.ErrorIs(t, err, kerr.NotController)
		_, err = q.Heartbeat(context.Background(), HeartbeatRequest{BrokerID: 1})
		require.ErrorIs(t, err, ErrNotController)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	voters := []Voter{{1, "127.0.0.1:1"}}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no dir", Config{NodeID: 1}, "no data directory"},
		{"negative id", Config{NodeID: -1, Dir: t.TempDir()}, "negative"},
		{"not a voter", Config{NodeID: 2, Voters: voters, Dir: t.TempDir()}, "not in the controller quorum voters"},
		{"lease", Config{NodeID: 1, Dir: t.TempDir(), LeaderLeaseTimeout: 2 * time.Second}, "leader lease timeout"},
		{"election", Config{NodeID: 1, Dir: t.TempDir(), ElectionTimeout: 100 * time.Millisecond}, "election timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.cfg)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
