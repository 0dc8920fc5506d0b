package group

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestPartitionForMatchesKafka(t *testing.T) {
	// Expected values are Java's "s".hashCode(), Utils.abs, % 50.
	for _, tc := range []struct {
		group string
		want  int32
	}{
		{"hello", 22},                 // hashCode 99162322
		{"polygenelubricants", 0},     // hashCode Integer.MIN_VALUE
		{"é", 33},                     // 233
		{"\U0001F600", 49},            // surrogate pair: 55357*31+56832
		{"", 0},                       // 0
		{"console-consumer-12345", 6}, // 158455506
	} {
		require.Equal(t, tc.want, partitionFor(tc.group, 50), tc.group)
	}
}

func TestJoinSyncHeartbeatSingleMember(t *testing.T) {
	for _, v := range []int16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			c := startCoordinator(t, testConfig(), newMemStore())
			ctx = WithClientInfo(ctx, "client-a", "/10.0.0.1")

			resp := recv(t, joinFull(ctx, t, c, "g", joinOpts{version: v}))
			require.Zero(t, resp.ErrorCode)
			require.Equal(t, int32(1), resp.Generation)
			require.Equal(t, resp.MemberID, resp.LeaderID)
			require.True(t, strings.HasPrefix(resp.MemberID, "client-a-"), resp.MemberID)
			require.Equal(t, "range", *resp.Protocol)
			if v >= 7 {
				require.Equal(t, "consumer", *resp.ProtocolType)
			}
			require.Len(t, resp.Members, 1)
			require.Equal(t, consumerMeta("t1"), resp.Members[0].ProtocolMetadata)

			sync := recv(t, syncAsync(ctx, c, "g", resp.MemberID, 1, min(v, 5), map[string][]byte{resp.MemberID: []byte("a")}))
			require.Zero(t, sync.ErrorCode)
			require.Equal(t, []byte("a"), sync.MemberAssignment)
			require.Zero(t, heartbeat(ctx, c, "g", resp.MemberID, 1))

			d := describe(ctx, t, c, "g")
			require.Equal(t, "Stable", d.State)
			require.Equal(t, "range", d.Protocol)
			require.Len(t, d.Members, 1)
			require.Equal(t, "client-a", d.Members[0].ClientID)
			require.Equal(t, "/10.0.0.1", d.Members[0].ClientHost)
			require.Equal(t, []byte("a"), d.Members[0].MemberAssignment)
		})
	}
}

func TestThreeMembersJoinOneGeneration(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	var chans []<-chan *kmsg.JoinGroupResponse
	for range 3 {
		chans = append(chans, joinFull(ctx, t, c, "g", joinOpts{version: 9}))
	}
	var leader string
	followers := 0
	for _, ch := range chans {
		r := recv(t, ch)
		require.Zero(t, r.ErrorCode)
		require.Equal(t, int32(1), r.Generation)
		if r.MemberID == r.LeaderID {
			leader = r.MemberID
			require.Len(t, r.Members, 3)
		} else {
			followers++
			require.Empty(t, r.Members)
		}
	}
	require.Equal(t, 2, followers)
	d := describe(ctx, t, c, "g")
	require.Equal(t, "CompletingRebalance", d.State)
	require.Empty(t, d.Protocol, "no protocol until stable")

	ids, gen := []string{}, int32(1)
	for _, m := range d.Members {
		ids = append(ids, m.MemberID)
	}
	// Followers block until the leader syncs.
	var followerSyncs []<-chan *kmsg.SyncGroupResponse
	for _, id := range ids {
		if id != leader {
			followerSyncs = append(followerSyncs, syncAsync(ctx, c, "g", id, gen, 3, nil))
		}
	}
	for _, ch := range followerSyncs {
		select {
		case <-ch:
			t.Fatal("follower sync answered before the leader's")
		case <-time.After(20 * time.Millisecond):
		}
	}
	// Heartbeats during CompletingRebalance are fine.
	require.Zero(t, heartbeat(ctx, c, "g", leader, gen))
	assign := map[string][]byte{}
	for _, id := range ids {
		assign[id] = []byte(id)
	}
	require.Zero(t, recv(t, syncAsync(ctx, c, "g", leader, gen, 3, assign)).ErrorCode)
	for _, ch := range followerSyncs {
		r := recv(t, ch)
		require.Zero(t, r.ErrorCode)
		require.Contains(t, ids, string(r.MemberAssignment))
	}
	require.Equal(t, "Stable", describe(ctx, t, c, "g").State)
}

