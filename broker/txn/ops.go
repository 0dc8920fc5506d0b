package txn

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/backoff"
)

// ProducerIDAndEpoch is what InitProducerId answers.
type ProducerIDAndEpoch struct {
	ProducerID int64
	Epoch      int16
}

// InitProducerID serves InitProducerId for transactional id id: a new
// producer id, or the current one with its epoch bumped, which fences the
// previous producer instance. An ongoing transaction of that instance is
// aborted first (PrepareEpochFence, then PrepareAbort with the bumped epoch)
// and the caller gets CONCURRENT_TRANSACTIONS, to retry once the abort is
// done, as in Kafka. expected, when not nil, is the producer id and epoch the
// producer has (KIP-360, v3+). The code is PRODUCER_FENCED where Kafka's is;
// the handler maps it to INVALID_PRODUCER_EPOCH for old versions.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeout time.Duration, expected *ProducerIDAndEpoch) (ProducerIDAndEpoch, int16) {
	none := ProducerIDAndEpoch{ProducerID: -1, Epoch: -1}
	if timeout <= 0 || timeout > c.cfg.MaxTimeout {
		return none, kerr.InvalidTransactionTimeout.Code
	}
	spare := int64(-1) // a producer id allocated outside the lock
	for range 4 {
		c.mu.Lock()
		p, e, code := c.statusLocked(id)
		if code != 0 {
			c.mu.Unlock()
			return none, code
		}
		now := c.now().UnixMilli()
		m := c.txns[id]
		if m == nil && spare < 0 {
			c.mu.Unlock()
			if spare, code = c.newProducerID(ctx); code != 0 {
				return none, code
			}
			continue
		}
		if m == nil {
			m = &txnMeta{id: id, producerID: spare, lastProducerID: -1, epoch: -1, lastEpoch: -1,
				timeoutMs: int32(timeout / time.Millisecond), state: Empty,
				partitions: map[TopicPartition]struct{}{}, startMs: -1, updateMs: now}
			spare = -1
			c.txns[id] = m
		}
		if m.hasPending {
			c.mu.Unlock()
			return none, kerr.ConcurrentTransactions.Code
		}
		if expected != nil && !(m.epoch < 0 || expected.ProducerID == m.producerID ||
			(expected.ProducerID == m.lastProducerID && epochExhausted(expected.Epoch))) {
			c.mu.Unlock()
			return none, kerr.ProducerFenced.Code
		}
		next := m.clone()
		next.timeoutMs = int32(timeout / time.Millisecond)
		next.updateMs = now
		switch m.state {
		case PrepareCommit, PrepareAbort:
			c.mu.Unlock()
			return none, kerr.ConcurrentTransactions.Code
		case Ongoing:
			// Fence: abort the transaction with a bumped epoch, which the old
			// instance never learns, and let the caller retry; the retry bumps
			// the epoch again (or rotates the producer id).
			if m.epoch < math.MaxInt16 { // Kafka fences up to the last epoch; the retry rotates the producer id
				next.epoch = m.epoch + 1
			}
			next.timeoutMs = m.timeoutMs
			next.state = PrepareAbort
			m.hasPending, m.pending = true, PrepareEpochFence
			c.mu.Unlock()
			if code := c.persist(ctx, m, next, p, e.seq); code != 0 {
				return none, code
			}
			c.metrics.fenced.Inc()
			c.logger.Info("fenced a transaction: a new producer with its transactional id initialized",
				"transactional_id", id, "producer_id", next.producerID, "producer_epoch", next.epoch)
			c.mu.Lock()
			if c.txns[id] == m && c.ownsLocked(p, e.seq) {
				c.startCompletionLocked(m, p, e.seq)
			}
			c.mu.Unlock()
			return none, kerr.ConcurrentTransactions.Code
		case Empty, CompleteCommit, CompleteAbort:
			next.state = Empty
			next.partitions = map[TopicPartition]struct{}{}
			next.startMs = -1
			if epochExhausted(m.epoch) && (expected == nil || expected.Epoch == m.epoch) {
				if spare < 0 {
					c.mu.Unlock()
					if spare, code = c.newProducerID(ctx); code != 0 {
						return none, code
					}
					continue
				}
				next.lastProducerID, next.producerID, next.epoch, next.lastEpoch = m.producerID, spare, 0, -1
				if expected != nil {
					next.lastEpoch = m.epoch
				}
				spare = -1
			} else {
				switch {
				case expected == nil:
					next.epoch, next.lastEpoch = m.epoch+1, -1
				case m.epoch < 0 || expected.Epoch == m.epoch:
					next.epoch, next.lastEpoch = m.epoch+1, m.epoch
				case expected.Epoch == m.lastEpoch:
					// A retry of a bump whose answer the producer lost.
				default:
					c.mu.Unlock()
					return none, kerr.ProducerFenced.Code
				}
			}
			m.hasPending, m.pending = true, Empty
			c.mu.Unlock()
			if code := c.persist(ctx, m, next, p, e.seq); code != 0 {
				return none, code
			}
			return ProducerIDAndEpoch{ProducerID: next.producerID, Epoch: next.epoch}, 0
		default:
			c.mu.Unlock()
			c.logger.Error("transactional id in an unexpected state", "transactional_id", id, "state", m.state)
			return none, kerr.UnknownServerError.Code
		}
	}
	return none, kerr.ConcurrentTransactions.Code
}

