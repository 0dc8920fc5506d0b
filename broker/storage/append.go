package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/record"
)

// AppendResult describes an accepted append.
type AppendResult struct {
	// BaseOffset and LastOffset are the offsets of the first and last
	// records appended (or of the original batch for a duplicate).
	BaseOffset, LastOffset int64
	// LogAppendTime is the broker timestamp set on LogAppendTime topics,
	// -1 for CreateTime topics.
	LogAppendTime int64
	// LogStartOffset is the log start offset after the append.
	LogStartOffset int64
	// Duplicate is set when the batch repeated one of the producer's
	// last five batches and was not written again.
	Duplicate bool
}

// Append validates one or more v2 batches as a client sent them, assigns
// offsets, checks idempotent producer sequences and writes them to the
// active segment, rolling it first if needed. It patches the base offset
// and partition leader epoch (and, for LogAppendTime topics, the max
// timestamp and CRC) of the batches in records in place, so the caller must
// not reuse records concurrently. The whole append is refused, changing
// nothing, if any batch is invalid; errors wrap the kerr code to return.
// With FlushAlways it returns after an fsync covering the data.
func (l *Log) Append(records []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendFrom(records, leaderEpoch, originClient, nil)
}

// AppendTransactional is Append for a producer's transactional batches after
// KIP-890's verification: guard is what TxnGuard returned before the
// partition was verified with the transaction coordinator. A batch that would
// start a transaction after a marker ended the verified one is refused with
// kerr.InvalidTxnState, so a late batch cannot open a transaction the
// coordinator does not know (a hanging transaction).
func (l *Log) AppendTransactional(records []byte, leaderEpoch int32, guard uint64) (AppendResult, error) {
	return l.appendFrom(records, leaderEpoch, originClient, &guard)
}

// AppendAsCoordinator is Append for batches a coordinator on this broker
// writes, Kafka's AppendOrigin.COORDINATOR: the group coordinator's
// transactional offset commits carry the producer's id and epoch but no
// sequence, so only the producer epoch is checked.
func (l *Log) AppendAsCoordinator(records []byte, leaderEpoch int32) (AppendResult, error) {
	return l.appendFrom(records, leaderEpoch, originCoordinator, nil)
}

// appendOrigin is who wrote a batch the leader appends.
type appendOrigin int8

const (
	originClient appendOrigin = iota
	originCoordinator
)

func (l *Log) appendFrom(records []byte, leaderEpoch int32, origin appendOrigin, guard *uint64) (AppendResult, error) {
	headers, err := validateBatches(records, l.maxMessage.Load())
	if err != nil {
		return AppendResult{}, err
	}

	l.mu.Lock()
	res, err := l.appendLocked(records, headers, leaderEpoch, false, nil, origin, guard)
	flush := l.cfg.Flush
	l.mu.Unlock()
	if err != nil || res.Duplicate || flush != FlushAlways {
		return res, err
	}
	if err := l.sync.waitFor(context.Background(), l, res.LastOffset+1, false); err != nil {
		return AppendResult{}, fmt.Errorf("storage: fsync after append: %w", err)
	}
	return res, nil
}

// AppendMarker writes the control batch that ends producer m.ProducerID's
// transaction, as the partition leader does for the transaction coordinator
// (WriteTxnMarkers): a commit makes the transaction's data visible to
// read_committed consumers, an abort adds it to the aborted transaction
// index. It returns an error wrapping kerr.InvalidProducerEpoch for a
// marker from an older producer epoch, and kerr.TransactionCoordinatorFenced
// for one from an older coordinator epoch than the producer's last marker;
// neither changes anything. With FlushAlways it returns after an fsync.
func (l *Log) AppendMarker(m record.Marker, leaderEpoch int32) (AppendResult, error) {
	records := record.BuildMarker(0, l.now().UnixMilli(), m)
	h, err := record.ParseHeader(records)
	if err != nil {
		return AppendResult{}, err
	}
	l.mu.Lock()
	res, err := l.appendLocked(records, []record.Header{h}, leaderEpoch, false, &m, originCoordinator, nil)
	flush := l.cfg.Flush
	l.mu.Unlock()
	if err != nil || flush != FlushAlways {
		return res, err
	}
	if err := l.sync.waitFor(context.Background(), l, res.LastOffset+1, false); err != nil {
		return AppendResult{}, fmt.Errorf("storage: fsync after append: %w", err)
	}
	return res, nil
}

