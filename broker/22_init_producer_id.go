package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId: v0-5
//
// Behavior:
//   - Idempotent producers (no transactional id) get a new producer id with epoch 0.
//     Ids are never reused: they come from blocks whose high end is persisted before
//     the first id of the block is handed out.
//   - v3+ (KIP-360): a producer that names its current id and epoch gets the same id
//     with the epoch bumped, so it can reset its sequences after an error; at the
//     largest epoch it gets a new id instead.
//   - A transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions are
//     not supported yet.

func init() { register(22, 0, 5, (*Broker).handleInitProducerID) }

func (b *Broker) handleInitProducerID(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < math.MaxInt16-1 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, err := b.pids.next()
	if err != nil {
		b.logger.Error("allocating producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// producerIDBlock is how many producer ids are reserved per write of the block file.
const producerIDBlock = 1000

// producerIDs hands out producer ids that stay unique across restarts.
type producerIDs struct {
	path string

	mu       sync.Mutex
	nextID   int64
	blockEnd int64 // first id not yet reserved on disk
}

func openProducerIDs(dir string) (*producerIDs, error) {
	p := &producerIDs{path: filepath.Join(dir, "producer-id-block")}
	raw, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	case len(raw) != 8:
		return nil, fmt.Errorf("%s: corrupt (%d bytes)", p.path, len(raw))
	default:
		p.blockEnd = int64(binary.BigEndian.Uint64(raw))
	}
	p.nextID = p.blockEnd
	return p, nil
}

func (p *producerIDs) next() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nextID >= p.blockEnd {
		var raw [8]byte
		binary.BigEndian.PutUint64(raw[:], uint64(p.blockEnd+producerIDBlock))
		if err := writeFileAtomic(p.path, raw[:]); err != nil {
			return 0, err
		}
		p.blockEnd += producerIDBlock
	}
	id := p.nextID
	p.nextID++
	return id, nil
}
