package metadata

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestObserversAndDynamicQuorum starts three voters, lets two nodes without a node id get ids from the
// controller and follow the log as observers, restarts one keeping its id, promotes one to a voter and
// demotes it again, and reads the quorum as DescribeQuorum does.
func TestObserversAndDynamicQuorum(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3, nil)
	for id := int32(1); id <= 3; id++ {
		c.startBroker(id)
	}
	c.waitLive(20*time.Second, 1, 2, 3)
	var bootstrap []string
	for _, v := range c.nodes[1].cfg.Voters {
		bootstrap = append(bootstrap, v.Addr)
	}
	jc := JoinClient{Bootstrap: bootstrap}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	var observers []int32
	for i := range 2 {
		id, err := jc.AllocateNodeID(jctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, id, int32(FirstAllocatedNodeID))
		require.NotContains(t, observers, id, "node ids are unique")
		observers = append(observers, id)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		// The second has the controller role and may become a voter.
		c.start(Config{NodeID: id, Bootstrap: bootstrap, Listener: l, Dir: t.TempDir(), Logger: testLogger(t), SessionTimeout: time.Second, ControllerRole: i == 1})
		c.startBroker(id)
	}
	c.waitLive(20*time.Second, 1, 2, 3, observers[0], observers[1])
	ctl := c.waitController(10 * time.Second)
	voters, obs, err := ctl.Members()
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3}, voters)
	require.Equal(t, observers, obs)
	img := ctl.Image()
	for _, id := range observers {
		owner, ok := img.NodePrincipal(id)
		require.True(t, ok)
		require.Empty(t, owner)
	}

	// An observer applies the log like a voter.
	_, err = call(c, func(q *Quorum) (Topic, error) { return q.CreateTopic(ctx, "after-join", 5, 3, nil, nil) })
	require.NoError(t, err)
	for _, id := range observers {
		q := c.node(id)
		testutil.WaitFor(t, 10*time.Second, "observer applied the topic", func() bool { return q.Image().Topic("after-join") != nil })
	}

	// An observer restarts from its own log and keeps following.
	cfg := c.stop(observers[0])
	c.start(cfg)
	_, err = call(c, func(q *Quorum) (Topic, error) { return q.CreateTopic(ctx, "after-restart", 1, 3, nil, nil) })
	require.NoError(t, err)
	q := c.node(observers[0])
	testutil.WaitFor(t, 10*time.Second, "restarted observer applied the topic", func() bool { return q.Image().Topic("after-restart") != nil })
	require.Equal(t, observers[0], cfg.NodeID)

	st, err := call(c, func(q *Quorum) (QuorumState, error) { return q.DescribeQuorum() })
	require.NoError(t, err)
	require.Len(t, st.Voters, 3)
	require.Len(t, st.Observers, 2)
	require.Positive(t, st.HighWatermark)
	require.Positive(t, st.LeaderEpoch)
	testutil.WaitFor(t, 10*time.Second, "observers report their progress", func() bool {
		st, err := call(c, func(q *Quorum) (QuorumState, error) { return q.DescribeQuorum() })
		if err != nil {
			return false
		}
		for _, m := range append(st.Voters, st.Observers...) {
			if m.LogEndOffset <= 0 || m.LastFetch.IsZero() || m.LastCaughtUp.IsZero() {
				return false
			}
		}
		return true
	})

	// Dynamic quorum: promote an observer, refuse to go below three voters, demote it again. A
	// broker-only observer cannot be promoted.
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.AddController(ctx, observers[0]) })
	require.ErrorIs(t, err, kerr.InvalidRequest)
	require.ErrorContains(t, err, "broker-only")
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.AddController(ctx, observers[1]) })
	require.NoError(t, err)
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.AddController(ctx, observers[1]) })
	require.ErrorIs(t, err, kerr.DuplicateVoter)
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.AddController(ctx, 77) })
	require.ErrorIs(t, err, kerr.InvalidRequest, "a node that does not follow the log cannot become a voter")
	voters, _, err = c.waitController(10 * time.Second).Members()
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3, observers[1]}, voters)

	// Asked to remove itself, the controller hands leadership over instead and answers
	// NOT_CONTROLLER; nothing else changes.
	ctl = c.waitController(10 * time.Second)
	self := ctl.cfg.NodeID
	require.ErrorIs(t, ctl.RemoveController(ctx, self), kerr.NotController)
	testutil.WaitFor(t, 10*time.Second, "another controller", func() bool {
		q := c.controller()
		return q != nil && q.cfg.NodeID != self
	})
	voters, _, err = c.waitController(10 * time.Second).Members()
	require.NoError(t, err)
	require.Len(t, voters, 4)

	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.RemoveController(ctx, observers[1]) })
	require.NoError(t, err)
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.RemoveController(ctx, 2) })
	require.ErrorIs(t, err, kerr.InvalidRequest, "three voters are the least")
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.RemoveController(ctx, observers[0]) })
	require.ErrorIs(t, err, kerr.VoterNotFound)
	testutil.WaitFor(t, 10*time.Second, "demoted voter is an observer", func() bool {
		voters, obs, err := c.waitController(10 * time.Second).Members()
		return err == nil && len(voters) == 3 && len(obs) == 2
	})
	// An observer taken out of the configuration joins again when it restarts.
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.RemoveObserver(ctx, observers[0]) })
	require.NoError(t, err)
	_, err = call(c, func(q *Quorum) (struct{}, error) { return struct{}{}, q.RemoveObserver(ctx, 1) })
	require.ErrorIs(t, err, kerr.InvalidRequest, "voters are removed with RemoveController")
	_, obs, err = c.waitController(10 * time.Second).Members()
	require.NoError(t, err)
	require.Equal(t, []int32{observers[1]}, obs)
	c.start(c.stop(observers[0]))
	testutil.WaitFor(t, 10*time.Second, "removed observer joined again", func() bool {
		_, obs, err := c.waitController(10 * time.Second).Members()
		return err == nil && len(obs) == 2
	})
	_, err = call(c, func(q *Quorum) (Topic, error) { return q.CreateTopic(ctx, "after-rejoin", 1, 3, nil, nil) })
	require.NoError(t, err)
	q = c.node(observers[0])
	testutil.WaitFor(t, 10*time.Second, "rejoined observer applies the log", func() bool { return q.Image().Topic("after-rejoin") != nil })

	evs := map[EventType]int{}
	for _, e := range c.waitController(10 * time.Second).Image().Events {
		evs[e.Type]++
	}
	require.Equal(t, 2, evs[EventNodeIDAllocated])
	require.Equal(t, 3, evs[EventObserverJoined])
	require.Equal(t, 1, evs[EventControllerAdded])
	require.Equal(t, 1, evs[EventControllerRemoved])
}