func (c *Coordinator) newProducerID(ctx context.Context) (int64, int16) {
	id, err := c.pids(ctx)
	if err != nil {
		c.logger.Warn("allocating a producer id", "err", err)
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	return id, 0
}

// checkProducerLocked is the check every request of a producer passes: the
// transactional id is known with this producer id and epoch, and no change is
// being written. It must be called with c.mu held.
func checkProducerLocked(m *txnMeta, producerID int64, epoch int16) int16 {
	switch {
	case m == nil || m.producerID != producerID:
		return kerr.InvalidProducerIDMapping.Code
	case m.epoch != epoch:
		return kerr.ProducerFenced.Code
	case m.hasPending:
		return kerr.ConcurrentTransactions.Code
	}
	return 0
}

// AddPartitions serves AddPartitionsToTxn and AddOffsetsToTxn (with the
// group's __consumer_offsets partition): it adds parts to the transaction of
// id, starting one if none is ongoing. The code applies to every partition.
//
// A producer that begins its next transaction while the markers of its last
// one are being written waits for them, up to completionWait, instead of
// getting CONCURRENT_TRANSACTIONS at once and retrying after a backoff: the
// answer is the same, sooner.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, producerID int64, epoch int16, parts []TopicPartition) int16 {
	waited := false
again:
	c.mu.Lock()
	p, e, code := c.statusLocked(id)
	if code != 0 {
		c.mu.Unlock()
		return code
	}
	m := c.txns[id]
	if code := checkProducerLocked(m, producerID, epoch); code != 0 {
		c.mu.Unlock()
		return code
	}
	switch m.state {
	case PrepareCommit, PrepareAbort:
		done := m.completed
		c.mu.Unlock()
		if done == nil || waited {
			return kerr.ConcurrentTransactions.Code
		}
		waited = true
		t := time.NewTimer(c.completionWait)
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		goto again
	case Ongoing:
		added := false
		for _, tp := range parts {
			if _, ok := m.partitions[tp]; !ok {
				added = true
				break
			}
		}
		if !added {
			c.mu.Unlock()
			return 0
		}
	case Empty, CompleteCommit, CompleteAbort:
	default:
		c.mu.Unlock()
		return kerr.UnknownServerError.Code
	}
	now := c.now().UnixMilli()
	next := m.clone()
	if m.state != Ongoing {
		next.partitions = map[TopicPartition]struct{}{}
		next.startMs = now
	}
	for _, tp := range parts {
		next.partitions[tp] = struct{}{}
	}
	next.state, next.updateMs = Ongoing, now
	m.hasPending, m.pending = true, Ongoing
	c.mu.Unlock()
	return c.persist(ctx, m, next, p, e.seq)
}

