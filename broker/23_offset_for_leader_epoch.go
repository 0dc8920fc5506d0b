package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/storage"
)

// OffsetForLeaderEpoch: v0-4
//
// Behavior:
//   - Returns the largest epoch <= the requested one and the end offset of that
//     epoch, from the log's leader-epoch cache; clients use it to detect log
//     truncation, followers to find where to truncate.
//   - v2+: CurrentLeaderEpoch is checked (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH).
//   - Authorization: CLUSTER_ACTION on the cluster (followers) or DESCRIBE on each
//     topic, else TOPIC_AUTHORIZATION_FAILED for its partitions.

func init() { register(23, 0, 4, (*Broker).handleOffsetForLeaderEpoch) }

func (b *Broker) handleOffsetForLeaderEpoch(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	clusterAction := cc.authorizedCluster(kmsg.ACLOperationClusterAction)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		if !clusterAction && !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, rt.Topic) {
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition, sp.LeaderEpoch, sp.EndOffset = rp.Partition, -1, -1
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
			continue
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			cur := int32(-1)
			if req.Version >= 2 {
				cur = rp.CurrentLeaderEpoch
			}
			p, err := b.leaderReplica(partitionRef{topic: rt.Topic, index: rp.Partition}, cur)
			if err == nil {
				sp.LeaderEpoch, sp.EndOffset = p.log.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			if errors.Is(err, storage.ErrClosed) {
				err = kerr.UnknownTopicOrPartition
			}
			sp.ErrorCode = errCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
