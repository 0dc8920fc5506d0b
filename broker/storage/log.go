// Package storage is one partition's durable, segmented log with Kafka
// semantics: offset assignment, sparse offset and time indexes, recovery of
// torn tails, idempotent producer deduplication, retention, compaction and
// the leader epoch cache.
//
// A Log directory holds, like Kafka's:
//
//	NNNN.log / .index / .timeindex   segments named by their base offset
//	NNNN.txnindex                    aborted transactions whose marker is in the segment
//	NNNN.snapshot                    producer state as of offset NNNN
//	leader-epoch-checkpoint          start offset of each leader epoch
//	log-start-offset                 the log start offset set by DeleteRecords
//
// # Locking
//
// Lock order, outermost first: maintMu, mu, segMu, sync.mu.
//
//   - maintMu serializes Maintain, TruncateTo, DeleteRecordsBefore and Close
//     so that compaction can read sealed segments without holding mu.
//   - mu serializes writers: Append, roll, and every change to segments,
//     producer state and the epoch cache. The write syscall happens under mu;
//     the fsync never does.
//   - segMu (RWMutex) guards the segment list, each segment's metadata and
//     indexes, the log start offset and the epoch cache for readers. Read
//     holds it shared only for the index lookup and registers its pread in
//     Log.readers; writers take it exclusively only to publish. Whoever
//     closes, truncates or replaces a segment file holds segMu exclusively
//     and first waits for Log.readers, so no pread sees a closed file.
//   - sync.mu guards the group commit state.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/record"
)

// logStartFile holds the log start offset, in decimal, when DeleteRecords
// moved it past the first segment's base offset.
const logStartFile = "log-start-offset"

// ErrClosed is returned by operations on a closed Log.
var ErrClosed = errors.New("storage: log closed")

// Log is one partition's log. All methods are safe for concurrent use.
type Log struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time
	onSync func(time.Duration) // Config.OnSync, fixed at Open

	maintMu sync.Mutex
	mu      sync.Mutex
	segMu   sync.RWMutex

	// Guarded by mu.
	cfg       Config
	producers *producerState
	closed    bool

	// Guarded by segMu (written with mu held too).
	segs     []*segment
	logStart int64
	epochs   *epochCache

	leo atomic.Int64 // log end offset, published after each append
	// firstUnstable is the first offset of the oldest open transaction, -1
	// when none is open; published after each append.
	firstUnstable atomic.Int64
	interval      atomic.Int32 // index.interval.bytes, for readers
	maxMessage    atomic.Int32 // max.message.bytes, checked before taking mu

	sync    groupSync
	bg      sync.WaitGroup // background fsyncs of rolled segments
	readers sync.WaitGroup // preads in flight; Add under segMu shared, Wait under segMu exclusive

	// Compaction progress, guarded by maintMu: offsets below cleanedTo
	// were compacted, and no kept tombstone expires before tombstoneExpiry.
	cleanedTo       int64
	tombstoneExpiry int64
}

// Open opens the log in dir, creating the directory if needed, and recovers
// it: leftovers of interrupted compaction are removed, the last segment is
// scanned batch by batch and truncated after its last valid batch, missing
// or inconsistent indexes are rebuilt, and producer state is loaded from the
// newest snapshot and replayed from the log. A nil logger discards logs.
func Open(dir string, cfg Config, logger *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	l := &Log{dir: dir, logger: logger.With("dir", dir), now: time.Now, cfg: cfg, onSync: cfg.OnSync}
	l.interval.Store(cfg.IndexIntervalBytes)
	l.maxMessage.Store(cfg.MaxMessageBytes)
	l.sync.init()
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			_ = s.f.Close()
		}
		return nil, err
	}
	return l, nil
}

