package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator: v0-6
//
// Behavior:
//   - The coordinator of a group (key type 0) is the leader of its
//     __consumer_offsets partition, so coordinators move with leadership; before
//     the offsets topic exists (it is created once enough brokers are live) or
//     while that partition has no leader: COORDINATOR_NOT_AVAILABLE.
//   - The coordinator of a transactional id (key type 1) is the leader of its
//     __transaction_state partition (Kafka's hash of the id modulo
//     transaction.state.log.num.partitions); COORDINATOR_NOT_AVAILABLE before that
//     topic exists or while the partition has no leader.
//   - v4+ answers several keys at once (batched, KIP-699).
//   - Authorization: DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) or on
//     the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
//   - Addresses are those of the listener the client connected to.

func init() { register(10, 0, 6, (*Broker).handleFindCoordinator) }

func (b *Broker) handleFindCoordinator(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	img := b.quorum.Image()
	answer := func(key string) (nodeID int32, code int16, msg *string) {
		switch {
		case req.CoordinatorType == 0 && !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, key):
			return -1, kerr.GroupAuthorizationFailed.Code, nil
		case req.CoordinatorType == 1 && !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key):
			return -1, kerr.TransactionalIDAuthorizationFailed.Code, nil
		}
		switch req.CoordinatorType {
		case 0:
			p, ok := img.Partition(offsetsTopic, b.groups.PartitionFor(key))
			if !ok || p.Leader < 0 {
				return -1, kerr.CoordinatorNotAvailable.Code, nil
			}
			return p.Leader, 0, nil
		case 1:
			p, ok := img.Partition(txnTopic, b.txns.PartitionFor(key))
			if !ok || p.Leader < 0 {
				return -1, kerr.CoordinatorNotAvailable.Code, nil
			}
			return p.Leader, 0, nil
		default:
			m := "unknown coordinator type"
			return -1, kerr.InvalidRequest.Code, &m
		}
	}
	addr := func(id int32) (string, int32) {
		host, port, _ := img.Brokers[id].Endpoint(cc.listener.name)
		return host, port
	}
	if req.Version < 4 {
		id, code, msg := answer(req.CoordinatorKey)
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID = code, msg, id
		if code == 0 {
			resp.Host, resp.Port = addr(id)
		}
		return resp, nil
	}
	for _, key := range req.CoordinatorKeys {
		c := kmsg.NewFindCoordinatorResponseCoordinator()
		c.Key = key
		c.NodeID, c.ErrorCode, c.ErrorMessage = answer(key)
		if c.ErrorCode == 0 {
			c.Host, c.Port = addr(c.NodeID)
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp, nil
}