func TestMemberLeaveRebalancesTheRest(t *testing.T) {
	for _, v := range []int16{0, 3, 5} {
		t.Run(fmt.Sprintf("leave v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			c := startCoordinator(t, delayConfig(), newMemStore())
			ids, gen := stableGroup(ctx, t, c, "g", 3, joinOpts{})

			leave := kmsg.NewPtrLeaveGroupRequest()
			leave.Version, leave.Group = v, "g"
			if v < 3 {
				leave.MemberID = ids[2]
			} else {
				leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: ids[2]}, {MemberID: "nobody"}}
			}
			resp := c.LeaveGroup(ctx, leave)
			require.Zero(t, resp.ErrorCode)
			if v >= 3 {
				require.Len(t, resp.Members, 2)
				require.Zero(t, resp.Members[0].ErrorCode)
				require.Equal(t, kerr.UnknownMemberID.Code, resp.Members[1].ErrorCode)
			}

			for _, id := range ids[:2] {
				require.Equal(t, kerr.RebalanceInProgress.Code, heartbeat(ctx, c, "g", id, gen))
			}
			require.Equal(t, kerr.UnknownMemberID.Code, heartbeat(ctx, c, "g", ids[2], gen))
			j1 := joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[0]})
			j2 := joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[1]})
			r1, r2 := recv(t, j1), recv(t, j2)
			require.Zero(t, r1.ErrorCode)
			require.Zero(t, r2.ErrorCode)
			require.Equal(t, gen+1, r1.Generation)
			require.Equal(t, gen+1, r2.Generation)
			require.Len(t, r1.Members, 2, "leader learns the remaining members")
		})
	}
}

