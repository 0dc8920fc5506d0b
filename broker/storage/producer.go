package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/internal/durable"
)

// producerBatchesKept is how many recent batches per producer are remembered
// for duplicate detection, Kafka's NUM_BATCHES_TO_RETAIN (the client's
// max.in.flight.requests.per.connection limit for idempotence).
const producerBatchesKept = 5

// snapshotSuffix names producer state snapshot files, NNNN.snapshot where
// NNNN is the log end offset they were taken at.
const snapshotSuffix = ".snapshot"

// producerBatch is what the log remembers of one idempotent batch.
type producerBatch struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
}

// producerEntry is the state of one producer ID, Kafka's ProducerStateEntry.
type producerEntry struct {
	epoch   int16
	batches []producerBatch // oldest first, at most producerBatchesKept
	lastTs  int64           // max timestamp of the last batch
	// coordEpoch is the coordinator epoch of the last transaction marker,
	// -1 before any: a marker from an older coordinator is fenced.
	coordEpoch int32
	// txnFirst is the first offset of the producer's ongoing transaction
	// on this partition, -1 when none is open.
	txnFirst int64
	// markers counts the transaction markers written for the producer
	// since the log was opened: KIP-890's verification guard. Not in
	// snapshots; a guard never outlives the process that took it.
	markers uint64
}

func newProducerEntry(epoch int16) *producerEntry {
	return &producerEntry{epoch: epoch, coordEpoch: -1, txnFirst: -1}
}

func (e *producerEntry) clone() *producerEntry {
	c := *e
	c.batches = slices.Clone(e.batches)
	return &c
}

func (e *producerEntry) add(h record.Header) {
	if len(e.batches) == producerBatchesKept {
		e.batches = append(e.batches[:0], e.batches[1:]...)
	}
	e.batches = append(e.batches, producerBatch{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		firstOffset: h.BaseOffset, lastOffset: h.LastOffset(),
	})
	e.lastTs = h.MaxTimestamp
}

// producerState tracks idempotent and transactional producers of one
// partition, Kafka's ProducerStateManager. It is guarded by Log.mu.
type producerState struct {
	producers map[int64]*producerEntry
	// ongoing maps the producers with an open transaction to its first
	// offset; the smallest is the first unstable offset, which bounds the
	// last stable offset.
	ongoing map[int64]int64
}

func newProducerState() *producerState {
	return &producerState{producers: make(map[int64]*producerEntry), ongoing: make(map[int64]int64)}
}

// firstUnstable returns the first offset of the oldest open transaction,
// or -1 when none is open.
func (ps *producerState) firstUnstable() int64 {
	first := int64(-1)
	for _, off := range ps.ongoing {
		if first < 0 || off < first {
			first = off
		}
	}
	return first
}

// AbortedTxn is one entry of a segment's aborted transaction index, Kafka's
// AbortedTxn: the producer, the offsets of the transaction's first batch
// and of its abort marker, and the last stable offset once it was aborted
// (the first offset of the oldest transaction still open then, else the
// marker's offset + 1). A read_committed consumer drops the producer's
// transactional batches from FirstOffset until the marker.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

// producerTxn stages the effect of one Append on producer state, so that a
// refused append changes nothing.
type producerTxn struct {
	ps      *producerState
	changed map[int64]*producerEntry
	// txn is set once a transactional or control batch was staged: only
	// then does commit update the open transactions.
	txn bool
	// aborted lists the transactions that abort markers of this append
	// ended, in offset order.
	aborted []AbortedTxn
}

func (ps *producerState) begin() *producerTxn {
	return &producerTxn{ps: ps}
}

func (t *producerTxn) get(pid int64) *producerEntry {
	if e, ok := t.changed[pid]; ok {
		return e
	}
	return t.ps.producers[pid]
}

