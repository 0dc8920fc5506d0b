package metadata

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

func allLive(int32) bool { return true }

// TestReassignmentStateMachine checks the pure steps of KIP-455: start, complete (leader staying or
// leaving, waiting for adding replicas), cancel.
func TestReassignmentStateMachine(t *testing.T) {
	p := Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 7}

	started := startReassignment(p, []int32{4, 2, 3})
	require.Equal(t, Partition{Replicas: []int32{4, 2, 3, 1}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 8,
		AddingReplicas: []int32{4}, RemovingReplicas: []int32{1}}, started)
	require.True(t, started.Reassigning())
	require.Equal(t, []int32{4, 2, 3}, started.TargetReplicas())

	// The adding replica is not in sync yet: nothing completes, however long it takes.
	_, ok := completeReassignment(started, allLive)
	require.False(t, ok)

	// Once it is, the leader (leaving) hands over to the first in-sync target replica.
	synced := started
	synced.ISR = []int32{1, 2, 3, 4}
	done, ok := completeReassignment(synced, allLive)
	require.True(t, ok)
	require.Equal(t, Partition{Replicas: []int32{4, 2, 3}, ISR: []int32{2, 3, 4}, Leader: 4, LeaderEpoch: 5, PartitionEpoch: 9}, done)

	// A leader that stays keeps leading at the same epoch.
	stay := startReassignment(p, []int32{1, 2, 4})
	stay.ISR = []int32{1, 2, 3, 4}
	done, ok = completeReassignment(stay, allLive)
	require.True(t, ok)
	require.Equal(t, Partition{Replicas: []int32{1, 2, 4}, ISR: []int32{1, 2, 4}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9}, done)

	// A dead target replica cannot lead: the first live one does.
	done, ok = completeReassignment(synced, func(id int32) bool { return id != 4 })
	require.True(t, ok)
	require.Equal(t, int32(2), done.Leader)

	// Cancelling drops the adding replicas from replicas and ISR.
	cancelled, err := cancelReassignment(synced, allLive)
	require.NoError(t, err)
	require.Equal(t, Partition{Replicas: []int32{2, 3, 1}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 4, PartitionEpoch: 9}, cancelled)

	// An adding replica that leads (preferred election) hands leadership back on cancel.
	led := synced
	led.Leader, led.LeaderEpoch = 4, 5
	cancelled, err = cancelReassignment(led, allLive)
	require.NoError(t, err)
	require.Equal(t, int32(2), cancelled.Leader)
	require.Equal(t, int32(6), cancelled.LeaderEpoch)

	// Without an original replica in sync there is nothing to revert to.
	lost := synced
	lost.ISR, lost.Leader = []int32{4}, 4
	_, err = cancelReassignment(lost, allLive)
	require.Error(t, err)

	// Nothing to complete without a reassignment.
	_, ok = completeReassignment(p, allLive)
	require.False(t, ok)
}

// TestElectOne checks the per-partition decisions of ElectLeaders.
func TestElectOne(t *testing.T) {
	p := Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 2, LeaderEpoch: 3, PartitionEpoch: 5}
	not := func(ids ...int32) func(int32) bool {
		return func(id int32) bool {
			for _, x := range ids {
				if x == id {
					return false
				}
			}
			return true
		}
	}
	for _, tc := range []struct {
		name   string
		p      Partition
		typ    ElectionType
		live   func(int32) bool
		err    *kerr.Error
		leader int32
		isr    []int32
	}{
		{"preferred", p, ElectPreferred, allLive, nil, 1, []int32{1, 2, 3}},
		{"preferred leads already", Partition{Replicas: []int32{1, 2}, ISR: []int32{1, 2}, Leader: 1}, ElectPreferred, allLive, kerr.ElectionNotNeeded, 0, nil},
		{"preferred dead", p, ElectPreferred, not(1), kerr.PreferredLeaderNotAvailable, 0, nil},
		{"preferred out of sync", Partition{Replicas: []int32{1, 2}, ISR: []int32{2}, Leader: 2}, ElectPreferred, allLive, kerr.PreferredLeaderNotAvailable, 0, nil},
		{"unclean with leader", p, ElectUnclean, allLive, kerr.ElectionNotNeeded, 0, nil},
		{"unclean picks in-sync first", Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}, Leader: -1}, ElectUnclean, not(1), nil, 3, []int32{3}},
		{"unclean out of sync", Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1}, Leader: -1}, ElectUnclean, not(1), nil, 2, []int32{2}},
		{"nobody", Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: -1}, ElectUnclean, not(1, 2), kerr.EligibleLeadersNotAvailable, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := electOne(tc.p, tc.typ, tc.live)
			if tc.err != nil {
				require.Equal(t, tc.err, err)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tc.leader, rec.Leader)
			require.Equal(t, tc.isr, rec.ISR)
			require.Equal(t, tc.p.LeaderEpoch+1, rec.LeaderEpoch)
			require.Equal(t, tc.p.PartitionEpoch+1, rec.PartitionEpoch)
		})
	}
}