// VerifyPartitions serves the verify-only form of AddPartitionsToTxn (v4+,
// KIP-890) that partition leaders send before they accept transactional
// data: per partition, 0 when it is in the ongoing transaction of this
// producer, INVALID_TXN_STATE when it is not, or the producer's error.
func (c *Coordinator) VerifyPartitions(id string, producerID int64, epoch int16, parts []TopicPartition) map[TopicPartition]int16 {
	out := make(map[TopicPartition]int16, len(parts))
	all := func(code int16) map[TopicPartition]int16 {
		for _, tp := range parts {
			out[tp] = code
		}
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, _, code := c.statusLocked(id); code != 0 {
		return all(code)
	}
	m := c.txns[id]
	switch {
	case m == nil || m.producerID != producerID:
		return all(kerr.InvalidProducerIDMapping.Code)
	case m.epoch != epoch:
		return all(kerr.ProducerFenced.Code)
	case m.hasPending && m.pending != Ongoing, m.state == PrepareCommit, m.state == PrepareAbort:
		return all(kerr.ConcurrentTransactions.Code)
	}
	for _, tp := range parts {
		if _, ok := m.partitions[tp]; ok && m.state == Ongoing {
			out[tp] = 0
		} else {
			out[tp] = kerr.InvalidTxnState.Code
		}
	}
	return out
}

// EndTxn serves EndTxn: it decides the ongoing transaction of id (commit or
// abort), answers once the decision is durable, and writes the markers and
// the completion in the background. Repeating the decision of a completed
// transaction succeeds, as in Kafka.
func (c *Coordinator) EndTxn(ctx context.Context, id string, producerID int64, epoch int16, commit bool) int16 {
	c.mu.Lock()
	p, e, code := c.statusLocked(id)
	if code != 0 {
		c.mu.Unlock()
		return code
	}
	m := c.txns[id]
	if code := checkProducerLocked(m, producerID, epoch); code != 0 {
		c.mu.Unlock()
		return code
	}
	same := func(committed bool, ok int16) int16 {
		if committed == commit {
			return ok
		}
		return kerr.InvalidTxnState.Code
	}
	var next *txnMeta
	switch m.state {
	case Ongoing:
		next = m.clone()
		next.state, next.updateMs = PrepareAbort, c.now().UnixMilli()
		if commit {
			next.state = PrepareCommit
		}
	case CompleteCommit:
		code = same(true, 0)
	case CompleteAbort:
		code = same(false, 0)
	case PrepareCommit:
		code = same(true, kerr.ConcurrentTransactions.Code)
	case PrepareAbort:
		code = same(false, kerr.ConcurrentTransactions.Code)
	default:
		code = kerr.InvalidTxnState.Code
	}
	if next == nil {
		c.mu.Unlock()
		return code
	}
	m.hasPending, m.pending = true, next.state
	c.mu.Unlock()
	if code := c.persist(ctx, m, next, p, e.seq); code != 0 {
		return code
	}
	c.mu.Lock()
	if c.txns[id] == m && c.ownsLocked(p, e.seq) {
		c.startCompletionLocked(m, p, e.seq)
	}
	c.mu.Unlock()
	return 0
}

// startCompletionLocked writes the markers of m, which is in PrepareCommit or
// PrepareAbort, and then its completion, in a goroutine the coordinator owns.
func (c *Coordinator) startCompletionLocked(m *txnMeta, p int32, seq uint64) {
	if c.closed {
		return
	}
	mk := Markers{
		ProducerID:       m.producerID,
		ProducerEpoch:    m.epoch,
		Commit:           m.state == PrepareCommit,
		CoordinatorEpoch: c.partitions[p].epoch,
		Partitions:       m.sortedPartitions(),
	}
	if m.completed == nil {
		m.completed = make(chan struct{})
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.complete(m, mk, p, seq)
	}()
}

// complete writes mk until every partition has its marker, then moves m to
// CompleteCommit or CompleteAbort. It stops when the partition is unloaded:
// the next coordinator resumes from the Prepare state it loads.
func (c *Coordinator) complete(m *txnMeta, mk Markers, p int32, seq uint64) {
	ctx := c.ctx
	owned := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.ownsLocked(p, seq) && c.txns[m.id] == m
	}
	bo := backoff.New(50*time.Millisecond, 2*time.Second)
	for len(mk.Partitions) > 0 {
		if !owned() {
			return
		}
		retry, err := c.markers.WriteMarkers(ctx, mk)
		if err != nil {
			c.logger.Warn("transaction markers not written", "transactional_id", m.id, "err", err)
			return
		}
		mk.Partitions = retry
		if len(retry) > 0 && bo.Wait(ctx, 0) != nil {
			return
		}
	}
	bo = backoff.New(50*time.Millisecond, 2*time.Second)
	for {
		c.mu.Lock()
		if !c.ownsLocked(p, seq) || c.txns[m.id] != m || m.hasPending {
			c.mu.Unlock()
			return
		}
		next := m.clone()
		next.state, next.updateMs = CompleteAbort, c.now().UnixMilli()
		result := "abort"
		if m.state == PrepareCommit {
			next.state, result = CompleteCommit, "commit"
		}
		next.partitions = map[TopicPartition]struct{}{}
		m.hasPending, m.pending = true, next.state
		done := m.completed
		c.mu.Unlock()
		switch code := c.persist(ctx, m, next, p, seq); code {
		case 0:
			c.metrics.completed.WithLabelValues(result).Inc()
			if done != nil {
				close(done)
			}
			return
		case kerr.NotCoordinator.Code:
			return
		}
		if bo.Wait(ctx, 0) != nil {
			return
		}
	}
}