// check validates the sequence of a batch that has not got its offsets yet.
// It returns the original batch if h duplicates a recent one.
func (t *producerTxn) check(h record.Header) (*producerBatch, error) {
	if !h.HasProducerID() || h.IsControl() {
		return nil, nil
	}
	e := t.get(h.ProducerID)
	if e != nil && e.txnFirst >= 0 && !h.IsTransactional() && h.ProducerEpoch == e.epoch {
		return nil, fmt.Errorf("storage: producer %d wrote a non-transactional batch inside its open transaction: %w",
			h.ProducerID, kerr.InvalidTxnState)
	}
	switch {
	case e == nil:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("storage: unknown producer %d starts at sequence %d: %w",
				h.ProducerID, h.BaseSequence, kerr.OutOfOrderSequenceNumber)
		}
	case h.ProducerEpoch < e.epoch:
		return nil, fmt.Errorf("storage: producer %d epoch %d is older than %d: %w",
			h.ProducerID, h.ProducerEpoch, e.epoch, kerr.InvalidProducerEpoch)
	case h.ProducerEpoch > e.epoch || len(e.batches) == 0:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("storage: producer %d epoch %d starts at sequence %d: %w",
				h.ProducerID, h.ProducerEpoch, h.BaseSequence, kerr.OutOfOrderSequenceNumber)
		}
	default:
		for i := range e.batches {
			b := &e.batches[i]
			if b.firstSeq == h.BaseSequence && b.lastSeq == h.LastSequence() {
				return b, nil
			}
		}
		last := e.batches[len(e.batches)-1].lastSeq
		if want := record.IncrementSequence(last, 1); h.BaseSequence != want {
			return nil, fmt.Errorf("storage: producer %d sequence %d, expected %d: %w",
				h.ProducerID, h.BaseSequence, want, kerr.OutOfOrderSequenceNumber)
		}
	}
	return nil, nil
}

// checkGuard refuses a transactional batch that would start a transaction
// when a marker was written for its producer since guard was taken.
func (t *producerTxn) checkGuard(h record.Header, guard uint64) error {
	if !h.IsTransactional() {
		return nil
	}
	e := t.get(h.ProducerID)
	var markers uint64
	if e != nil {
		if e.txnFirst >= 0 && e.epoch == h.ProducerEpoch {
			return nil
		}
		markers = e.markers
	}
	if markers != guard {
		return fmt.Errorf("storage: producer %d's transaction ended while the partition was verified: %w",
			h.ProducerID, kerr.InvalidTxnState)
	}
	return nil
}

// checkEpoch refuses a coordinator-written batch from an older producer
// epoch; coordinators write no sequences.
func (t *producerTxn) checkEpoch(h record.Header) error {
	if e := t.get(h.ProducerID); h.HasProducerID() && e != nil && h.ProducerEpoch < e.epoch {
		return fmt.Errorf("storage: producer %d epoch %d is older than %d: %w",
			h.ProducerID, h.ProducerEpoch, e.epoch, kerr.InvalidProducerEpoch)
	}
	return nil
}

// checkMarker validates a transaction marker the leader is about to write
// for the coordinator (WriteTxnMarkers): it must not come from an older
// producer epoch (INVALID_PRODUCER_EPOCH) or an older coordinator epoch than
// the producer's last marker (TRANSACTION_COORDINATOR_FENCED).
func (t *producerTxn) checkMarker(m record.Marker) error {
	e := t.get(m.ProducerID)
	if e == nil {
		return nil
	}
	if m.ProducerEpoch < e.epoch {
		return fmt.Errorf("storage: marker for producer %d epoch %d, producer is at epoch %d: %w",
			m.ProducerID, m.ProducerEpoch, e.epoch, kerr.InvalidProducerEpoch)
	}
	if m.CoordinatorEpoch < e.coordEpoch {
		return fmt.Errorf("storage: marker for producer %d from coordinator epoch %d, last marker had %d: %w",
			m.ProducerID, m.CoordinatorEpoch, e.coordEpoch, kerr.TransactionCoordinatorFenced)
	}
	return nil
}