func TestSessionExpiryRemovesMember(t *testing.T) {
	// In a synctest bubble the session and rebalance timeouts run on the bubble's clock: the
	// test cannot flake on a busy machine and takes no real time.
	synctest.Test(t, func(t *testing.T) {
		ctx := testCtx(t)
		c := startCoordinator(t, delayConfig(), newMemStore())
		ids, gen := stableGroup(ctx, t, c, "g", 2, joinOpts{session: 100 * time.Millisecond})
		alive, silent := ids[0], ids[1]

		// Only one member keeps heartbeating; the other's session expires and
		// the group rebalances without it.
		testutil.WaitFor(t, 5*time.Second, "the dead member to be removed (a rebalance)", func() bool {
			code := heartbeat(ctx, c, "g", alive, gen)
			require.Contains(t, []int16{0, kerr.RebalanceInProgress.Code}, code)
			return code == kerr.RebalanceInProgress.Code
		})
		r := recv(t, joinAsync(ctx, c, "g", joinOpts{version: 5, member: alive, session: 100 * time.Millisecond}))
		require.Zero(t, r.ErrorCode)
		require.Equal(t, gen+1, r.Generation)
		require.Len(t, r.Members, 1)
		require.Equal(t, kerr.UnknownMemberID.Code, heartbeat(ctx, c, "g", silent, gen))

		// When the last member goes silent too, the group ends up Empty with a
		// new generation written to the store.
		testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c, "g").State == "Empty"`, func() bool { return describe(ctx, t, c, "g").State == "Empty" })
	})
}

func TestRebalanceTimeoutRemovesMembersThatDoNotRejoin(t *testing.T) {
	// In a synctest bubble the session and rebalance timeouts run on the bubble's clock: the
	// test cannot flake on a busy machine and takes no real time.
	synctest.Test(t, func(t *testing.T) {
		ctx := testCtx(t)
		c := startCoordinator(t, delayConfig(), newMemStore())
		o := joinOpts{rebalance: 150 * time.Millisecond}
		ids, gen := stableGroup(ctx, t, c, "g", 2, o)

		// The leader rejoins, which forces a rebalance; the follower keeps
		// heartbeating but never rejoins.
		o.version, o.member = 5, ids[0]
		j := joinAsync(ctx, c, "g", o)
		testutil.WaitFor(t, 5*time.Second, `heartbeat(ctx, c, "g", ids[1], gen) == kerr.RebalanceInProgress.Code`, func() bool { return heartbeat(ctx, c, "g", ids[1], gen) == kerr.RebalanceInProgress.Code })
		r := recv(t, j)
		require.Zero(t, r.ErrorCode)
		require.Equal(t, gen+1, r.Generation)
		require.Len(t, r.Members, 1)
		require.Equal(t, kerr.UnknownMemberID.Code, heartbeat(ctx, c, "g", ids[1], gen))
	})
}

func TestSyncTimeoutRemovesMembersThatDoNotSync(t *testing.T) {
	// Timers run on the synctest bubble's clock: no flake on a busy machine.
	synctest.Test(t, func(t *testing.T) {
		ctx := testCtx(t)
		c := startCoordinator(t, delayConfig(), newMemStore())
		o := joinOpts{version: 5, rebalance: 100 * time.Millisecond}
		a, b := joinFull(ctx, t, c, "g", o), joinFull(ctx, t, c, "g", o)
		require.Zero(t, recv(t, a).ErrorCode)
		require.Zero(t, recv(t, b).ErrorCode)
		// Nobody syncs, not even the leader: after the rebalance timeout both
		// are dropped and the group empties instead of hanging in
		// CompletingRebalance.
		testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c, "g").State == "Empty"`, func() bool { return describe(ctx, t, c, "g").State == "Empty" })
	})
}

