package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// AlterPartitionReassignments: v0-1
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it), with Kafka's
//     semantics (KIP-455): a partition with replicas starts moving to them (the new
//     replicas fetch and catch up, then the old ones leave the ISR and delete their
//     copy; a leaving leader hands over), null replicas cancel the partition's
//     reassignment in progress. A reorder of the same replicas completes at once.
//   - Per partition: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (empty or
//     repeated list, an unregistered broker, none live), NO_REASSIGNMENT_IN_PROGRESS
//     (cancel without one), INVALID_REPLICATION_FACTOR (v1, KIP-860: the count
//     changes and AllowReplicationFactorChange is false), INVALID_REQUEST (a
//     partition named twice).
//   - Authorization: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for the
//     request.

func init() { register(45, 0, 1, (*Broker).handleAlterPartitionReassignments) }

func (b *Broker) handleAlterPartitionReassignments(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	resp.AllowReplicationFactorChange = req.AllowReplicationFactorChange
	if !cc.authorizedCluster(kmsg.ACLOperationAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	var reqs []metadata.ReassignmentRequest
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			// Null replicas (nil as decoded) cancel; an empty list is invalid.
			reqs = append(reqs, metadata.ReassignmentRequest{Topic: rt.Topic, Partition: rp.Partition, Replicas: rp.Replicas})
		}
	}
	allowRF := req.AllowReplicationFactorChange || req.Version < 1
	errs, err := b.quorum.AlterPartitionReassignments(cc.ctx, reqs, allowRF)
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			perr := err
			if err == nil {
				perr = errs[i]
			}
			sp.ErrorCode, sp.ErrorMessage = errCode(perr), errMessage(perr)
			st.Partitions = append(st.Partitions, sp)
			i++
		}
		resp.Topics = append(resp.Topics, st)
	}
	if err == nil && len(reqs) > 0 {
		b.logger.Info("partition reassignments altered", "partitions", len(reqs), "principal", cc.principal)
	}
	return resp, nil
}
