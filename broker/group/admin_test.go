package group

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestListAndDescribeWithFilters(t *testing.T) {
	ctx := testCtx(t)
	cfg := delayConfig()
	c := startCoordinator(t, cfg, newMemStore())
	stableGroup(ctx, t, c, "stable", 1, joinOpts{})
	requireCommit(t, c, "simple", commitOpts{version: 7, gen: -1}, map[string]map[int32]int64{"t": {0: 1}}, 0)
	r := recv(t, joinFull(ctx, t, c, "completing", joinOpts{version: 5}))
	require.Zero(t, r.ErrorCode)

	list := func(version int16, states, types []string) map[string]kmsg.ListGroupsResponseGroup {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version, req.StatesFilter, req.TypesFilter = version, states, types
		resp := c.ListGroups(ctx, req)
		require.Zero(t, resp.ErrorCode)
		out := map[string]kmsg.ListGroupsResponseGroup{}
		for _, g := range resp.Groups {
			out[g.Group] = g
		}
		return out
	}
	all := list(0, nil, nil)
	require.Len(t, all, 3)
	require.Equal(t, "consumer", all["stable"].ProtocolType)
	require.Equal(t, "", all["simple"].ProtocolType)

	for _, tc := range []struct {
		name    string
		version int16
		states  []string
		types   []string
		want    []string
	}{
		{"state filter", 4, []string{"stable"}, nil, []string{"stable"}},
		{"two states", 4, []string{"Empty", "CompletingRebalance"}, nil, []string{"simple", "completing"}},
		{"states ignored before v4", 3, []string{"Stable"}, nil, []string{"stable", "simple", "completing"}},
		{"classic type", 5, nil, []string{"Classic"}, []string{"stable", "simple", "completing"}},
		{"consumer type", 5, nil, []string{"consumer"}, nil},
		{"both", 5, []string{"Empty"}, []string{"classic"}, []string{"simple"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := list(tc.version, tc.states, tc.types)
			require.Len(t, got, len(tc.want))
			for _, name := range tc.want {
				require.Contains(t, got, name)
				if tc.version >= 4 {
					require.NotEmpty(t, got[name].GroupState)
				}
			}
		})
	}
	require.Equal(t, "classic", list(5, nil, nil)["stable"].GroupType)

	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 6
	req.IncludeAuthorizedOperations = true
	req.Groups = []string{"stable", "completing", "missing"}
	resp := c.DescribeGroups(ctx, req)
	require.Len(t, resp.Groups, 3)
	st, co, mi := resp.Groups[0], resp.Groups[1], resp.Groups[2]
	require.Equal(t, "Stable", st.State)
	require.Equal(t, "range", st.Protocol)
	require.NotEmpty(t, st.Members[0].MemberAssignment)
	require.Equal(t, int32(authorizedGroupOperations), st.AuthorizedOperations)
	require.Equal(t, "CompletingRebalance", co.State)
	require.Empty(t, co.Members[0].ProtocolMetadata, "metadata only for stable groups")
	require.Equal(t, kerr.GroupIDNotFound.Code, mi.ErrorCode)
	require.Equal(t, "Dead", mi.State)
	req.Version = 5
	require.Zero(t, c.DescribeGroups(ctx, req).Groups[2].ErrorCode)
}

func TestDeleteGroups(t *testing.T) {
	ctx := testCtx(t)
	store := newMemStore()
	c := startCoordinator(t, delayConfig(), store)
	stableGroup(ctx, t, c, "busy", 1, joinOpts{})
	requireCommit(t, c, "idle", commitOpts{version: 7, gen: -1}, map[string]map[int32]int64{"t": {0: 1, 1: 2}}, 0)

	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"busy", "idle", "missing"}
	resp := c.DeleteGroups(ctx, req)
	codes := map[string]int16{}
	for _, g := range resp.Groups {
		codes[g.Group] = g.ErrorCode
	}
	require.Equal(t, map[string]int16{
		"busy":    kerr.NonEmptyGroup.Code,
		"idle":    0,
		"missing": kerr.GroupIDNotFound.Code,
	}, codes)
	require.Nil(t, c.CommittedOffsets("idle"))
	f := fetchV(c, 5, "idle", map[string][]int32{"t": {0}})
	require.Equal(t, int64(-1), f.Topics[0].Partitions[0].Offset)

	tombstones := 0
	for _, d := range store.records(t, c.PartitionFor("idle")) {
		if d.group == "idle" && d.isOffset && d.offset == nil {
			tombstones++
		}
	}
	require.Equal(t, 2, tombstones)

	// The name is free again at once.
	requireCommit(t, c, "idle", commitOpts{version: 7, gen: -1}, map[string]map[int32]int64{"t": {0: 3}}, 0)
	require.Equal(t, map[string]map[int32]int64{"t": {0: 3}}, c.CommittedOffsets("idle"))

	store.setFail(errStoreDown)
	resp = c.DeleteGroups(ctx, &kmsg.DeleteGroupsRequest{Groups: []string{"idle"}})
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, resp.Groups[0].ErrorCode)
	require.NotNil(t, c.CommittedOffsets("idle"), "a failed delete changes nothing")
}

func TestEmptyGroupWithoutOffsetsIsDropped(t *testing.T) {
	ctx := testCtx(t)
	cfg := testConfig()
	cfg.OffsetsRetentionCheckInterval = 5 * time.Millisecond
	c := startCoordinator(t, cfg, newMemStore())
	r := recv(t, joinFull(ctx, t, c, "g", joinOpts{version: 5}))
	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "g", r.MemberID
	require.Zero(t, c.LeaveGroup(ctx, leave).ErrorCode)
	testutil.WaitFor(t, 5*time.Second, `len(c.ListGroups(ctx, kmsg.NewPtrListGroupsRequest()).Groups) == 0`, func() bool { return len(c.ListGroups(ctx, kmsg.NewPtrListGroupsRequest()).Groups) == 0 })
}