// TestJoinRefusals keeps the attacks on the join protocol: taking a voter's id, another principal's
// allocated id, an unknown id with a principal, and malformed or oversized requests. None changes the
// quorum.
func TestJoinRefusals(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 3, func(cfg *Config) { cfg.NodePrincipals = map[int32]string{1: "User:b1", 2: "User:b2", 3: "User:b3"} })
	c.waitController(20 * time.Second)
	var bootstrap []string
	for _, v := range c.nodes[1].cfg.Voters {
		bootstrap = append(bootstrap, v.Addr)
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	jc := JoinClient{Bootstrap: bootstrap}

	// A voter's id joined from another address would redirect the voter's Raft traffic.
	err := jc.Join(jctx, 2, "127.0.0.1:1", true)
	require.ErrorIs(t, err, kerr.InvalidRequest)

	id, err := call(c, func(q *Quorum) (int32, error) { return q.AllocateNodeID(ctx, "User:owner") })
	require.NoError(t, err)
	_, err = call(c, func(q *Quorum) (struct{}, error) {
		return struct{}{}, q.AddObserver(ctx, id, "127.0.0.1:1", "User:thief", false)
	})
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
	_, err = call(c, func(q *Quorum) (struct{}, error) {
		return struct{}{}, q.AddObserver(ctx, 2, "127.0.0.1:1", "User:b1", false)
	})
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed, "broker 1's principal may not act as node 2")
	_, err = call(c, func(q *Quorum) (struct{}, error) {
		return struct{}{}, q.AddObserver(ctx, 5000, "127.0.0.1:1", "User:client", false)
	})
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed, "an id nobody allocated")
	// Over the wire: a bad op, a negative id, a bad address.
	require.ErrorIs(t, jc.Join(jctx, -3, "127.0.0.1:1", false), kerr.InvalidRequest)
	require.ErrorIs(t, jc.Join(jctx, 1500, "no-port", false), kerr.InvalidRequest)
	_, err = jc.call(jctx, joinRequest{Op: "become_leader", NodeID: 9})
	require.ErrorIs(t, err, kerr.InvalidRequest)

	// Garbage and a huge length prefix: the controller closes the connection and carries on.
	for _, payload := range [][]byte{
		append([]byte{joinMagic}, binary.BigEndian.AppendUint32(nil, 1<<30)...),
		append(append([]byte{joinMagic}, binary.BigEndian.AppendUint32(nil, 5)...), []byte("{{{{{")...),
		append(append([]byte{joinMagic}, binary.BigEndian.AppendUint32(nil, 2)...), []byte(`{"op":"join","extra":1}`)...),
	} {
		for _, addr := range bootstrap {
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			require.NoError(t, err)
			nc.SetDeadline(time.Now().Add(15 * time.Second))
			_, err = nc.Write(payload)
			require.NoError(t, err)
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(nc) // ends when the node closes the connection
			nc.Close()
		}
	}
	ctl := c.waitController(10 * time.Second)
	voters, obs, err := ctl.Members()
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 3}, voters)
	require.Empty(t, obs)
	_, err = call(c, func(q *Quorum) (int64, error) { s, _, err := q.AllocateProducerIDs(ctx); return s, err })
	require.NoError(t, err, "the quorum still decides")
	_, ok := ctl.Image().NodePrincipal(5000)
	require.False(t, ok)
}