func TestStaticMemberRejoinWithoutRebalance(t *testing.T) {
	for _, v := range []int16{5, 9} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			c := startCoordinator(t, delayConfig(), newMemStore())
			s := joinFull(ctx, t, c, "g", joinOpts{version: v, instance: "i1"})
			// The static member joins first so that it leads.
			testutil.WaitFor(t, 5*time.Second, `len(describe(ctx, t, c, "g").Members) == 1`, func() bool { return len(describe(ctx, t, c, "g").Members) == 1 })
			d := joinFull(ctx, t, c, "g", joinOpts{version: v})
			rs, rd := recv(t, s), recv(t, d)
			require.Zero(t, rs.ErrorCode)
			require.Zero(t, rd.ErrorCode)
			gen := rs.Generation
			leader := rs.LeaderID
			assign := map[string][]byte{rs.MemberID: []byte("s"), rd.MemberID: []byte("d")}
			follower := rd.MemberID
			if leader == rd.MemberID {
				follower = rs.MemberID
			}
			syncF := syncAsync(ctx, c, "g", follower, gen, 5, nil)
			require.Zero(t, recv(t, syncAsync(ctx, c, "g", leader, gen, 5, assign)).ErrorCode)
			require.Zero(t, recv(t, syncF).ErrorCode)

			// The static member restarts: same instance id, no member id.
			r := recv(t, joinAsync(ctx, c, "g", joinOpts{version: v, instance: "i1"}))
			require.Zero(t, r.ErrorCode)
			require.Equal(t, gen, r.Generation, "no new generation")
			require.NotEqual(t, rs.MemberID, r.MemberID)
			require.Equal(t, rs.MemberID, leader)
			if v >= 9 {
				require.Equal(t, r.MemberID, r.LeaderID)
				require.True(t, r.SkipAssignment)
				require.Len(t, r.Members, 2)
			} else {
				require.Equal(t, rs.MemberID, r.LeaderID, "old clients must not reassign")
				require.Empty(t, r.Members)
			}
			require.Equal(t, "Stable", describe(ctx, t, c, "g").State)
			require.Zero(t, heartbeat(ctx, c, "g", rd.MemberID, gen), "the other member sees no rebalance")

			sync := recv(t, syncAsync(ctx, c, "g", r.MemberID, gen, 5, nil))
			require.Zero(t, sync.ErrorCode)
			require.Equal(t, []byte("s"), sync.MemberAssignment, "assignment kept")

			// The old incarnation is fenced.
			hb := kmsg.NewPtrHeartbeatRequest()
			hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 3, "g", rs.MemberID, gen, kmsg.StringPtr("i1")
			require.Equal(t, kerr.FencedInstanceID.Code, c.Heartbeat(ctx, hb).ErrorCode)

			// Rejoining with a different subscription does rebalance.
			j := joinAsync(ctx, c, "g", joinOpts{version: v, instance: "i1",
				protocols: []protocol{{name: "range", metadata: consumerMeta("t1", "t2")}}})
			testutil.WaitFor(t, 5*time.Second, "the rebalance to reach the other member", func() bool {
				return heartbeat(ctx, c, "g", rd.MemberID, gen) == kerr.RebalanceInProgress.Code
			})
			rj := recv(t, joinAsync(ctx, c, "g", joinOpts{version: v, member: rd.MemberID}))
			require.Zero(t, rj.ErrorCode)
			require.Equal(t, gen+1, rj.Generation)
			require.Equal(t, gen+1, recv(t, j).Generation)
		})
	}
}

func TestProtocolSelectionAndMismatch(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	p := func(names ...string) []protocol {
		var ps []protocol
		for _, n := range names {
			ps = append(ps, protocol{name: n, metadata: []byte(n)})
		}
		return ps
	}
	// Only "roundrobin" is common to all three, although "range" is the
	// most preferred.
	var chans []<-chan *kmsg.JoinGroupResponse
	for _, ps := range [][]protocol{p("range", "roundrobin"), p("range", "roundrobin"), p("roundrobin", "sticky")} {
		chans = append(chans, joinFull(ctx, t, c, "g", joinOpts{version: 5, protocols: ps}))
	}
	for _, ch := range chans {
		r := recv(t, ch)
		require.Zero(t, r.ErrorCode)
		require.Equal(t, "roundrobin", *r.Protocol)
	}

	for name, o := range map[string]joinOpts{
		"no common protocol":    {version: 5, protocols: p("sticky")},
		"other protocol type":   {version: 5, ptype: "connect", protocols: p("roundrobin")},
		"empty protocols, new":  {version: 5, protocols: []protocol{}},
		"v0 no common protocol": {version: 0, protocols: p("cooperative-sticky")},
	} {
		group := "g"
		if strings.Contains(name, "new") {
			group = "fresh"
		}
		r := c.JoinGroup(ctx, o.request(group))
		require.Equal(t, kerr.InconsistentGroupProtocol.Code, r.ErrorCode, name)
		require.Equal(t, int32(-1), r.Generation, name)
	}

	// Votes decide between common protocols.
	c2 := startCoordinator(t, delayConfig(), newMemStore())
	chans = nil
	for _, ps := range [][]protocol{p("sticky", "range"), p("range", "sticky"), p("range", "sticky")} {
		chans = append(chans, joinFull(ctx, t, c2, "g", joinOpts{version: 9, protocols: ps}))
	}
	for _, ch := range chans {
		require.Equal(t, "range", *recv(t, ch).Protocol)
	}
}

