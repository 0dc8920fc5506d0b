package adminapi

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MetadataTopic is the name Kafka gives the metadata log in DescribeQuorum.
const MetadataTopic = "__cluster_metadata"

// Quorum is the metadata quorum as the active controller describes it: the answer of Kafka's
// DescribeQuorum (API 55) for partition 0 of __cluster_metadata. `sluice cluster
// describe-quorum`, the scaling scenario and tests read it through DescribeQuorum.
type Quorum struct {
	// LeaderID is the active controller's node id.
	LeaderID int32
	// LeaderEpoch is the Raft term.
	LeaderEpoch int32
	// HighWatermark is the Raft commit index.
	HighWatermark int64
	// Voters and Observers are the members as the controller lists them (by node id).
	Voters, Observers []QuorumMember
}

// QuorumMember is one voter or observer of the metadata quorum.
type QuorumMember struct {
	NodeID int32
	// LogEndOffset is the metadata offset the member last reported applied; -1 when unknown.
	LogEndOffset int64
	// LastFetchTimestamp is when the member last reported, LastCaughtUpTimestamp when it last
	// reported having applied everything committed then: milliseconds since the epoch, -1 (or 0
	// from a v0 answer) when unknown.
	LastFetchTimestamp, LastCaughtUpTimestamp int64
}

// VoterIDs returns the voters' node ids in ascending order.
func (q Quorum) VoterIDs() []int32 { return memberIDs(q.Voters) }

// ObserverIDs returns the observers' node ids in ascending order.
func (q Quorum) ObserverIDs() []int32 { return memberIDs(q.Observers) }

func memberIDs(ms []QuorumMember) []int32 {
	ids := make([]int32, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.NodeID)
	}
	slices.Sort(ids)
	return ids
}

// DescribeQuorum asks the cluster behind r (a *kgo.Client, which sends it to any broker; brokers
// forward it to the active controller) with DescribeQuorum. A Kafka error in the answer, its own or
// the partition's, is returned wrapped (errors.Is with kerr's errors works), with the broker's
// message.
func DescribeQuorum(ctx context.Context, r kmsg.Requestor) (Quorum, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = MetadataTopic
	rt.Partitions = append(rt.Partitions, kmsg.NewDescribeQuorumRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return Quorum{}, fmt.Errorf("describe quorum: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return Quorum{}, fmt.Errorf("describe quorum: %w%s", err, message(resp.ErrorMessage))
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Topic != MetadataTopic || len(resp.Topics[0].Partitions) != 1 {
		return Quorum{}, errors.New("describe quorum: malformed response: not one partition of " + MetadataTopic)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return Quorum{}, fmt.Errorf("describe quorum: %w%s", err, message(p.ErrorMessage))
	}
	q := Quorum{LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.HighWatermark}
	member := func(r kmsg.DescribeQuorumResponseTopicPartitionReplicaState) QuorumMember {
		return QuorumMember{NodeID: r.ReplicaID, LogEndOffset: r.LogEndOffset,
			LastFetchTimestamp: r.LastFetchTimestamp, LastCaughtUpTimestamp: r.LastCaughtUpTimestamp}
	}
	for _, r := range p.CurrentVoters {
		q.Voters = append(q.Voters, member(r))
	}
	for _, r := range p.Observers {
		q.Observers = append(q.Observers, member(r))
	}
	return q, nil
}

// message is ": m" for a non-empty Kafka error message.
func message(m *string) string {
	if m == nil || *m == "" {
		return ""
	}
	return ": " + *m
}