func (l *Log) recover() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, tmpSuffix) {
			// An interrupted compaction or checkpoint write; the
			// original file is still in place.
			_ = os.Remove(filepath.Join(l.dir, name))
			continue
		}
		if base, ok := parseSegmentName(name); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)

	if l.epochs, err = loadEpochCache(l.dir); err != nil {
		return err
	}
	l.logStart = readLogStart(l.dir)
	interval := l.cfg.IndexIntervalBytes
	for i, base := range bases {
		s, err := openSegment(l.dir, base)
		if err != nil {
			return err
		}
		s.loadTxnIndex()
		l.segs = append(l.segs, s)
		last := i == len(bases)-1
		if !last && s.loadIndexes(interval) {
			continue
		}
		end, err := s.scan(interval, func(h record.Header) {
			if last {
				l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset)
			}
		})
		if err != nil {
			return err
		}
		if fi, err := s.f.Stat(); err == nil && fi.Size() != end {
			l.logger.Warn("truncating torn or corrupt segment tail",
				"segment", filepath.Base(s.path), "valid_bytes", end, "file_bytes", fi.Size())
			if err := s.f.Truncate(end); err != nil {
				return fmt.Errorf("storage: truncate %s: %w", s.path, err)
			}
		}
		if !last {
			s.finish()
			if err := s.writeIndexes(false); err != nil {
				return err
			}
		}
	}
	if len(l.segs) == 0 {
		s, err := createSegment(l.dir, max(l.logStart, 0))
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}
	active := l.active()
	if active.size > 0 {
		if fi, err := active.f.Stat(); err == nil {
			active.rollTs = fi.ModTime().UnixMilli()
		}
	}
	leo := active.next
	l.leo.Store(leo)
	l.logStart = min(max(l.logStart, l.segs[0].base), leo)
	l.epochs.truncateFrom(leo)
	l.epochs.truncateBefore(l.logStart)

	ps, from := loadSnapshot(l.dir, leo)
	if err := l.replayProducers(ps, from); err != nil {
		return err
	}
	l.setProducers(ps)
	l.logger.Debug("opened log", "segments", len(l.segs), "log_start_offset", l.logStart, "log_end_offset", leo)
	return nil
}

// replayProducers applies every batch at or after offset from to ps by
// walking batch headers (reading control batches whole for their marker),
// and rebuilds the aborted transaction index from there: entries whose
// marker is at or after from are dropped and found again. The caller holds
// mu and segMu, or is Open.
func (l *Log) replayProducers(ps *producerState, from int64) error {
	for _, s := range l.segs {
		s.aborted = slices.DeleteFunc(s.aborted, func(a AbortedTxn) bool { return a.LastOffset >= from })
	}
	for _, s := range l.segs {
		if s.next <= from {
			continue
		}
		pos := s.lookup(from)
		for pos < s.size {
			h, err := s.peekHeader(pos)
			if err != nil {
				return fmt.Errorf("storage: replay producer state: %w", err)
			}
			if h.LastOffset() >= from {
				var marker *record.Marker
				if h.IsControl() && h.HasProducerID() {
					marker = s.readMarker(pos, h)
				}
				s.aborted = append(s.aborted, ps.observe(h, marker)...)
			}
			pos += int64(h.Size())
		}
	}
	return nil
}

// readMarker decodes the transaction marker of the control batch at pos,
// or returns nil if it holds none (Kafka ignores unknown control records).
func (s *segment) readMarker(pos int64, h record.Header) *record.Marker {
	b := make([]byte, h.Size())
	if _, err := s.f.ReadAt(b, pos); err != nil {
		return nil
	}
	m, err := record.ParseMarker(b)
	if err != nil {
		return nil
	}
	return &m
}

// setProducers installs recovered producer state; the caller holds mu or
// is Open.
func (l *Log) setProducers(ps *producerState) {
	l.producers = ps
	l.firstUnstable.Store(ps.firstUnstable())
}

// FirstUnstableOffset returns the first offset of the oldest transaction
// still open on this log, or -1 when none is. The last stable offset is the
// smaller of it and the high watermark.
func (l *Log) FirstUnstableOffset() int64 { return l.firstUnstable.Load() }

// AbortedTxns answers a read_committed fetch of [from, upTo): the aborted
// transactions with data in that range, from the aborted transaction
// indexes of the segment holding from and the later ones, stopping, as
// Kafka does, at the first entry whose last stable offset reaches upTo
// (every transaction that began before upTo has ended by then).
func (l *Log) AbortedTxns(from, upTo int64) []AbortedTxn {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var out []AbortedTxn
	if len(l.segs) == 0 {
		return nil
	}
	for _, s := range l.segs[l.segmentFor(from):] {
		for _, a := range s.aborted {
			if a.LastOffset >= from && a.FirstOffset < upTo {
				out = append(out, a)
			}
			if a.LastStableOffset >= upTo {
				return out
			}
		}
	}
	return out
}

func readLogStart(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, logStartFile))
	if err != nil {
		return 0
	}
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || off < 0 {
		return 0
	}
	return off
}

// active returns the last segment; the caller holds mu or segMu.
func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// LogStartOffset returns the first offset that can be read.
func (l *Log) LogStartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.logStart
}

// LogEndOffset returns the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// Size returns the bytes held by all segments.
func (l *Log) Size() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// NumSegments returns the number of segments, the active one included.
func (l *Log) NumSegments() int {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return len(l.segs)
}

