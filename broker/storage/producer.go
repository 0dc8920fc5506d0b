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

// producerState tracks idempotent producers of one partition, Kafka's
// ProducerStateManager. It is guarded by Log.mu.
type producerState struct {
	producers map[int64]*producerEntry
}

func newProducerState() *producerState {
	return &producerState{producers: make(map[int64]*producerEntry)}
}

// producerTxn stages the effect of one Append on producer state, so that a
// refused append changes nothing.
type producerTxn struct {
	ps      *producerState
	changed map[int64]*producerEntry
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

// update records a batch that now has its offsets.
func (t *producerTxn) update(h record.Header) {
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
			e = &producerEntry{epoch: h.ProducerEpoch}
		}
		t.changed[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.epoch {
		e.epoch, e.batches = h.ProducerEpoch, e.batches[:0]
	}
	if h.IsControl() {
		return
	}
	e.add(h)
}

func (t *producerTxn) commit() {
	maps.Copy(t.ps.producers, t.changed)
}

// observe applies a batch read back from the log (recovery) to the state.
func (ps *producerState) observe(h record.Header) {
	t := ps.begin()
	t.update(h)
	t.commit()
}

// Snapshot file layout, all big endian: version uint16, count uint32, then
// per producer: id int64, epoch int16, lastTs int64, n uint8, n times
// (firstSeq, lastSeq int32, firstOffset, lastOffset int64); then a CRC32C of
// everything before it.
const snapshotVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (ps *producerState) encode() []byte {
	b := binary.BigEndian.AppendUint16(nil, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps.producers)))
	for _, id := range slices.Sorted(maps.Keys(ps.producers)) {
		e := ps.producers[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTs))
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
	if binary.BigEndian.Uint16(b) != snapshotVersion {
		return nil, errBadSnapshot
	}
	n := binary.BigEndian.Uint32(b[2:])
	b = b[6:]
	ps := newProducerState()
	for range n {
		if len(b) < 19 {
			return nil, errBadSnapshot
		}
		id := int64(binary.BigEndian.Uint64(b))
		e := &producerEntry{epoch: int16(binary.BigEndian.Uint16(b[8:])), lastTs: int64(binary.BigEndian.Uint64(b[10:]))}
		nb := int(b[18])
		b = b[19:]
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
