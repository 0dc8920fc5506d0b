package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/txn"
)

// AddOffsetsToTxn: v0-4
//
// Behavior:
//   - Adds the group's __consumer_offsets partition to the ongoing transaction, so
//     its commit or abort marker reaches the offsets committed with TxnOffsetCommit.
//     Errors as AddPartitionsToTxn's (before v2, PRODUCER_FENCED is
//     INVALID_PRODUCER_EPOCH).
//   - Authorization: WRITE on the transactional id (else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group (else
//     GROUP_AUTHORIZATION_FAILED).

func init() { register(25, 0, 4, (*Broker).handleAddOffsetsToTxn) }

func (b *Broker) handleAddOffsetsToTxn(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	switch {
	case !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case !cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group):
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
	case req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
	default:
		tp := txn.TopicPartition{Topic: offsetsTopic, Partition: b.groups.PartitionFor(req.Group)}
		code := b.txns.AddPartitions(cc.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp})
		resp.ErrorCode = fencedCode(code, req.Version < 2)
	}
	return resp, nil
}