// addToISR has the leader of topic-partition add id to its ISR, as it does once id caught up.
func addToISR(t *testing.T, q *Quorum, topic string, i int32, id int32) {
	t.Helper()
	tp := q.Image().Topic(topic)
	p := tp.Partitions[i]
	_, err := q.AlterPartition(context.Background(), tp.ID, i, p.Leader, p.LeaderEpoch, p.PartitionEpoch, append(p.ISR, id))
	require.NoError(t, err)
}

// TestReassignmentController runs reassignments through a controller: validation errors as Kafka's,
// a move that completes when the adding replica joins the ISR (leader leaving), an adding replica that
// never catches up and is cancelled, a reorder that completes at once, and unregistering a broker.
func TestReassignmentController(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.PreferredLeaderInterval = -1 })
	q := c.waitController(10 * time.Second)
	for id := int32(1); id <= 4; id++ {
		c.startBroker(id)
	}
	c.waitLive(5*time.Second, 1, 2, 3, 4)
	_, err := q.CreateTopic(ctx, "t", -1, -1, [][]int32{{1, 2, 3}, {1, 2, 3}, {2, 1, 3}}, nil)
	require.NoError(t, err)

	errs, err := q.AlterPartitionReassignments(ctx, []ReassignmentRequest{
		{Topic: "nope", Partition: 0, Replicas: []int32{1}},
		{Topic: "t", Partition: 9, Replicas: []int32{1}},
		{Topic: "t", Partition: 0, Replicas: []int32{}},
		{Topic: "t", Partition: 0, Replicas: []int32{1, 1, 2}},
		{Topic: "t", Partition: 0, Replicas: []int32{1, 2, 9}},
		{Topic: "t", Partition: 1, Replicas: nil},
	}, true)
	require.NoError(t, err)
	for i, want := range []*kerr.Error{kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.InvalidReplicaAssignment,
		kerr.InvalidReplicaAssignment, kerr.InvalidReplicaAssignment, kerr.NoReassignmentInProgress} {
		require.ErrorIs(t, errs[i], want, "request %d", i)
	}
	errs, err = q.AlterPartitionReassignments(ctx, []ReassignmentRequest{{Topic: "t", Partition: 0, Replicas: []int32{4, 2}}}, false)
	require.NoError(t, err)
	require.ErrorIs(t, errs[0], kerr.InvalidReplicationFactor)
	require.Empty(t, q.Image().Reassignments(nil), "bad requests changed nothing")

	// Move partition 0 off its leader 1 onto 4, and partition 1 from 3 to 4.
	errs, err = q.AlterPartitionReassignments(ctx, []ReassignmentRequest{
		{Topic: "t", Partition: 0, Replicas: []int32{4, 2, 3}},
		{Topic: "t", Partition: 1, Replicas: []int32{1, 2, 4}},
		{Topic: "t", Partition: 2, Replicas: []int32{1, 2, 3}}, // a reorder: done at once
	}, true)
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil, nil}, errs)
	img := q.Image()
	require.Equal(t, []Reassignment{
		{Topic: "t", Partition: 0, Replicas: []int32{4, 2, 3, 1}, Adding: []int32{4}, Removing: []int32{1}},
		{Topic: "t", Partition: 1, Replicas: []int32{1, 2, 4, 3}, Adding: []int32{4}, Removing: []int32{3}},
	}, img.Reassignments(nil))
	require.Equal(t, []Reassignment{{Topic: "t", Partition: 1, Replicas: []int32{1, 2, 4, 3}, Adding: []int32{4}, Removing: []int32{3}}},
		img.Reassignments(map[string][]int32{"t": {1, 2}}))
	require.Equal(t, []int32{1, 2, 3}, partitionOf(q, "t", 2).Replicas)

	// Partition 0's new replica catches up: the controller completes the move, and leadership
	// leaves broker 1.
	addToISR(t, q, "t", 0, 4)
	testutil.WaitFor(t, 5*time.Second, "reassignment of t-0 complete", func() bool { return !partitionOf(q, "t", 0).Reassigning() })
	p0 := partitionOf(q, "t", 0)
	require.Equal(t, []int32{4, 2, 3}, p0.Replicas)
	require.ElementsMatch(t, []int32{2, 3, 4}, p0.ISR)
	require.Equal(t, int32(4), p0.Leader)
	require.Equal(t, int32(1), p0.LeaderEpoch)

	// Partition 1's new replica never catches up: the reassignment stays listed until cancelled.
	require.Len(t, q.Image().Reassignments(nil), 1)
	errs, err = q.AlterPartitionReassignments(ctx, []ReassignmentRequest{{Topic: "t", Partition: 1}}, true)
	require.NoError(t, err)
	require.Equal(t, []error{nil}, errs)
	p1 := partitionOf(q, "t", 1)
	require.Equal(t, []int32{1, 2, 3}, p1.Replicas)
	require.False(t, p1.Reassigning())
	require.Empty(t, q.Image().Reassignments(nil))

	var kinds []EventType
	for _, e := range q.Image().Events {
		switch e.Type {
		case EventReassignmentStarted, EventReassignmentCompleted, EventReassignmentCancelled:
			kinds = append(kinds, e.Type)
		}
	}
	require.Equal(t, []EventType{EventReassignmentStarted, EventReassignmentStarted, EventReassignmentCompleted,
		EventReassignmentCompleted, EventReassignmentCancelled}, kinds)

	// Broker 1 still holds replicas and runs: it cannot be unregistered. Once drained and stopped
	// it can, and leaves no trace in the image.
	require.ErrorIs(t, q.UnregisterBroker(ctx, 1), kerr.InvalidRequest)
	require.ErrorIs(t, q.UnregisterBroker(ctx, 9), kerr.BrokerIDNotRegistered)
	errs, err = q.AlterPartitionReassignments(ctx, []ReassignmentRequest{
		{Topic: "t", Partition: 1, Replicas: []int32{4, 2, 3}},
		{Topic: "t", Partition: 2, Replicas: []int32{2, 4, 3}},
	}, true)
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, errs)
	addToISR(t, q, "t", 1, 4)
	addToISR(t, q, "t", 2, 4)
	testutil.WaitFor(t, 5*time.Second, "broker 1 drained", func() bool { _, _, ok := q.Image().hostedBy(1); return !ok })
	require.ErrorIs(t, q.UnregisterBroker(ctx, 1), kerr.InvalidRequest, "still running")
	c.stopBroker(1)
	testutil.WaitFor(t, 5*time.Second, "broker 1 fenced", func() bool { return !q.Image().Live(1) })
	require.NoError(t, q.UnregisterBroker(ctx, 1))
	_, ok := q.Image().Brokers[1]
	require.False(t, ok)
	for _, tp := range q.Image().Topics {
		for _, p := range tp.Partitions {
			require.NotContains(t, p.Replicas, int32(1))
			require.NotContains(t, p.ISR, int32(1))
		}
	}
}