// update records a batch that now has its offsets. marker is the decoded
// end transaction marker of a control batch (nil for data batches, and for
// control batches that do not hold one, which change nothing but the epoch).
func (t *producerTxn) update(h record.Header, marker *record.Marker) {
	if !h.HasProducerID() {
		return
	}
	if t.changed == nil {
		t.changed = make(map[int64]*producerEntry)
	}
	e, ok := t.changed[h.ProducerID]
	if !ok {
		if old := t.ps.producers[h.ProducerID]; old != nil {
			e = old.clone()
		} else {
			e = newProducerEntry(h.ProducerEpoch)
		}
		t.changed[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.epoch {
		e.epoch, e.batches = h.ProducerEpoch, e.batches[:0]
	}
	if h.IsControl() {
		if marker == nil {
			return
		}
		t.txn = true
		e.markers++
		e.coordEpoch = marker.CoordinatorEpoch
		if e.txnFirst >= 0 && !marker.Commit {
			// The last stable offset once this transaction is gone:
			// the oldest other open one, else just past the marker.
			lso := h.BaseOffset + 1
			if first := t.firstUnstableExcept(h.ProducerID); first >= 0 {
				lso = min(lso, first)
			}
			t.aborted = append(t.aborted, AbortedTxn{
				ProducerID: h.ProducerID, FirstOffset: e.txnFirst,
				LastOffset: h.BaseOffset, LastStableOffset: lso,
			})
		}
		e.txnFirst = -1
		e.lastTs = h.MaxTimestamp
		return
	}
	if h.IsTransactional() {
		t.txn = true
		if e.txnFirst < 0 {
			e.txnFirst = h.BaseOffset
		}
	}
	e.add(h)
}

// firstUnstableExcept is the first offset of the oldest open transaction,
// as staged, other than pid's; -1 if none.
func (t *producerTxn) firstUnstableExcept(pid int64) int64 {
	first := int64(-1)
	consider := func(id, off int64) {
		if id != pid && off >= 0 && (first < 0 || off < first) {
			first = off
		}
	}
	for id, off := range t.ps.ongoing {
		if _, staged := t.changed[id]; !staged {
			consider(id, off)
		}
	}
	for id, e := range t.changed {
		consider(id, e.txnFirst)
	}
	return first
}

func (t *producerTxn) commit() {
	maps.Copy(t.ps.producers, t.changed)
	if !t.txn {
		return
	}
	for id, e := range t.changed {
		if e.txnFirst >= 0 {
			t.ps.ongoing[id] = e.txnFirst
		} else {
			delete(t.ps.ongoing, id)
		}
	}
}

// observe applies a batch read back from the log (recovery, truncation) to
// the state and returns the transactions it aborted.
func (ps *producerState) observe(h record.Header, marker *record.Marker) []AbortedTxn {
	t := ps.begin()
	t.update(h, marker)
	t.commit()
	return t.aborted
}

// ProducerInfo describes one producer of a partition, as DescribeProducers
// reports it.
type ProducerInfo struct {
	ProducerID       int64
	ProducerEpoch    int16
	LastSequence     int32 // -1 when no batch of the current epoch is kept
	LastTimestamp    int64
	CoordinatorEpoch int32 // -1 before the first marker
	// CurrentTxnStartOffset is the first offset of the producer's open
	// transaction, -1 when none is open.
	CurrentTxnStartOffset int64
}

// Producers lists the producers the log tracks, by producer ID.
func (l *Log) Producers() []ProducerInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.producers == nil {
		return nil
	}
	out := make([]ProducerInfo, 0, len(l.producers.producers))
	for _, id := range slices.Sorted(maps.Keys(l.producers.producers)) {
		e := l.producers.producers[id]
		last := int32(-1)
		if n := len(e.batches); n > 0 {
			last = e.batches[n-1].lastSeq
		}
		out = append(out, ProducerInfo{
			ProducerID: id, ProducerEpoch: e.epoch, LastSequence: last, LastTimestamp: e.lastTs,
			CoordinatorEpoch: e.coordEpoch, CurrentTxnStartOffset: e.txnFirst,
		})
	}
	return out
}

// TxnGuard answers KIP-890's question before a transactional batch of
// producer pid at epoch: whether the producer has a transaction open on this
// partition at that epoch (then no verification with the coordinator is
// needed), and a guard to pass to AppendTransactional, which refuses to start
// a transaction if a marker was written for the producer after the guard was
// taken (the verified transaction ended meanwhile).
func (l *Log) TxnGuard(pid int64, epoch int16) (open bool, guard uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.producers == nil {
		return false, 0
	}
	e := l.producers.producers[pid]
	if e == nil {
		return false, 0
	}
	return e.txnFirst >= 0 && e.epoch == epoch, e.markers
}

// Snapshot file layout, all big endian: version uint16, count uint32, then
// per producer: id int64, epoch int16, lastTs int64, (version 2:)
// coordEpoch int32, txnFirst int64, n uint8, n times (firstSeq, lastSeq
// int32, firstOffset, lastOffset int64); then a CRC32C of everything before
// it. Version 1 snapshots (without transaction state) are still read.
const snapshotVersion = 2

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (ps *producerState) encode() []byte {
	b := binary.BigEndian.AppendUint16(nil, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps.producers)))
	for _, id := range slices.Sorted(maps.Keys(ps.producers)) {
		e := ps.producers[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTs))
		b = binary.BigEndian.AppendUint32(b, uint32(e.coordEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.txnFirst))
		b = append(b, byte(len(e.batches)))
		for _, pb := range e.batches {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.firstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.lastOffset))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadSnapshot = errors.New("storage: malformed producer snapshot")

