package metadata

import (
	"context"
	"log/slog"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// fencedEvents returns the broker fencings in q's event log.
func fencedEvents(q *Quorum) []Event {
	var out []Event
	for _, e := range q.Image().Events {
		if e.Type == EventBrokerFenced {
			out = append(out, e)
		}
	}
	return out
}

// TestConnectionClosedFences checks that a broker is fenced at once, long before its session ends,
// when the connection that carried its last heartbeat closes, and not when another connection does.
func TestConnectionClosedFences(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = time.Minute })
	q := c.waitController(10 * time.Second)
	epoch, err := q.RegisterBroker(ctx, Broker{ID: 7, Host: "h", Port: 9092, IncarnationID: [16]byte{1}})
	require.NoError(t, err)
	fenced, err := q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, AppliedIndex: uint64(epoch), Conn: 11})
	require.NoError(t, err)
	require.False(t, fenced)
	fenced, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, AppliedIndex: q.Image().Index, Conn: 12})
	require.NoError(t, err)
	require.False(t, fenced)

	q.ConnectionClosed(7, 11) // an older connection: the last heartbeat came on 12
	q.ConnectionClosed(8, 12) // another broker
	q.reconcile(ctx, false)
	require.True(t, q.Image().Live(7))

	q.ConnectionClosed(7, 12)
	testutil.WaitFor(t, 10*time.Second, "broker 7 fenced", func() bool { return !q.Image().Live(7) })
	ev := fencedEvents(q)
	require.Len(t, ev, 1)
	require.Equal(t, "controller connection closed", ev[0].Detail)

	// The broker's next heartbeat, on a new connection, unfences it; closing an in-process
	// heartbeat's connection (0) means nothing.
	fenced, err = q.Heartbeat(ctx, HeartbeatRequest{BrokerID: 7, BrokerEpoch: epoch, AppliedIndex: q.Image().Index})
	require.NoError(t, err)
	require.False(t, fenced)
	q.ConnectionClosed(7, 0)
	q.reconcile(ctx, false)
	require.True(t, q.Image().Live(7))
}

// TestSessionsStall checks that time the controller process was stalled is not counted against
// broker sessions, and that a lost session ends before its deadline.
func TestSessionsStall(t *testing.T) {
	s := newSessions()
	now := time.Now()
	s.renew(1, 5, now.Add(time.Second))
	s.renew(2, 6, now.Add(time.Second))
	reason, _ := s.expired(1, now.Add(1500*time.Millisecond), time.Second)
	require.Equal(t, "session expired", reason)
	s.shift(time.Second)
	reason, _ = s.expired(1, now.Add(1500*time.Millisecond), time.Second)
	require.Empty(t, reason, "the stall moved the deadline")
	require.True(t, s.connClosed(2, 6))
	reason, _ = s.expired(2, now, time.Second)
	require.Equal(t, "controller connection closed", reason)
	require.False(t, s.gone(1, "gone"), "a broker this controller heard from is not taken for gone")
}

// TestControllerProcessLoss stops the controller as a killed process looks to the others (its Raft
// and Kafka connections close, nothing listens at its addresses): a follower sees the leader gone
// and starts an election at once instead of after the Raft heartbeat timeout, and the new
// controller fences the old one at once instead of after its grace, which is minutes here.
func TestControllerProcessLoss(t *testing.T) {
	var c *cluster
	gone := func(_ context.Context, b Broker) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.nodes[b.ID] == nil
	}
	var logs testutil.Buffer
	c = newCluster(t, 3, func(cfg *Config) {
		cfg.SessionTimeout = 10 * time.Minute
		cfg.BrokerGone = gone
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil)).With("node", cfg.NodeID)
	})
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(time.Minute, 1, 2, 3)
	_, err := call(c, func(q *Quorum) (Topic, error) { return q.CreateTopic(context.Background(), "t", 3, 3, nil, nil) })
	require.NoError(t, err)

	old := c.controller()
	dead := old.cfg.NodeID
	for id := int32(1); id <= 3; id++ {
		q := c.node(id)
		testutil.WaitFor(t, 20*time.Second, "topic replicated", func() bool { return q.Image().Topic("t") != nil })
	}
	c.stopBroker(dead)
	c.stop(dead)
	killed := time.Now()
	var ctl *Quorum
	testutil.WaitFor(t, 30*time.Second, "a new controller", func() bool { ctl = c.controller(); return ctl != nil })
	t.Logf("new controller %d after %s", ctl.cfg.NodeID, time.Since(killed))
	require.Contains(t, logs.String(), "Raft leader is gone; starting an election now")
	testutil.WaitFor(t, 30*time.Second, "the old controller fenced", func() bool { return !ctl.Image().Live(dead) })
	t.Logf("old controller %d fenced after %s", dead, time.Since(killed))
	ev := fencedEvents(ctl)
	require.Len(t, ev, 1)
	require.Equal(t, "previous controller not listening", ev[0].Detail)
	for _, p := range ctl.Image().Topic("t").Partitions {
		require.NotEqual(t, dead, p.Leader)
		require.GreaterOrEqual(t, p.Leader, int32(0))
	}
}

// TestNoFalseFencingUnderCPUHog runs a three-voter quorum with the default timeouts while two CPU
// hogs (busy shell loops, the test's priority) keep both cores of the reference machine busy and the
// controller writes topics to the Raft log: no broker may be fenced.
func TestNoFalseFencingUnderCPUHog(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20 s load test")
	}
	for range 2 {
		hog := exec.Command("bash", "-c", "while :; do :; done")
		require.NoError(t, hog.Start())
		t.Cleanup(func() { hog.Process.Kill(); hog.Wait() })
	}
	c := newCluster(t, 3, func(cfg *Config) { cfg.SessionTimeout = 0 }) // the defaults
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(time.Minute, 1, 2, 3)
	end := time.Now().Add(20 * time.Second)
	topics := 0
	for time.Now().Before(end) {
		_, err := call(c, func(q *Quorum) (Topic, error) {
			return q.CreateTopic(context.Background(), "t"+strconv.Itoa(topics), 6, 3, nil, nil)
		})
		require.NoError(t, err)
		topics++
	}
	q := c.waitController(time.Minute)
	t.Logf("%d topics created under load", topics)
	require.Empty(t, fencedEvents(q), "brokers fenced under load")
	for id := int32(1); id <= 3; id++ {
		require.True(t, q.Image().Live(id), "broker %d", id)
	}
}
