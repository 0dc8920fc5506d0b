package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListPartitionReassignments: v0
//
// Behavior:
//   - Answered by the controller (other brokers forward to it) from the metadata
//     image: every partition with a reassignment in progress (null topics) or those
//     of the listed partitions, with replicas, adding and removing replicas
//     (KIP-455). Partitions that do not exist or are not reassigning are left out.
//   - Authorization: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(46, 0, 0, (*Broker).handleListPartitionReassignments) }

func (b *Broker) handleListPartitionReassignments(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListPartitionReassignmentsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	var filter map[string][]int32
	if req.Topics != nil {
		filter = map[string][]int32{}
		for _, rt := range req.Topics {
			filter[rt.Topic] = append(filter[rt.Topic], rt.Partitions...)
		}
	}
	var st *kmsg.ListPartitionReassignmentsResponseTopic
	for _, r := range b.quorum.Image().Reassignments(filter) {
		if st == nil || st.Topic != r.Topic {
			resp.Topics = append(resp.Topics, kmsg.NewListPartitionReassignmentsResponseTopic())
			st = &resp.Topics[len(resp.Topics)-1]
			st.Topic = r.Topic
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition, sp.Replicas = r.Partition, r.Replicas
		sp.AddingReplicas, sp.RemovingReplicas = nonNil(r.Adding), nonNil(r.Removing)
		st.Partitions = append(st.Partitions, sp)
	}
	return resp, nil
}

// nonNil returns s, or an empty slice for nil (an array Kafka clients do not
// expect to be null).
func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}