// validateBatches checks every batch before any lock is taken; CRCs are the
// expensive part of an append. Control batches are written only by the
// broker (AppendMarker), never accepted from a producer, as in Kafka.
func validateBatches(records []byte, maxBytes int32) ([]record.Header, error) {
	var headers []record.Header
	for b := records; len(b) > 0; {
		h, err := record.ValidateProduced(b)
		if err != nil {
			return nil, err
		}
		if h.IsControl() {
			return nil, fmt.Errorf("storage: producers cannot write control batches: %w", kerr.InvalidRecord)
		}
		if h.Size() > int(maxBytes) {
			return nil, fmt.Errorf("storage: batch of %d bytes exceeds max.message.bytes %d: %w",
				h.Size(), maxBytes, kerr.MessageTooLarge)
		}
		headers = append(headers, h)
		b = b[h.Size():]
	}
	if len(headers) == 0 {
		return nil, fmt.Errorf("storage: append without batches: %w", kerr.CorruptMessage)
	}
	return headers, nil
}

// AppendReplicated appends batches fetched from a partition leader as they
// are: their offsets, leader epochs and timestamps were assigned by the
// leader, so nothing is patched. The first batch must start at the log end
// offset and the batches must be contiguous (else kerr.OffsetOutOfRange).
// Producer state is updated without sequence checks, as Kafka does for
// replicated data, and the leader-epoch cache follows the batches' epochs.
// With FlushAlways it returns after an fsync covering the data, so a
// follower acknowledges (by fetching further) only what is on its disk.
func (l *Log) AppendReplicated(records []byte) (AppendResult, error) {
	var headers []record.Header
	for b := records; len(b) > 0; {
		h, err := record.Validate(b)
		if err != nil {
			return AppendResult{}, err
		}
		headers = append(headers, h)
		b = b[h.Size():]
	}
	if len(headers) == 0 {
		return AppendResult{}, fmt.Errorf("storage: append without batches: %w", kerr.CorruptMessage)
	}
	l.mu.Lock()
	res, err := l.appendLocked(records, headers, -1, true, nil, originClient, nil)
	flush := l.cfg.Flush
	l.mu.Unlock()
	if err != nil || flush != FlushAlways {
		return res, err
	}
	if err := l.sync.waitFor(context.Background(), l, res.LastOffset+1, false); err != nil {
		return AppendResult{}, fmt.Errorf("storage: fsync after append: %w", err)
	}
	return res, nil
}

