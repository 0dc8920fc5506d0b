package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

// compact runs log compaction over the sealed segments that are older than
// min.compaction.lag.ms: it keeps, per key, only the record with the highest
// offset, drops records without a key, and drops tombstones whose timestamp
// is older than delete.retention.ms. Each batch keeps its base offset and
// offset range; a batch that loses records is re-encoded uncompressed with
// the survivors' original offset and timestamp deltas, a batch that loses
// all is dropped, and an untouched batch is copied byte for byte. Every
// cleaned segment is written to NNNN.log.cleaned, synced and renamed over
// the original, so a crash leaves either the old or the new file.
//
// Compaction runs under maintMu only: sealed segments change only under
// maintMu, so appends and reads continue while it reads and writes; mu and
// segMu are taken just to swap a cleaned segment in.
//
// Transactions are cleaned as Kafka's cleaner does: only segments below the
// first unstable offset are cleaned (an open transaction's records may still
// abort); records of aborted transactions (from the aborted transaction
// indexes) are removed and never count as a key's latest value; a transaction
// marker stays while any record of its transaction is kept, and once none is,
// until delete.retention.ms after the marker was written, so a read_committed
// consumer that read the records also sees how the transaction ended.
func (l *Log) compact(cfg Config, nowMs int64) error {
	l.mu.Lock()
	if err := l.checkOpen(); err != nil {
		l.mu.Unlock()
		return err
	}
	unstable := l.firstUnstable.Load()
	l.segMu.RLock()
	var segs []*segment
	for _, s := range l.segs[:len(l.segs)-1] {
		if cfg.MinCompactionLagMs > 0 && s.maxTs > nowMs-cfg.MinCompactionLagMs {
			break
		}
		if unstable >= 0 && s.next > unstable {
			break
		}
		segs = append(segs, s)
	}
	aborted := make(map[int64][]AbortedTxn)
	for _, s := range l.segs {
		for _, a := range s.aborted {
			aborted[a.ProducerID] = append(aborted[a.ProducerID], a)
		}
	}
	l.segMu.RUnlock()
	l.mu.Unlock()
	if len(segs) == 0 {
		return nil
	}
	end := segs[len(segs)-1].next
	if end <= l.cleanedTo && nowMs < l.tombstoneExpiry {
		return nil // nothing new, and no retained tombstone has expired
	}

	isAborted := func(h record.Header) bool {
		if !h.IsTransactional() || h.IsControl() {
			return false
		}
		for _, a := range aborted[h.ProducerID] {
			if a.FirstOffset <= h.BaseOffset && h.BaseOffset <= a.LastOffset {
				return true
			}
		}
		return false
	}
	latest := make(map[string]int64)
	for _, s := range segs {
		err := forEachBatch(s, func(h record.Header, b []byte) error {
			if h.IsControl() || isAborted(h) {
				return nil
			}
			recs, err := record.Records(b)
			if err != nil {
				return err
			}
			for i := range recs {
				if recs[i].Key != nil {
					latest[string(recs[i].Key)] = h.BaseOffset + int64(recs[i].OffsetDelta)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: compaction of segment %d: %w", s.base, err)
		}
	}

	c := cleaner{cfg: cfg, nowMs: nowMs, latest: latest, expiry: math.MaxInt64,
		isAborted: isAborted, txnKept: make(map[int64]bool)}
	for _, s := range segs {
		if err := l.cleanSegment(&c, s); err != nil {
			return err
		}
	}
	l.cleanedTo = end
	l.tombstoneExpiry = c.expiry
	return nil
}

// cleaner holds one compaction pass's decisions.
type cleaner struct {
	cfg    Config
	nowMs  int64
	latest map[string]int64
	expiry int64 // earliest time a kept tombstone or marker may go

	isAborted func(record.Header) bool
	// txnKept records, per producer, whether its transaction since its last
	// marker kept any record; batches are cleaned in offset order.
	txnKept map[int64]bool
}

// keep reports whether the record at off with timestamp ts survives.
func (c *cleaner) keep(r *kmsg.Record, off, ts int64) bool {
	if r.Key == nil || c.latest[string(r.Key)] != off {
		return false
	}
	if r.Value == nil {
		if c.nowMs-ts > c.cfg.DeleteRetentionMs {
			return false
		}
		c.expiry = min(c.expiry, ts+c.cfg.DeleteRetentionMs+1)
	}
	return true
}

// clean returns the batch rewritten to hold only surviving records, the
// batch itself if all survive, or nil if none do.
func (c *cleaner) clean(h record.Header, b []byte) ([]byte, error) {
	if h.IsControl() {
		kept := c.txnKept[h.ProducerID]
		delete(c.txnKept, h.ProducerID)
		if kept || !h.HasProducerID() {
			return b, nil
		}
		if c.nowMs-h.MaxTimestamp > c.cfg.DeleteRetentionMs {
			return nil, nil
		}
		c.expiry = min(c.expiry, h.MaxTimestamp+c.cfg.DeleteRetentionMs+1)
		return b, nil
	}
	if c.isAborted(h) {
		return nil, nil
	}
	out, err := c.cleanRecords(h, b)
	if err == nil && out != nil && h.IsTransactional() {
		c.txnKept[h.ProducerID] = true
	}
	return out, err
}

// cleanRecords is clean for a data batch.
func (c *cleaner) cleanRecords(h record.Header, b []byte) ([]byte, error) {
	recs, err := record.Records(b)
	if err != nil {
		return nil, err
	}
	kept := recs[:0]
	maxTs := int64(-1)
	for i := range recs {
		r := &recs[i]
		ts := h.BaseTimestamp + r.TimestampDelta64
		if h.IsLogAppendTime() {
			ts = h.MaxTimestamp
		}
		if c.keep(r, h.BaseOffset+int64(r.OffsetDelta), ts) {
			kept = append(kept, *r)
			maxTs = max(maxTs, ts)
		}
	}
	switch {
	case len(kept) == 0:
		return nil, nil
	case len(kept) == int(h.RecordCount):
		return b, nil
	}
	nh := h
	if !h.IsLogAppendTime() {
		nh.MaxTimestamp = maxTs
	}
	return record.Encode(nil, nh, kept), nil
}

// cleanSegment writes the cleaned copy of s and swaps it in if it differs.
func (l *Log) cleanSegment(c *cleaner, s *segment) (err error) {
	cf, err := os.OpenFile(s.path+logSuffix+cleanedSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("storage: compaction: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = cf.Close()
			_ = os.Remove(cf.Name())
		}
	}()
	ns := &segment{base: s.base, path: s.path, f: cf, next: s.base, maxTs: -1, maxTsOffset: -1}
	w := bufio.NewWriterSize(cf, 1<<20)
	changed := false
	interval := l.interval.Load()
	err = forEachBatch(s, func(h record.Header, b []byte) error {
		out, err := c.clean(h, b)
		if err != nil {
			return err
		}
		if len(out) != len(b) {
			changed = true
		}
		if out == nil {
			return nil
		}
		nh, _ := record.ParseHeader(out)
		ns.track(nh, ns.size, interval)
		_, err = w.Write(out)
		return err
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil && changed {
		err = cf.Sync()
	}
	if err != nil {
		return fmt.Errorf("storage: compaction of segment %d: %w", s.base, err)
	}
	if !changed {
		return nil
	}
	ns.next = max(ns.next, s.next) // keep the offset range even if the tail went
	ns.rollTs = s.rollTs
	ns.aborted = s.aborted
	ns.finish()

	l.mu.Lock()
	defer l.mu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	i := -1
	for j, cur := range l.segs {
		if cur == s {
			i = j
		}
	}
	if i < 0 || i == len(l.segs)-1 {
		return nil // deleted or somehow active again; drop the work
	}
	l.readers.Wait()
	// Remove the old indexes first: if we crash after the rename they are
	// rebuilt from the new file instead of pointing into it wrongly.
	_ = os.Remove(s.path + indexSuffix)
	_ = os.Remove(s.path + timeIndexSuffix)
	if err := os.Rename(cf.Name(), s.path+logSuffix); err != nil {
		return fmt.Errorf("storage: compaction swap: %w", err)
	}
	swapped = true
	_ = s.f.Close()
	l.segs[i] = ns
	if err := ns.writeIndexes(false); err != nil {
		l.logger.Warn("writing indexes of compacted segment", "segment", s.base, "err", err)
	}
	l.logger.Info("compacted segment", "base_offset", s.base, "bytes_before", s.size, "bytes_after", ns.size)
	return nil
}

// forEachBatch streams the whole batches of s; b is only valid during fn.
func forEachBatch(s *segment, fn func(h record.Header, b []byte) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, s.size), 1<<20)
	var (
		buf []byte
		pos int64
	)
	for {
		hb, err := r.Peek(record.HeaderSize)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		h, err := record.ParseHeader(hb)
		if err != nil {
			return err
		}
		if int64(h.Size()) > s.size-pos {
			return fmt.Errorf("batch at %d overruns the segment", pos)
		}
		pos += int64(h.Size())
		if cap(buf) < h.Size() {
			buf = make([]byte, h.Size())
		}
		buf = buf[:h.Size()]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if err := fn(h, buf); err != nil {
			return err
		}
	}
}