func decodeProducerState(b []byte) (*producerState, error) {
	if len(b) < 10 || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, errBadSnapshot
	}
	b = b[:len(b)-4]
	version := binary.BigEndian.Uint16(b)
	if version != 1 && version != snapshotVersion {
		return nil, errBadSnapshot
	}
	fixed := 19
	if version >= 2 {
		fixed = 31
	}
	n := binary.BigEndian.Uint32(b[2:])
	b = b[6:]
	ps := newProducerState()
	for range n {
		if len(b) < fixed {
			return nil, errBadSnapshot
		}
		id := int64(binary.BigEndian.Uint64(b))
		e := newProducerEntry(int16(binary.BigEndian.Uint16(b[8:])))
		e.lastTs = int64(binary.BigEndian.Uint64(b[10:]))
		if version >= 2 {
			e.coordEpoch = int32(binary.BigEndian.Uint32(b[18:]))
			e.txnFirst = int64(binary.BigEndian.Uint64(b[22:]))
			if e.txnFirst >= 0 {
				ps.ongoing[id] = e.txnFirst
			}
		}
		nb := int(b[fixed-1])
		b = b[fixed:]
		if nb > producerBatchesKept || len(b) < nb*24 {
			return nil, errBadSnapshot
		}
		for range nb {
			e.batches = append(e.batches, producerBatch{
				firstSeq:    int32(binary.BigEndian.Uint32(b)),
				lastSeq:     int32(binary.BigEndian.Uint32(b[4:])),
				firstOffset: int64(binary.BigEndian.Uint64(b[8:])),
				lastOffset:  int64(binary.BigEndian.Uint64(b[16:])),
			})
			b = b[24:]
		}
		ps.producers[id] = e
	}
	if len(b) != 0 {
		return nil, errBadSnapshot
	}
	return ps, nil
}

// snapshotOffsets lists the offsets of the snapshot files in dir, ascending.
func snapshotOffsets(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var offs []int64
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), snapshotSuffix)
		if !ok || len(s) != 20 {
			continue
		}
		if off, err := strconv.ParseInt(s, 10, 64); err == nil {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	return offs, nil
}

func snapshotPath(dir string, off int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", off, snapshotSuffix))
}

// writeSnapshot stores the state as of offset off and keeps only the two
// newest snapshots.
func (ps *producerState) writeSnapshot(dir string, off int64) error {
	if err := durable.WriteFile(snapshotPath(dir, off), ps.encode(), 0o644); err != nil {
		return err
	}
	offs, err := snapshotOffsets(dir)
	if err != nil {
		return err
	}
	for i := 0; i < len(offs)-2; i++ {
		_ = os.Remove(snapshotPath(dir, offs[i]))
	}
	return nil
}

// loadSnapshot loads the newest readable snapshot taken at or before maxOff,
// deleting newer ones (they describe data that no longer exists). It returns
// the state and the offset to replay the log from.
func loadSnapshot(dir string, maxOff int64) (*producerState, int64) {
	offs, _ := snapshotOffsets(dir)
	for i := len(offs) - 1; i >= 0; i-- {
		if offs[i] > maxOff {
			_ = os.Remove(snapshotPath(dir, offs[i]))
			continue
		}
		b, err := os.ReadFile(snapshotPath(dir, offs[i]))
		if err != nil {
			continue
		}
		if ps, err := decodeProducerState(b); err == nil {
			return ps, offs[i]
		}
		_ = os.Remove(snapshotPath(dir, offs[i]))
	}
	return newProducerState(), -1
}