func TestJoinAndHeartbeatErrors(t *testing.T) {
	ctx := testCtx(t)
	cfg := delayConfig()
	cfg.MinSessionTimeout = 50 * time.Millisecond
	cfg.MaxSessionTimeout = time.Minute
	cfg.MaxGroupSize = 2
	c := startCoordinator(t, cfg, newMemStore())
	ids, gen := stableGroup(ctx, t, c, "g", 2, joinOpts{})

	for _, tc := range []struct {
		name  string
		group string
		o     joinOpts
		want  int16
	}{
		{"session too short", "g", joinOpts{version: 5, session: 10 * time.Millisecond}, kerr.InvalidSessionTimeout.Code},
		{"session too long", "g", joinOpts{version: 5, session: 2 * time.Minute}, kerr.InvalidSessionTimeout.Code},
		{"unknown member of unknown group", "nope", joinOpts{version: 5, member: "m"}, kerr.UnknownMemberID.Code},
		// Kafka checks the group size before the member id.
		{"unknown member of a full group", "g", joinOpts{version: 5, member: "m"}, kerr.GroupMaxSizeReached.Code},
		{"group full", "g", joinOpts{version: 3}, kerr.GroupMaxSizeReached.Code},
		{"empty group id", "", joinOpts{version: 5}, kerr.InvalidGroupID.Code},
		{"unknown static member id", "g", joinOpts{version: 5, member: ids[0], instance: "x"}, kerr.UnknownMemberID.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.JoinGroup(ctx, tc.o.request(tc.group))
			require.Equal(t, tc.want, r.ErrorCode)
		})
	}
	require.Equal(t, kerr.IllegalGeneration.Code, heartbeat(ctx, c, "g", ids[0], gen+1))
	require.Equal(t, kerr.UnknownMemberID.Code, heartbeat(ctx, c, "g", "nobody", gen))
	require.Equal(t, kerr.UnknownMemberID.Code, heartbeat(ctx, c, "nope", "nobody", gen))
	require.Equal(t, kerr.IllegalGeneration.Code, recv(t, syncAsync(ctx, c, "g", ids[0], gen-1, 5, nil)).ErrorCode)

	sg := kmsg.NewPtrSyncGroupRequest()
	sg.Version, sg.Group, sg.MemberID, sg.Generation = 5, "g", ids[0], gen
	sg.Protocol = kmsg.StringPtr("roundrobin")
	require.Equal(t, kerr.InconsistentGroupProtocol.Code, c.SyncGroup(ctx, sg).ErrorCode)
}

func TestNotCoordinatorAndLoading(t *testing.T) {
	ctx := testCtx(t)
	store := newMemStore()
	c := New(testConfig(), store, nil)
	p := c.PartitionFor("g")
	require.False(t, c.IsCoordinator("g"))
	require.Equal(t, kerr.NotCoordinator.Code, c.JoinGroup(ctx, joinOpts{version: 5}.request("g")).ErrorCode)

	gate := make(chan struct{})
	store.loadGate = gate
	loaded := make(chan error, 1)
	go func() { loaded <- c.LoadPartition(ctx, p) }()
	testutil.WaitFor(t, 5*time.Second, `c.IsCoordinator("g")`, func() bool { return c.IsCoordinator("g") })
	require.Equal(t, kerr.CoordinatorLoadInProgress.Code, c.JoinGroup(ctx, joinOpts{version: 5}.request("g")).ErrorCode)
	lg := kmsg.NewPtrListGroupsRequest()
	require.Equal(t, kerr.CoordinatorLoadInProgress.Code, c.ListGroups(ctx, lg).ErrorCode)
	close(gate)
	require.NoError(t, <-loaded)
	require.Equal(t, kerr.MemberIDRequired.Code, c.JoinGroup(ctx, joinOpts{version: 5}.request("g")).ErrorCode)
	c.Close()
	require.False(t, c.IsCoordinator("g"))
}