// appendLocked does the append under mu. Replicated batches keep the
// offsets, epochs and timestamps they carry. marker is set for a marker
// the leader writes (AppendMarker), whose one batch is records; guard for a
// verified transactional append (AppendTransactional).
func (l *Log) appendLocked(records []byte, headers []record.Header, leaderEpoch int32, replicated bool, marker *record.Marker, origin appendOrigin, guard *uint64) (AppendResult, error) {
	if err := l.checkOpen(); err != nil {
		return AppendResult{}, err
	}
	cfg := l.cfg
	if int64(len(records)) > cfg.SegmentBytes {
		return AppendResult{}, fmt.Errorf("storage: append of %d bytes exceeds segment.bytes %d: %w",
			len(records), cfg.SegmentBytes, kerr.RecordListTooLarge)
	}
	nowMs := l.now().UnixMilli()
	logAppendTime := int64(-1)
	if cfg.MessageTimestampType == LogAppendTime {
		logAppendTime = nowMs
	}

	// Assign offsets in the headers and check sequences before touching
	// the bytes: a refused or duplicate append must leave them alone.
	txn := l.producers.begin()
	off := l.leo.Load()
	if replicated {
		logAppendTime = -1
		b := records
		for _, h := range headers {
			if h.BaseOffset != off {
				return AppendResult{}, fmt.Errorf("storage: replicated batch at offset %d, log end offset %d: %w",
					h.BaseOffset, off, kerr.OffsetOutOfRange)
			}
			if h.HasProducerID() {
				var m *record.Marker
				if h.IsControl() {
					if pm, err := record.ParseMarker(b[:h.Size()]); err == nil {
						m = &pm
					}
				}
				txn.update(h, m)
			}
			off = h.NextOffset()
			b = b[h.Size():]
		}
	}
	for i := range headers {
		if replicated {
			break
		}
		h := &headers[i]
		h.BaseOffset = off
		if leaderEpoch >= 0 {
			h.PartitionLeaderEpoch = leaderEpoch
		}
		if logAppendTime >= 0 {
			h.Attributes |= attrLogAppendTime
			h.MaxTimestamp = logAppendTime
		}
		if marker != nil {
			if err := txn.checkMarker(*marker); err != nil {
				return AppendResult{}, err
			}
			txn.update(*h, marker)
			off = h.NextOffset()
			continue
		}
		if origin == originCoordinator {
			if err := txn.checkEpoch(*h); err != nil {
				return AppendResult{}, err
			}
			txn.update(*h, nil)
			off = h.NextOffset()
			continue
		}
		dup, err := txn.check(*h)
		if err != nil {
			return AppendResult{}, err
		}
		if guard != nil && dup == nil {
			if err := txn.checkGuard(*h, *guard); err != nil {
				return AppendResult{}, err
			}
		}
		if dup != nil {
			if len(headers) > 1 {
				return AppendResult{}, fmt.Errorf("storage: batch %d duplicates producer %d sequence %d: %w",
					i, h.ProducerID, h.BaseSequence, kerr.DuplicateSequenceNumber)
			}
			return AppendResult{
				BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset,
				LogAppendTime: -1, LogStartOffset: l.LogStartOffset(), Duplicate: true,
			}, nil
		}
		txn.update(*h, nil)
		off = h.NextOffset()
	}
	for b, i := records, 0; i < len(headers) && !replicated; i++ {
		h := headers[i]
		record.SetBaseOffset(b, h.BaseOffset)
		if leaderEpoch >= 0 {
			record.SetPartitionLeaderEpoch(b, leaderEpoch)
		}
		if logAppendTime >= 0 {
			record.SetLogAppendTime(b[:h.Size()], logAppendTime)
		}
		b = b[h.Size():]
	}

	if s := l.active(); s.size > 0 && (s.size+int64(len(records)) > cfg.SegmentBytes ||
		nowMs-s.rollTs > cfg.SegmentMs || off-1-s.base > math.MaxInt32) {
		if err := l.roll(cfg); err != nil {
			return AppendResult{}, err
		}
	}

	s := l.active()
	pos := s.size
	if _, err := s.f.WriteAt(records, pos); err != nil {
		_ = s.f.Truncate(pos)
		return AppendResult{}, fmt.Errorf("storage: write segment: %w", err)
	}
	first, last := headers[0].BaseOffset, headers[len(headers)-1].LastOffset()
	l.segMu.Lock()
	if s.size == 0 {
		s.rollTs = nowMs
	}
	for _, h := range headers {
		s.track(h, pos, cfg.IndexIntervalBytes)
		pos += int64(h.Size())
	}
	epochChanged := false
	if replicated {
		for _, h := range headers {
			epochChanged = l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) || epochChanged
		}
	} else {
		epochChanged = l.epochs.assign(leaderEpoch, first)
	}
	s.aborted = append(s.aborted, txn.aborted...)
	l.leo.Store(last + 1)
	logStart := l.logStart
	l.segMu.Unlock()
	txn.commit()
	if txn.txn {
		l.firstUnstable.Store(l.producers.firstUnstable())
	}
	if epochChanged {
		if err := l.epochs.write(); err != nil {
			l.logger.Warn("writing leader epoch checkpoint", "err", err)
		}
	}
	return AppendResult{BaseOffset: first, LastOffset: last, LogAppendTime: logAppendTime, LogStartOffset: logStart}, nil
}

