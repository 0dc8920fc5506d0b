package broker

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/txn"
)

// InitProducerId: v0-5
//
// Behavior:
//   - Idempotent producers (no transactional id) get a new producer id with epoch 0.
//     Ids are never reused: brokers take blocks of them from the controller,
//     which records each block in the metadata log (AllocateProducerIds).
//   - v3+ (KIP-360): a producer that names its current id and epoch gets the same id
//     with the epoch bumped, so it can reset its sequences after an error; at the
//     largest epoch it gets a new id instead.
//   - A transactional id is served by the transaction coordinator (broker/txn) of
//     its __transaction_state partition, elsewhere NOT_COORDINATOR: a new producer id,
//     or the epoch bumped, fencing the previous producer; an ongoing transaction of
//     the old epoch is aborted first and the answer is CONCURRENT_TRANSACTIONS.
//     transaction.timeout.ms must be in (0, transaction.max.timeout.ms], else
//     INVALID_TRANSACTION_TIMEOUT; an empty transactional id, or only one of producer
//     id and epoch, is INVALID_REQUEST. Before v4, PRODUCER_FENCED is answered as
//     INVALID_PRODUCER_EPOCH, as Kafka does.
//   - Authorization (Kafka 3.x, KIP-679): with a transactional id, WRITE on it, else
//     TRANSACTIONAL_ID_AUTHORIZATION_FAILED; without, IDEMPOTENT_WRITE on the cluster
//     or WRITE on some topic, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(22, 0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = b.initTransactionalProducerID(cc, req, resp)
		return resp, nil
	}
	if !cc.authorizedIdempotence() {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, err := b.nextProducerID(cc.ctx)
	if err != nil {
		b.logger.Error("allocating producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// initTransactionalProducerID serves InitProducerId for a transactional id and
// returns the response's error code.
func (b *Broker) initTransactionalProducerID(cc *conn, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) int16 {
	id := *req.TransactionalID
	if !cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, id) {
		return kerr.TransactionalIDAuthorizationFailed.Code
	}
	if id == "" || (req.ProducerID < 0) != (req.ProducerEpoch < 0) {
		return kerr.InvalidRequest.Code
	}
	var expected *txn.ProducerIDAndEpoch
	if req.Version >= 3 && req.ProducerID >= 0 {
		expected = &txn.ProducerIDAndEpoch{ProducerID: req.ProducerID, Epoch: req.ProducerEpoch}
	}
	pe, code := b.txns.InitProducerID(cc.ctx, id, time.Duration(req.TransactionTimeoutMillis)*time.Millisecond, expected)
	resp.ProducerID, resp.ProducerEpoch = pe.ProducerID, pe.Epoch
	return fencedCode(code, req.Version < 4)
}

// fencedCode answers PRODUCER_FENCED as INVALID_PRODUCER_EPOCH to the request
// versions from before PRODUCER_FENCED existed (KIP-588), as Kafka does.
func fencedCode(code int16, old bool) int16 {
	if old && code == kerr.ProducerFenced.Code {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// producerIDs hands out producer ids from blocks the controller allocates in the
// metadata log, so ids are unique across brokers and restarts.
type producerIDs struct {
	mu   sync.Mutex
	next int64
	end  int64
}

func (b *Broker) nextProducerID(ctx context.Context) (int64, error) {
	p := &b.pids
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.end {
		start, count, err := b.allocateProducerIDs(ctx)
		if err != nil {
			return 0, err
		}
		p.next, p.end = start, start+count
	}
	id := p.next
	p.next++
	return id, nil
}
