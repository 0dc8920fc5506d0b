package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/durable"
)

// Maintain runs one step of housekeeping as of now: rolling an active
// segment older than segment.ms, retention by retention.ms (segment max
// timestamp) and retention.bytes for delete topics, removal of segments
// below the log start offset, and compaction for compact topics. The active
// segment is never deleted or compacted; when every segment has expired the
// active one is rolled first so that it can go, as Kafka does. The broker
// calls Maintain periodically.
func (l *Log) Maintain(now time.Time) error {
	l.maintMu.Lock()
	defer l.maintMu.Unlock()
	cfg := l.config()
	nowMs := now.UnixMilli()

	l.mu.Lock()
	if err := l.checkOpen(); err != nil {
		l.mu.Unlock()
		return err
	}
	if s := l.active(); s.size > 0 && nowMs-s.rollTs > cfg.SegmentMs {
		if err := l.roll(cfg); err != nil {
			l.mu.Unlock()
			return err
		}
	}
	l.mu.Unlock()

	var errs []error
	if cfg.deleteRetention() {
		errs = append(errs, l.applyRetention(cfg, nowMs))
	}
	errs = append(errs, l.deleteSegmentsBelowStart())
	if cfg.compact() {
		errs = append(errs, l.compact(cfg, nowMs))
	}
	return errors.Join(errs...)
}

// applyRetention deletes the oldest segments that are past retention.ms or
// that push the log over retention.bytes. The caller holds maintMu.
func (l *Log) applyRetention(cfg Config, nowMs int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	expired := func(s *segment) bool {
		if cfg.RetentionMs < 0 {
			return false
		}
		ts := s.maxTs
		if ts < 0 {
			ts = s.lastModifiedMs()
		}
		return nowMs-ts > cfg.RetentionMs
	}
	var size int64
	for _, s := range l.segs {
		size += s.size
	}
	n := 0
	for i, s := range l.segs {
		overSize := cfg.RetentionBytes >= 0 && size-s.size >= cfg.RetentionBytes
		if !(expired(s) || overSize) || (i == len(l.segs)-1 && s.size == 0) {
			break // an empty active segment stays
		}
		n++
		size -= s.size
	}
	if n == 0 {
		return nil
	}
	if n == len(l.segs) {
		// Everything expired: seal the active segment so it can go too
		// (only time retention gets here; size retention never empties
		// the log).
		if err := l.roll(cfg); err != nil {
			return err
		}
	}
	return l.deleteFirstSegments(n, "retention")
}

// deleteSegmentsBelowStart deletes segments that end at or before the log
// start offset. The caller holds maintMu.
func (l *Log) deleteSegmentsBelowStart() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n].next <= l.logStart && l.segs[n+1].base <= l.logStart {
		n++
	}
	if n == 0 {
		return nil
	}
	return l.deleteFirstSegments(n, "log start offset")
}

// deleteFirstSegments removes the n oldest segments, never the active one,
// and moves the log start offset to the new first segment if needed. The
// caller holds mu.
func (l *Log) deleteFirstSegments(n int, reason string) error {
	n = min(n, len(l.segs)-1)
	if n <= 0 {
		return nil
	}
	l.segMu.Lock()
	gone := l.segs[:n:n]
	l.segs = append([]*segment(nil), l.segs[n:]...)
	if l.segs[0].base > l.logStart {
		l.logStart = l.segs[0].base
	}
	l.epochs.truncateBefore(l.logStart)
	logStart := l.logStart
	l.readers.Wait()
	l.segMu.Unlock()

	var errs []error
	for _, s := range gone {
		l.logger.Info("deleting segment", "reason", reason, "base_offset", s.base, "next_offset", s.next, "bytes", s.size)
		errs = append(errs, s.remove())
	}
	errs = append(errs, l.epochs.write())
	errs = append(errs, writeLogStart(l.dir, logStart))
	return errors.Join(errs...)
}

func writeLogStart(dir string, off int64) error {
	return durable.WriteFile(filepath.Join(dir, logStartFile), []byte(strconv.FormatInt(off, 10)+"\n"), 0o644)
}