// TestElectLeadersController checks preferred elections through the controller, and that with all
// partitions asked for, those that need none are left out.
func TestElectLeadersController(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.PreferredLeaderInterval = -1 })
	q := c.waitController(10 * time.Second)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(5*time.Second, 1, 2, 3)
	_, err := q.CreateTopic(ctx, "e", -1, -1, [][]int32{{1, 2, 3}, {2, 3, 1}}, nil)
	require.NoError(t, err)
	// Move leadership of e-0 away from its preferred replica by fencing broker 1.
	c.stopBroker(1)
	testutil.WaitFor(t, 5*time.Second, "e-0 led elsewhere", func() bool { return partitionOf(q, "e", 0).Leader != 1 })
	res, err := q.ElectLeaders(ctx, ElectPreferred, TopicPartitions{"e": {0, 1, 7}})
	require.NoError(t, err)
	require.Len(t, res, 3)
	require.ErrorIs(t, res[0].Err, kerr.PreferredLeaderNotAvailable)
	require.ErrorIs(t, res[1].Err, kerr.ElectionNotNeeded)
	require.ErrorIs(t, res[2].Err, kerr.UnknownTopicOrPartition)

	c.startBroker(1)
	c.waitLive(5*time.Second, 1, 2, 3)
	addToISR(t, q, "e", 0, 1)
	res, err = q.ElectLeaders(ctx, ElectPreferred, nil)
	require.NoError(t, err)
	require.Equal(t, []ElectionResult{{Topic: "e", Partition: 0}}, res)
	require.Equal(t, int32(1), partitionOf(q, "e", 0).Leader)
	res, err = q.ElectLeaders(ctx, ElectUnclean, TopicPartitions{"e": {0}})
	require.NoError(t, err)
	require.True(t, errors.Is(res[0].Err, kerr.ElectionNotNeeded))
}