// LatestEpoch returns the newest leader epoch that appended, or -1.
func (l *Log) LatestEpoch() int32 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.epochs.latest()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest known epoch
// not above epoch and the offset where it ended (the start of the next
// epoch, or the log end offset for the latest epoch). It returns (-1, -1)
// when epoch is unknown and newer than every cached epoch, or the cache is
// empty.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.leo.Load())
}

// SetConfig applies a new configuration; an invalid one is ignored with a
// logged error. Retention and compaction changes take effect at the next
// Maintain.
func (l *Log) SetConfig(cfg Config) {
	if err := cfg.Validate(); err != nil {
		l.logger.Error("ignoring invalid log config", "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	l.interval.Store(cfg.IndexIntervalBytes)
	l.maxMessage.Store(cfg.MaxMessageBytes)
}

func (l *Log) config() Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

// segmentFor returns the index of the segment that may hold off: the last
// one whose base offset is at most off. The caller holds segMu.
func (l *Log) segmentFor(off int64) int {
	i, found := slices.BinarySearchFunc(l.segs, off, func(s *segment, off int64) int {
		switch {
		case s.base < off:
			return -1
		case s.base > off:
			return 1
		}
		return 0
	})
	if found {
		return i
	}
	return max(i-1, 0)
}

// Read returns whole batches, exactly as stored, starting with the batch
// that contains offset and holding only batches whose base offset is below
// maxOffset (the high watermark). It returns at most maxBytes unless the
// first batch alone is larger, in which case it returns that batch (KIP-74).
// Data comes from one segment per call, as in Kafka. Read returns an error
// wrapping kerr.OffsetOutOfRange if offset is below the log start offset or
// above the log end offset, and an empty non-nil slice at the end.
//
// The segment lookup happens under segMu; the pread does not, so appends
// never wait for disk reads. Operations that close or shrink files first
// wait for in-flight reads (Log.readers).
func (l *Log) Read(offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	b, err := l.ReadAppend(nil, offset, maxBytes, maxOffset)
	if b == nil && err == nil {
		b = []byte{}
	}
	return b, err
}

// ReadAppend is Read appending to dst and returning the extended slice, so a
// caller can read many partitions into one reused buffer without allocating
// and zeroing a new one per read. The data read is the suffix of the result
// beyond len(dst).
func (l *Log) ReadAppend(dst []byte, offset int64, maxBytes int32, maxOffset int64) ([]byte, error) {
	first := true
	for {
		l.segMu.RLock()
		if len(l.segs) == 0 {
			l.segMu.RUnlock()
			return dst, ErrClosed
		}
		leo := l.leo.Load()
		if first && (offset < l.logStart || offset > leo) {
			l.segMu.RUnlock()
			return dst, fmt.Errorf("storage: offset %d outside [%d, %d]: %w", offset, l.logStart, leo, kerr.OffsetOutOfRange)
		}
		first = false
		maxOffset = min(maxOffset, leo)
		var s *segment
		for i := l.segmentFor(offset); i < len(l.segs) && offset < maxOffset; i++ {
			if c := l.segs[i]; c.next > offset && c.size > 0 {
				s = c // else compaction or recovery left a gap
				break
			}
		}
		if s == nil {
			l.segMu.RUnlock()
			return dst, nil
		}
		pos, size, next := s.lookup(offset), s.size, s.next
		l.readers.Add(1)
		l.segMu.RUnlock()
		b, exhausted, err := l.readSegment(dst, s, pos, size, offset, maxBytes, maxOffset)
		l.readers.Done()
		if err != nil || len(b) > len(dst) || !exhausted {
			return b, err
		}
		offset = next
	}
}

// readSegment reads from one segment, from the index position pos up to
// size, with usually a single pread: a window of maxBytes plus one index
// interval, cut at batch boundaries in memory. exhausted reports that the
// segment holds nothing at or after offset.
func (l *Log) readSegment(dst []byte, s *segment, pos, size, offset int64, maxBytes int32, maxOffset int64) (_ []byte, exhausted bool, _ error) {
	window := int64(max(maxBytes, 0)) + int64(l.interval.Load()) + record.HeaderSize
	for {
		n := min(window, size-pos)
		if n <= 0 {
			return dst, true, nil
		}
		base := len(dst)
		dst = slices.Grow(dst, int(n))
		buf := dst[base : base+int(n)]
		if _, err := s.f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return dst[:base], false, fmt.Errorf("storage: read %s: %w", s.path, err)
		}
		start, end, next, stop := -1, 0, 0, false
	scan:
		for h, b := range record.Batches(buf) {
			switch {
			case h.LastOffset() < offset:
				next += len(b)
			case h.BaseOffset >= maxOffset:
				stop = true
				break scan
			case start < 0:
				start, end = next, next+len(b)
				next = end
			case end-start+len(b) <= int(maxBytes):
				end += len(b)
				next = end
			default:
				break scan
			}
		}
		if start >= 0 {
			copy(buf, buf[start:end])
			return dst[:base+end-start], false, nil
		}
		dst = dst[:base]
		if stop {
			return dst, false, nil
		}
		if pos+int64(next) >= size {
			return dst, true, nil
		}
		// The window ended inside a batch before finding a whole one:
		// resume at the first incomplete batch and make sure it fits.
		pos += int64(next)
		h, err := s.peekHeader(pos)
		if err != nil {
			return dst, false, fmt.Errorf("storage: read %s: %w", s.path, err)
		}
		window = max(window, int64(h.Size()))
	}
}

// OffsetForTimestamp answers ListOffsets for a timestamp: the offset and
// timestamp of the first record whose timestamp is at least ts, found
// through the time index. ok is false when no batch has a timestamp that
// late.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	for _, s := range l.segs {
		if s.maxTs < ts || s.next <= l.logStart {
			continue
		}
		for pos := s.lookupTime(ts); pos < s.size; {
			h, err := s.peekHeader(pos)
			if err != nil {
				return -1, -1, false
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= l.logStart {
				off, t := l.firstRecordAtOrAfter(s, pos, h, ts)
				return max(off, l.logStart), t, true
			}
			pos += int64(h.Size())
		}
	}
	return -1, -1, false
}