// roll seals the active segment and starts a new one at the log end
// offset. Under FlushAlways the sealed segment is synced before returning
// (it is almost entirely synced already); otherwise in the background. The
// caller holds mu.
func (l *Log) roll(cfg Config) error {
	old := l.active()
	s, err := createSegment(l.dir, l.leo.Load())
	if err != nil {
		return err
	}
	l.segMu.Lock()
	old.finish()
	l.segMu.Unlock()
	if cfg.Flush == FlushAlways {
		if err := old.f.Sync(); err != nil {
			_ = s.remove()
			return fmt.Errorf("storage: sync rolled segment: %w", err)
		}
	} else {
		l.bg.Add(1)
		go func(f *os.File) {
			defer l.bg.Done()
			if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
				l.logger.Warn("syncing rolled segment", "err", err)
			}
		}(old.f)
	}
	if err := old.writeIndexes(cfg.Flush == FlushAlways); err != nil {
		l.logger.Warn("writing indexes of rolled segment", "segment", old.base, "err", err)
	}
	// Before the snapshot at the new base: recovery replays from the
	// snapshot, so the sealed segment's aborted index must exist by then.
	if err := old.writeTxnIndex(true); err != nil {
		l.logger.Warn("writing aborted transaction index of rolled segment", "segment", old.base, "err", err)
	}
	l.segMu.Lock()
	l.segs = append(l.segs, s)
	l.segMu.Unlock()
	if err := l.producers.writeSnapshot(l.dir, s.base); err != nil {
		l.logger.Warn("writing producer snapshot", "err", err)
	}
	l.logger.Debug("rolled segment", "base_offset", s.base)
	return nil
}

// groupSync coalesces fsyncs: one goroutine syncs while the others wait,
// and every waiter whose data the sync covered returns with it.
type groupSync struct {
	mu      sync.Mutex
	cond    *sync.Cond
	synced  int64 // offsets below this are durable
	running bool
	gen     uint64 // bumped by truncation, which invalidates synced
}

func (g *groupSync) init() { g.cond = sync.NewCond(&g.mu) }

// waitFor returns once offsets below target are durable, syncing itself if
// no sync is running. force syncs even if target is already covered.
func (g *groupSync) waitFor(_ context.Context, l *Log, target int64, force bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for force || g.synced < target {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		gen := g.gen
		g.mu.Unlock()
		to, err := l.syncData()
		g.mu.Lock()
		g.running = false
		if err == nil && gen == g.gen && to > g.synced {
			g.synced = to
		}
		g.cond.Broadcast()
		if err != nil {
			return err
		}
		force = false
	}
	return nil
}

// reset lowers the durable mark after a truncation to off.
func (g *groupSync) reset(off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	g.synced = min(g.synced, off)
}

// syncData fsyncs the active segment and returns the log end offset it
// covers. It reads the end offset before choosing the segment, so data up
// to it is either in that segment or in a sealed, already synced one.
func (l *Log) syncData() (int64, error) {
	l.segMu.RLock()
	if len(l.segs) == 0 {
		l.segMu.RUnlock()
		return 0, ErrClosed
	}
	to := l.leo.Load()
	f := l.active().f
	l.segMu.RUnlock()
	start := time.Now()
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		return 0, err
	}
	if l.onSync != nil {
		l.onSync(time.Since(start))
	}
	return to, nil
}