// AbortTimedOut aborts every ongoing transaction open longer than its
// timeout, bumping the producer epoch so that the producer, if it is still
// alive, is fenced (Kafka's abortTimedOutTransactions). Run calls it every
// AbortTimedOutInterval.
func (c *Coordinator) AbortTimedOut(ctx context.Context) {
	type due struct {
		m, next *txnMeta
		p       int32
		seq     uint64
	}
	var list []due
	c.mu.Lock()
	now := c.now().UnixMilli()
	for id, m := range c.txns {
		if m.state != Ongoing || m.hasPending || m.startMs+int64(m.timeoutMs) > now {
			continue
		}
		p, e, code := c.statusLocked(id)
		if code != 0 {
			continue
		}
		next := m.clone()
		if m.epoch < math.MaxInt16 {
			next.epoch = m.epoch + 1
		}
		next.state, next.updateMs = PrepareAbort, now
		m.hasPending, m.pending = true, PrepareEpochFence
		list = append(list, due{m, next, p, e.seq})
	}
	c.mu.Unlock()
	for _, d := range list {
		if code := c.persist(ctx, d.m, d.next, d.p, d.seq); code != 0 {
			continue
		}
		c.metrics.timedOut.Inc()
		c.logger.Info("aborting a transaction open longer than its timeout", "transactional_id", d.m.id,
			"producer_id", d.next.producerID, "timeout_ms", d.next.timeoutMs)
		c.mu.Lock()
		if c.txns[d.m.id] == d.m && c.ownsLocked(d.p, d.seq) {
			c.startCompletionLocked(d.m, d.p, d.seq)
		}
		c.mu.Unlock()
	}
}

// ExpireIDs forgets the transactional ids without a transaction in progress
// whose last update is older than IDExpiration, writing a tombstone for each
// (Kafka's removeExpiredTransactionalIds). Run calls it every
// RemoveExpiredInterval.
func (c *Coordinator) ExpireIDs(ctx context.Context) {
	type due struct {
		m   *txnMeta
		p   int32
		seq uint64
	}
	var list []due
	c.mu.Lock()
	cutoff := c.now().Add(-c.cfg.IDExpiration).UnixMilli()
	for id, m := range c.txns {
		if !m.state.complete() || m.hasPending || m.updateMs > cutoff {
			continue
		}
		p, e, code := c.statusLocked(id)
		if code != 0 {
			continue
		}
		m.hasPending, m.pending = true, Dead
		list = append(list, due{m, p, e.seq})
	}
	c.mu.Unlock()
	for _, d := range list {
		if code := c.persist(ctx, d.m, nil, d.p, d.seq); code == 0 {
			c.logger.Debug("transactional id expired", "transactional_id", d.m.id)
		}
	}
}
