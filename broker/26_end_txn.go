package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn: v0-4
//
// Behavior:
//   - Commits or aborts the ongoing transaction: answers once the decision
//     (PrepareCommit or PrepareAbort) is replicated in __transaction_state; the
//     coordinator then writes the markers to every partition of the transaction
//     (WriteTxnMarkers to their leaders) and the completion. Until then the producer's
//     next request gets CONCURRENT_TRANSACTIONS. Repeating the decision of a completed
//     transaction succeeds; the other decision is INVALID_TXN_STATE. Before v2,
//     PRODUCER_FENCED is INVALID_PRODUCER_EPOCH.
//   - v5 (KIP-890 part 2, an epoch bump per transaction) is not served.
//   - Authorization: WRITE on the transactional id, else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED.

func init() { register(26, 0, 4, (*Broker).handleEndTxn) }

func (b *Broker) handleEndTxn(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	switch {
	case !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, req.TransactionalID):
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
	case req.TransactionalID == "":
		resp.ErrorCode = kerr.InvalidRequest.Code
	default:
		code := b.txns.EndTxn(cc.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
		resp.ErrorCode = fencedCode(code, req.Version < 2)
	}
	return resp, nil
}
