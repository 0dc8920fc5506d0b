package group

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// roundTrip encodes resp at its version and decodes it again, as a client
// would read it, so that a field set in a version lacking it (or a nil where
// the version needs a value) shows up here rather than in a client.
func roundTrip(t *testing.T, resp kmsg.Response) kmsg.Response {
	t.Helper()
	wire := resp.AppendTo(nil)
	back := resp.RequestKind().ResponseKind()
	back.SetVersion(resp.GetVersion())
	require.NoError(t, back.ReadFrom(wire), "%T v%d", resp, resp.GetVersion())
	return back
}

// TestEveryVersionOnTheWire drives one group through its life with every
// version of every API the package serves, the versions of the clients in
// use included (kafka-go: JoinGroup v1/v2, SyncGroup/Heartbeat/LeaveGroup v0,
// OffsetCommit v2, OffsetFetch v1; librdkafka 2.0: JoinGroup up to v5).
func TestEveryVersionOnTheWire(t *testing.T) {
	for v := range int16(10) {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			c := startCoordinator(t, testConfig(), newMemStore())
			group := fmt.Sprintf("group-v%d", v)

			join := recv(t, joinFull(ctx, t, c, group, joinOpts{version: min(v, 9)}))
			join = roundTrip(t, join).(*kmsg.JoinGroupResponse)
			require.Zero(t, join.ErrorCode)
			require.Equal(t, "range", *join.Protocol)
			member, gen := join.MemberID, join.Generation

			sreq := kmsg.NewPtrSyncGroupRequest()
			sreq.Version, sreq.Group, sreq.MemberID, sreq.Generation = min(v, 5), group, member, gen
			sreq.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: member, MemberAssignment: []byte{1}}}
			sync := roundTrip(t, c.SyncGroup(ctx, sreq)).(*kmsg.SyncGroupResponse)
			require.Zero(t, sync.ErrorCode)
			require.Equal(t, []byte{1}, sync.MemberAssignment)

			hreq := kmsg.NewPtrHeartbeatRequest()
			hreq.Version, hreq.Group, hreq.MemberID, hreq.Generation = min(v, 4), group, member, gen
			require.Zero(t, roundTrip(t, c.Heartbeat(ctx, hreq)).(*kmsg.HeartbeatResponse).ErrorCode)

			creq := commitReq(group, commitOpts{version: v, gen: gen, member: member}, map[string]map[int32]int64{"t1": {0: 42}})
			if v == 0 {
				// v0 commits are simple commits, refused while the group has members.
				creq = commitReq("simple", commitOpts{version: 0}, map[string]map[int32]int64{"t1": {0: 42}})
			}
			commit := roundTrip(t, c.OffsetCommit(ctx, creq)).(*kmsg.OffsetCommitResponse)
			require.Zero(t, commit.Topics[0].Partitions[0].ErrorCode)

			fgroup := group
			if v == 0 {
				fgroup = "simple"
			}
			freq := kmsg.NewPtrOffsetFetchRequest()
			freq.Version = v
			if v >= 8 {
				freq.Groups = []kmsg.OffsetFetchRequestGroup{{Group: fgroup, Topics: []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t1", Partitions: []int32{0}}}}}
			} else {
				freq.Group = fgroup
				freq.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t1", Partitions: []int32{0}}}
			}
			fetch := roundTrip(t, c.OffsetFetch(ctx, freq)).(*kmsg.OffsetFetchResponse)
			if v >= 8 {
				require.Equal(t, int64(42), fetch.Groups[0].Topics[0].Partitions[0].Offset)
			} else {
				require.Equal(t, int64(42), fetch.Topics[0].Partitions[0].Offset)
			}

			dreq := kmsg.NewPtrDescribeGroupsRequest()
			dreq.Version, dreq.Groups = min(v, 6), []string{group}
			desc := roundTrip(t, c.DescribeGroups(ctx, dreq)).(*kmsg.DescribeGroupsResponse)
			require.Equal(t, "Stable", desc.Groups[0].State)

			lreq := kmsg.NewPtrListGroupsRequest()
			lreq.Version = min(v, 5)
			list := roundTrip(t, c.ListGroups(ctx, lreq)).(*kmsg.ListGroupsResponse)
			require.NotEmpty(t, list.Groups)

			leave := kmsg.NewPtrLeaveGroupRequest()
			leave.Version, leave.Group = min(v, 5), group
			if v < 3 {
				leave.MemberID = member
			} else {
				leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: member, Reason: kmsg.StringPtr("bye")}}
			}
			require.Zero(t, roundTrip(t, c.LeaveGroup(ctx, leave)).(*kmsg.LeaveGroupResponse).ErrorCode)

			oreq := kmsg.NewPtrOffsetDeleteRequest()
			oreq.Group = fgroup
			oreq.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t1", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			odel := roundTrip(t, c.OffsetDelete(ctx, oreq)).(*kmsg.OffsetDeleteResponse)
			require.Zero(t, odel.ErrorCode)
			require.Zero(t, odel.Topics[0].Partitions[0].ErrorCode)

			// OffsetDelete removed the last offsets, and with them the group
			// when it had no members left.
			greq := kmsg.NewPtrDeleteGroupsRequest()
			greq.Version, greq.Groups = min(v, 3), []string{group}
			dg := roundTrip(t, c.DeleteGroups(ctx, greq)).(*kmsg.DeleteGroupsResponse)
			if v == 0 {
				require.Zero(t, dg.Groups[0].ErrorCode, "empty, without offsets")
			} else {
				require.Equal(t, kerr.GroupIDNotFound.Code, dg.Groups[0].ErrorCode, "already gone")
			}
		})
	}
}
