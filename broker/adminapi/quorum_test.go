package adminapi

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// answer is a kmsg.Requestor that answers with resp (or err), checking that the request is a
// DescribeQuorum of partition 0 of the metadata log.
type answer struct {
	t    *testing.T
	resp *kmsg.DescribeQuorumResponse
	err  error
}

func (a answer) Request(_ context.Context, req kmsg.Request) (kmsg.Response, error) {
	dq, ok := req.(*kmsg.DescribeQuorumRequest)
	require.True(a.t, ok, "a %T", req)
	require.Len(a.t, dq.Topics, 1)
	require.Equal(a.t, MetadataTopic, dq.Topics[0].Topic)
	require.Len(a.t, dq.Topics[0].Partitions, 1)
	require.Zero(a.t, dq.Topics[0].Partitions[0].Partition)
	return a.resp, a.err
}

// quorumAnswer is a controller's answer: leader 2, voters 3, 1, 2 (not in order) and observer 4;
// change adjusts it.
func quorumAnswer(change func(*kmsg.DescribeQuorumResponse)) *kmsg.DescribeQuorumResponse {
	resp := kmsg.NewPtrDescribeQuorumResponse()
	rt := kmsg.NewDescribeQuorumResponseTopic()
	rt.Topic = MetadataTopic
	p := kmsg.NewDescribeQuorumResponseTopicPartition()
	p.LeaderID, p.LeaderEpoch, p.HighWatermark = 2, 7, 120
	for _, id := range []int32{3, 1, 2, 4} {
		r := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
		r.ReplicaID, r.LogEndOffset, r.LastFetchTimestamp, r.LastCaughtUpTimestamp = id, 100+int64(id), 1000*int64(id), -1
		if id == 4 {
			p.Observers = append(p.Observers, r)
		} else {
			p.CurrentVoters = append(p.CurrentVoters, r)
		}
	}
	rt.Partitions = append(rt.Partitions, p)
	resp.Topics = append(resp.Topics, rt)
	if change != nil {
		change(resp)
	}
	return resp
}

func TestDescribeQuorum(t *testing.T) {
	ctx := context.Background()
	q, err := DescribeQuorum(ctx, answer{t: t, resp: quorumAnswer(nil)})
	require.NoError(t, err)
	require.Equal(t, int32(2), q.LeaderID)
	require.Equal(t, int32(7), q.LeaderEpoch)
	require.Equal(t, int64(120), q.HighWatermark)
	require.Equal(t, []int32{1, 2, 3}, q.VoterIDs())
	require.Equal(t, []int32{4}, q.ObserverIDs())
	require.Equal(t, QuorumMember{NodeID: 3, LogEndOffset: 103, LastFetchTimestamp: 3000, LastCaughtUpTimestamp: -1}, q.Voters[0],
		"members in the controller's order, every field")
	require.Equal(t, int64(104), q.Observers[0].LogEndOffset)

	msg := "not allowed here"
	for _, c := range []struct {
		name   string
		answer answer
		is     error
		says   string
	}{
		{"request failed", answer{err: errors.New("connection refused")}, nil, "describe quorum: connection refused"},
		{"top-level error with its message", answer{resp: quorumAnswer(func(r *kmsg.DescribeQuorumResponse) {
			r.ErrorCode, r.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, &msg
		})}, kerr.ClusterAuthorizationFailed, "not allowed here"},
		{"partition error", answer{resp: quorumAnswer(func(r *kmsg.DescribeQuorumResponse) {
			r.Topics[0].Partitions[0].ErrorCode = kerr.NotLeaderForPartition.Code
		})}, kerr.NotLeaderForPartition, "describe quorum"},
		{"no topic", answer{resp: quorumAnswer(func(r *kmsg.DescribeQuorumResponse) { r.Topics = nil })}, nil, "malformed"},
		{"another topic", answer{resp: quorumAnswer(func(r *kmsg.DescribeQuorumResponse) { r.Topics[0].Topic = "orders" })}, nil, "malformed"},
		{"two partitions", answer{resp: quorumAnswer(func(r *kmsg.DescribeQuorumResponse) {
			r.Topics[0].Partitions = append(r.Topics[0].Partitions, r.Topics[0].Partitions[0])
		})}, nil, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.answer.t = t
			_, err := DescribeQuorum(ctx, c.answer)
			require.ErrorContains(t, err, c.says)
			if c.is != nil {
				require.ErrorIs(t, err, c.is)
			}
		})
	}
}
