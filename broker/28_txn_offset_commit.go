package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit: v0-3
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads (else NOT_COORDINATOR).
//   - The offsets are appended to the group's __consumer_offsets partition as a
//     transactional batch of the producer (acks=all) and stay pending until the
//     transaction coordinator's marker reaches that partition: a commit makes them
//     the group's offsets, an abort drops them. OffsetFetch with RequireStable
//     answers UNSTABLE_OFFSET_COMMIT while they are pending (KIP-447).
//   - v3: member id, generation and group.instance.id are checked against the group
//     (UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, ILLEGAL_GENERATION), so a zombie
//     consumer of an older generation cannot commit.
//   - A producer epoch older than the producer's on the partition gets
//     INVALID_PRODUCER_EPOCH.
//   - Authorization: WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition), READ on the group
//     (else GROUP_AUTHORIZATION_FAILED) and on each topic (else
//     TOPIC_AUTHORIZATION_FAILED for its partitions).

func init() { register(28, 0, 3, (*Broker).handleTxnOffsetCommit) }

func (b *Broker) handleTxnOffsetCommit(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	var code int16
	switch {
	case !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		code = kerr.TransactionalIDAuthorizationFailed.Code
	case !cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		code = kerr.GroupAuthorizationFailed.Code
	case !b.groups.IsCoordinator(req.Group):
		code = kerr.NotCoordinator.Code
	}
	if code != 0 {
		return txnOffsetCommitError(req, code), nil
	}
	var denied []kmsg.TxnOffsetCommitResponseTopic
	kept := req.Topics[:0]
	for _, rt := range req.Topics {
		if cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic) {
			kept = append(kept, rt)
			continue
		}
		denied = append(denied, txnOffsetCommitTopicError(rt, kerr.TopicAuthorizationFailed.Code))
	}
	req.Topics = kept
	resp := b.groups.TxnOffsetCommit(cc.groupCtx(), req)
	resp.Topics = append(resp.Topics, denied...)
	return resp, nil
}

// txnOffsetCommitError answers every partition of req with code.
func txnOffsetCommitError(req *kmsg.TxnOffsetCommitRequest, code int16) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, rt := range req.Topics {
		resp.Topics = append(resp.Topics, txnOffsetCommitTopicError(rt, code))
	}
	return resp
}

func txnOffsetCommitTopicError(rt kmsg.TxnOffsetCommitRequestTopic, code int16) kmsg.TxnOffsetCommitResponseTopic {
	st := kmsg.NewTxnOffsetCommitResponseTopic()
	st.Topic = rt.Topic
	for _, rp := range rt.Partitions {
		sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
		sp.Partition, sp.ErrorCode = rp.Partition, code
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}