// firstRecordAtOrAfter decodes the batch at pos to find its first record
// with a timestamp at least ts. It falls back to the batch's base offset
// and max timestamp when the batch cannot be decoded or uses log append
// time (where every record has the max timestamp).
func (l *Log) firstRecordAtOrAfter(s *segment, pos int64, h record.Header, ts int64) (int64, int64) {
	if h.IsLogAppendTime() {
		return h.BaseOffset, h.MaxTimestamp
	}
	buf := make([]byte, h.Size())
	if _, err := s.f.ReadAt(buf, pos); err != nil {
		return h.BaseOffset, h.MaxTimestamp
	}
	recs, err := record.Records(buf)
	if err != nil {
		return h.BaseOffset, h.MaxTimestamp
	}
	for _, r := range recs {
		if t := h.BaseTimestamp + r.TimestampDelta64; t >= ts {
			return h.BaseOffset + int64(r.OffsetDelta), t
		}
	}
	return h.BaseOffset, h.MaxTimestamp
}

// MaxTimestamp answers ListOffsets with timestamp -3 (KIP-734): the largest
// timestamp in the log and the offset of the first record that has it, or
// (-1, -1) for a log without timestamps.
func (l *Log) MaxTimestamp() (offset, timestamp int64) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var best *segment
	for _, s := range l.segs {
		if s.maxTs >= 0 && (best == nil || s.maxTs > best.maxTs) {
			best = s
		}
	}
	if best == nil {
		return -1, -1
	}
	pos := best.lookup(best.maxTsOffset)
	for pos < best.size {
		h, err := best.peekHeader(pos)
		if err != nil {
			break
		}
		if h.BaseOffset == best.maxTsOffset {
			off, ts := l.firstRecordAtOrAfter(best, pos, h, best.maxTs)
			return off, ts
		}
		pos += int64(h.Size())
	}
	return best.maxTsOffset, best.maxTs
}

// Flush fsyncs everything appended so far. The broker calls it every flush
// interval under FlushInterval.
func (l *Log) Flush() error {
	return l.sync.waitFor(context.Background(), l, l.leo.Load(), true)
}

// Close flushes the log, writes the active segment's indexes and a producer
// state snapshot, and closes every file. Further calls return ErrClosed.
func (l *Log) Close() error {
	l.maintMu.Lock()
	defer l.maintMu.Unlock()
	return l.close()
}

func (l *Log) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.mu.Unlock()
	l.bg.Wait()
	errs := []error{l.Flush()}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.readers.Wait()
	active := l.active()
	active.finish()
	errs = append(errs, active.writeIndexes(true))
	errs = append(errs, active.writeTxnIndex(true))
	errs = append(errs, l.producers.writeSnapshot(l.dir, l.leo.Load()))
	for _, s := range l.segs {
		errs = append(errs, s.f.Close())
	}
	l.segs = nil
	return errors.Join(errs...)
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	err := l.Close()
	if err != nil && !errors.Is(err, ErrClosed) {
		l.logger.Warn("closing log before delete", "err", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("storage: delete log: %w", err)
	}
	return nil
}

// checkOpen returns ErrClosed after Close; the caller holds mu.
func (l *Log) checkOpen() error {
	if l.closed {
		return ErrClosed
	}
	return nil
}
