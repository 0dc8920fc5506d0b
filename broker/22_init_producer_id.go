package broker

import (
	"context"
	"math"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
//   - A transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions are
//     not supported yet.
//   - Authorization (Kafka 3.x, KIP-679): IDEMPOTENT_WRITE on the cluster or WRITE on
//     some topic, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(22, 0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
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
