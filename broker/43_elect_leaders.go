package broker

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// ElectLeaders: v0-2
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it), KIP-460:
//     preferred (type 0, v0's only type) moves leadership to the first replica if
//     it is live and in sync; unclean (type 1, only when asked) elects a leader for
//     a partition without a live one: an in-sync live replica if any, else any live
//     replica, which may lose acknowledged records.
//   - Per partition: ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
//     ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION. Null topics mean
//     every partition; then partitions that needed no election are left out.
//   - Authorization: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED (for
//     the request from v1, for each partition in v0).

func init() { register(43, 0, 2, (*Broker).handleElectLeaders) }

func (b *Broker) handleElectLeaders(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ElectLeadersRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	var partitions metadata.TopicPartitions
	if req.Topics != nil {
		partitions = metadata.TopicPartitions{}
		for _, rt := range req.Topics {
			partitions[rt.Topic] = append(partitions[rt.Topic], rt.Partitions...)
		}
	}
	var results []metadata.ElectionResult
	var err error
	switch {
	case !cc.authorizedCluster(kmsg.ACLOperationAlter):
		if req.Version >= 1 {
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			return resp, nil
		}
		err = kerr.ClusterAuthorizationFailed
	case req.ElectionType != 0 && req.ElectionType != 1:
		err = kafkaErr(kerr.InvalidRequest, "election type must be 0 (preferred) or 1 (unclean)")
	default:
		results, err = b.quorum.ElectLeaders(cc.ctx, metadata.ElectionType(req.ElectionType), partitions)
	}
	if err != nil {
		// The whole request failed: every partition named gets the error.
		results = nil
		for _, t := range sortedTopicNames(partitions) {
			for _, p := range partitions[t] {
				results = append(results, metadata.ElectionResult{Topic: t, Partition: p, Err: err})
			}
		}
	}
	var st *kmsg.ElectLeadersResponseTopic
	for _, r := range results {
		if st == nil || st.Topic != r.Topic {
			resp.Topics = append(resp.Topics, kmsg.NewElectLeadersResponseTopic())
			st = &resp.Topics[len(resp.Topics)-1]
			st.Topic = r.Topic
		}
		sp := kmsg.NewElectLeadersResponseTopicPartition()
		sp.Partition, sp.ErrorCode, sp.ErrorMessage = r.Partition, errCode(r.Err), errMessage(r.Err)
		st.Partitions = append(st.Partitions, sp)
	}
	if err == nil && len(results) > 0 {
		b.logger.Info("leader elections", "type", req.ElectionType, "partitions", len(results), "principal", cc.principal)
	}
	return resp, nil
}

func sortedTopicNames(m metadata.TopicPartitions) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
