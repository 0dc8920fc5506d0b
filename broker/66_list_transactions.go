package broker

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/txn"
)

// ListTransactions: v0-1
//
// Behavior:
//   - The transactional ids this broker coordinates, with producer id and state,
//     filtered by state names and producer ids (empty filters match all), and in v1
//     by how long the transaction has been running (KIP-994). Unknown state names are
//     returned in unknown_state_filters. COORDINATOR_LOAD_IN_PROGRESS while a
//     __transaction_state partition is loading.
//   - v2 (a regular expression on the transactional id, KIP-1152) is not served.
//   - Authorization: only the transactional ids the principal may DESCRIBE are listed.

func init() { register(66, 0, 1, (*Broker).handleListTransactions) }

func (b *Broker) handleListTransactions(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var f txn.ListFilter
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok {
			f.States = append(f.States, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	f.ProducerIDs = req.ProducerIDFilters
	if req.Version >= 1 && req.DurationFilterMillis >= 0 {
		f.MinDuration = time.Duration(req.DurationFilterMillis) * time.Millisecond
	}
	list, code := b.txns.List(f)
	resp.ErrorCode = code
	for _, l := range list {
		if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, l.TransactionalID) {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = l.TransactionalID, l.ProducerID, l.State.String()
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