// DeleteRecordsBefore answers DeleteRecords: it moves the log start offset
// up to offset (it never moves back), persists it, deletes whole segments
// below it and returns the new log start offset. It returns an error
// wrapping kerr.OffsetOutOfRange if offset is beyond the log end offset.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.maintMu.Lock()
	defer l.maintMu.Unlock()
	l.mu.Lock()
	if err := l.checkOpen(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	leo := l.leo.Load()
	if offset < 0 || offset > leo {
		l.mu.Unlock()
		return 0, fmt.Errorf("storage: delete records before %d, log end offset %d: %w", offset, leo, kerr.OffsetOutOfRange)
	}
	l.segMu.Lock()
	if offset <= l.logStart {
		start := l.logStart
		l.segMu.Unlock()
		l.mu.Unlock()
		return start, nil
	}
	l.logStart = offset
	l.epochs.truncateBefore(offset)
	l.segMu.Unlock()
	err := writeLogStart(l.dir, offset)
	if err == nil {
		err = l.epochs.write()
	}
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return offset, l.deleteSegmentsBelowStart()
}

// TruncateTo drops every record at or after offset, for a follower whose
// log diverged from the leader. Batches are dropped whole: a batch that
// straddles offset is removed entirely, so the log end offset may end up
// below offset. Truncating at or beyond the log end offset does nothing.
func (l *Log) TruncateTo(offset int64) error {
	l.maintMu.Lock()
	defer l.maintMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	if offset >= l.leo.Load() {
		return nil
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.readers.Wait()
	if offset < l.logStart {
		offset = l.logStart
	}
	// Drop whole segments at or after offset, keeping the first one as
	// the (emptied) active segment if everything goes.
	var gone []*segment
	for len(l.segs) > 1 && l.active().base >= offset {
		gone = append(gone, l.active())
		l.segs = l.segs[:len(l.segs)-1]
	}
	s := l.active()
	pos := int64(0)
	if offset > s.base {
		// Keep every batch that ends before offset.
		for pos = s.lookup(offset); pos < s.size; {
			h, err := s.peekHeader(pos)
			if err != nil {
				return fmt.Errorf("storage: truncate: %w", err)
			}
			if h.LastOffset() >= offset {
				break
			}
			pos += int64(h.Size())
		}
	}
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("storage: truncate: %w", err)
	}
	// Rebuild the segment's indexes from what is left.
	if _, err := s.scan(l.cfg.IndexIntervalBytes, nil); err != nil {
		return err
	}
	if s.size != pos {
		l.logger.Warn("truncated segment rescanned shorter", "want_bytes", pos, "bytes", s.size)
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("storage: truncate: %w", err)
		}
	}
	s.rollTs = l.now().UnixMilli()
	for _, g := range gone {
		_ = g.remove()
	}
	_ = os.Remove(s.path + indexSuffix)
	_ = os.Remove(s.path + timeIndexSuffix)
	leo := s.next
	l.leo.Store(leo)
	l.logStart = min(l.logStart, leo)
	l.epochs.truncateFrom(leo)
	l.sync.reset(leo)
	// Producer state: reload the newest snapshot at or before the new end
	// and replay from there.
	ps, from := loadSnapshot(l.dir, leo)
	if err := l.replayProducers(ps, from); err != nil {
		return err
	}
	l.setProducers(ps)
	if err := s.writeTxnIndex(false); err != nil {
		return err
	}
	return l.epochs.write()
}

// TruncateFullyAndStartAt empties the log and makes it start and end at
// offset, Kafka's truncateFullyAndStartAt: a follower whose log ends below
// the leader's log start offset (the leader deleted those records, by
// retention or DeleteRecords) can never fetch what it misses, so it starts
// over at the leader's log start. Producer state and leader epochs go with
// the records.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("storage: start at offset %d: %w", offset, kerr.OffsetOutOfRange)
	}
	l.maintMu.Lock()
	defer l.maintMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	l.segMu.Lock()
	defer l.segMu.Unlock()
	l.readers.Wait()
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.remove())
	}
	s, err := createSegment(l.dir, offset)
	if err != nil {
		// No segment is left to serve from: closed, so every use fails
		// plainly and a restart recovers the directory.
		l.segs, l.closed = nil, true
		return errors.Join(append(errs, err)...)
	}
	l.segs = []*segment{s}
	l.logStart = offset
	l.leo.Store(offset)
	l.epochs.reset()
	l.sync.reset(offset)
	if offs, err := snapshotOffsets(l.dir); err == nil {
		for _, off := range offs {
			_ = os.Remove(snapshotPath(l.dir, off))
		}
	}
	l.setProducers(newProducerState())
	l.cleanedTo, l.tombstoneExpiry, l.markerHorizon = offset, 0, nil
	l.logger.Info("log emptied to start at the leader's log start offset", "offset", offset)
	errs = append(errs, writeLogStart(l.dir, offset), l.epochs.write())
	return errors.Join(errs...)
}
