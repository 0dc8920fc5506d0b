package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterPartition: v2
//
// Behavior:
//   - Broker-to-controller: a partition leader asks to shrink or expand the ISR.
//     Served only by the active controller (else NOT_CONTROLLER); the change is
//     checked against the leader and partition epochs and written to the metadata
//     log (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA).
//   - Topics by ID.
//   - Authorization: CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(56, 2, 2, (*Broker).handleAlterPartition) }

func (b *Broker) handleAlterPartition(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterPartitionRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionResponseTopic()
		st.TopidID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionResponseTopicPartition()
			sp.Partition = rp.Partition
			p, err := b.quorum.AlterPartition(cc.ctx, rt.TopicID, rp.Partition, req.BrokerID, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR)
			sp.ErrorCode = errCode(err)
			if err == nil {
				sp.LeaderID, sp.LeaderEpoch, sp.ISR, sp.PartitionEpoch = p.Leader, p.LeaderEpoch, p.ISR, p.PartitionEpoch
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