// TestAutoBalanceNewBroker checks the controller's balancer: a broker that joins gets replicas,
// at most MaxMoves at a time, each move an event; a cordoned broker gets none and loses its own.
func TestAutoBalanceNewBroker(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	moved := map[string]int{}
	c := newCluster(t, 0, func(cfg *Config) {
		cfg.PreferredLeaderInterval = -1
		cfg.AutoBalance = AutoBalanceConfig{Interval: 200 * time.Millisecond, MaxMoves: 2, OnMoves: func(cause string, n int) {
			mu.Lock()
			moved[cause] += n
			mu.Unlock()
		}}
	})
	q := c.waitController(10 * time.Second)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(5*time.Second, 1, 2, 3)
	_, err := q.CreateTopic(ctx, "b", -1, -1, [][]int32{{1, 2}, {2, 3}, {3, 1}, {1, 2}, {2, 3}, {3, 1}}, nil)
	require.NoError(t, err)

	// Play the leaders: every adding replica catches up at once.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			img := q.Image()
			tp := img.Topic("b")
			for i, p := range tp.Partitions {
				for _, a := range p.AddingReplicas {
					if !slices.Contains(p.ISR, a) {
						q.AlterPartition(ctx, tp.ID, int32(i), p.Leader, p.LeaderEpoch, p.PartitionEpoch, append(slices.Clone(p.ISR), a))
						break
					}
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()

	maxInFlight := 0
	c.startBroker(4)
	testutil.WaitFor(t, 20*time.Second, "broker 4 holds its share", func() bool {
		img := q.Image()
		maxInFlight = max(maxInFlight, len(img.Reassignments(nil)))
		n := 0
		for _, p := range img.Topic("b").Partitions {
			if slices.Contains(p.Replicas, 4) && !p.Reassigning() {
				n++
			}
		}
		return n == 3
	})
	require.LessOrEqual(t, maxInFlight, 2)
	mu.Lock()
	require.GreaterOrEqual(t, moved[CauseBalance], 3)
	mu.Unlock()
	started := 0
	for _, e := range q.Image().Events {
		if e.Type == EventReassignmentStarted {
			started++
			require.Contains(t, e.Detail, "cause balance")
		}
	}
	require.GreaterOrEqual(t, started, 3)

	// Cordoning broker 4 moves everything off it.
	require.NoError(t, q.AlterBrokerConfigs(ctx, "4", map[string]string{CordonConfig: "*"}))
	testutil.WaitFor(t, 20*time.Second, "broker 4 drained", func() bool {
		_, _, hosted := q.Image().hostedBy(4)
		return !hosted
	})
	mu.Lock()
	require.GreaterOrEqual(t, moved[CauseDrain], 3)
	mu.Unlock()
	// New topics avoid the cordoned broker.
	tp, err := q.CreateTopic(ctx, "after", 8, 3, nil, nil)
	require.NoError(t, err)
	for _, p := range tp.Partitions {
		require.NotContains(t, p.Replicas, int32(4))
	}
}