func TestUnloadReleasesBlockedRequests(t *testing.T) {
	ctx := testCtx(t)
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour // the join can only end by unloading
	c := startCoordinator(t, cfg, newMemStore())
	j := joinAsync(ctx, c, "g", joinOpts{version: 3})
	testutil.WaitFor(t, 5*time.Second, `describe(ctx, t, c, "g").State == "PreparingRebalance"`, func() bool { return describe(ctx, t, c, "g").State == "PreparingRebalance" })
	c.UnloadPartition(c.PartitionFor("g"))
	require.Equal(t, kerr.NotCoordinator.Code, recv(t, j).ErrorCode)
	require.False(t, c.IsCoordinator("g"))
}

func TestJoinReturnsWhenContextEnds(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour
	c := startCoordinator(t, cfg, newMemStore())
	ctx, cancel := context.WithCancel(context.Background())
	j := joinAsync(ctx, c, "g", joinOpts{version: 3})
	cancel()
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, recv(t, j).ErrorCode)
}

func TestAdminRemovesStaticMemberByInstanceID(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	s := recv(t, joinFull(ctx, t, c, "g", joinOpts{version: 5, instance: "i1"}))
	require.Zero(t, s.ErrorCode)
	require.Zero(t, recv(t, syncAsync(ctx, c, "g", s.MemberID, s.Generation, 3, nil)).ErrorCode)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Version, leave.Group = 4, "g"
	leave.Members = []kmsg.LeaveGroupRequestMember{
		{MemberID: "someone-else", InstanceID: kmsg.StringPtr("i1")}, // fenced
		{InstanceID: kmsg.StringPtr("i1")},                           // the admin form
		{InstanceID: kmsg.StringPtr("i2")},
	}
	resp := c.LeaveGroup(ctx, leave)
	require.Zero(t, resp.ErrorCode)
	require.Equal(t, []int16{kerr.FencedInstanceID.Code, 0, kerr.UnknownMemberID.Code},
		[]int16{resp.Members[0].ErrorCode, resp.Members[1].ErrorCode, resp.Members[2].ErrorCode})
	require.Equal(t, "Empty", describe(ctx, t, c, "g").State)
}

func TestFollowerRejoinInStableGroupKeepsGeneration(t *testing.T) {
	ctx := testCtx(t)
	c := startCoordinator(t, delayConfig(), newMemStore())
	ids, gen := stableGroup(ctx, t, c, "g", 2, joinOpts{version: 1})
	// A follower that lost its join response joins again with the same
	// metadata: it gets the current generation back, nothing rebalances.
	r := recv(t, joinAsync(ctx, c, "g", joinOpts{version: 1, member: ids[1]}))
	require.Zero(t, r.ErrorCode)
	require.Equal(t, gen, r.Generation)
	require.Equal(t, ids[0], r.LeaderID)
	require.Empty(t, r.Members)
	require.Equal(t, "Stable", describe(ctx, t, c, "g").State)
}

func TestPendingMemberIDExpires(t *testing.T) {
	// Timers run on the synctest bubble's clock: no flake on a busy machine.
	synctest.Test(t, func(t *testing.T) {
		ctx := testCtx(t)
		c := startCoordinator(t, delayConfig(), newMemStore())
		ids, gen := stableGroup(ctx, t, c, "g", 1, joinOpts{})
		// A v4+ member is handed an id but never comes back: the rebalance it
		// caused must not wait for it beyond its session.
		o := joinOpts{version: 5, session: 50 * time.Millisecond}
		require.Equal(t, kerr.MemberIDRequired.Code, c.JoinGroup(ctx, o.request("g")).ErrorCode)
		r := recv(t, joinAsync(ctx, c, "g", joinOpts{version: 5, member: ids[0]}))
		require.Zero(t, r.ErrorCode)
		require.Equal(t, gen+1, r.Generation)
		require.Len(t, r.Members, 1)
	})
}
