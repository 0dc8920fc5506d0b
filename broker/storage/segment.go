package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/internal/durable"
)

// File name suffixes, as Kafka names them.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	txnIndexSuffix  = ".txnindex"
	cleanedSuffix   = ".cleaned"
	tmpSuffix       = ".tmp"
)

// indexEntry maps the base offset of a batch, relative to the segment's base
// offset, to the batch's file position. It is the .index file's entry.
type indexEntry struct {
	rel uint32
	pos uint32
}

// timeEntry records that no batch before the one at base offset rel (relative)
// has a timestamp above ts, and that this batch holds ts. It is the
// .timeindex file's entry.
type timeEntry struct {
	ts  int64
	rel uint32
}

// segment is one .log file with its indexes. Its mutable fields are guarded
// by Log.segMu (written with both Log.mu and segMu held, so the writer may
// read them holding only Log.mu); the file is written only by the holder of
// Log.mu, always past size, which readers never look beyond.
type segment struct {
	base int64
	path string // directory and zero-padded base offset, without suffix
	f    *os.File

	size        int64 // bytes of whole batches in f
	next        int64 // offset after the last batch, base when empty
	index       []indexEntry
	tindex      []timeEntry
	maxTs       int64 // largest batch max timestamp, -1 when none
	maxTsOffset int64 // base offset of the batch holding maxTs
	rollTs      int64 // wall-clock ms that segment.ms counts from, 0 before the first append
	// aborted is the aborted transaction index: the transactions whose
	// abort marker is in this segment, in marker order (.txnindex).
	aborted []AbortedTxn

	sinceIndex int64 // bytes appended since the last index entry; writer only
}

func segmentPath(dir string, base int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", base))
}

// parseSegmentName returns the base offset of a "NNNN.log" file name.
func parseSegmentName(name string) (int64, bool) {
	s, ok := strings.CutSuffix(name, logSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(s, 10, 64)
	return base, err == nil && base >= 0
}

// createSegment creates an empty segment file, truncating any old one.
func createSegment(dir string, base int64) (*segment, error) {
	p := segmentPath(dir, base)
	f, err := os.OpenFile(p+logSuffix, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: create segment: %w", err)
	}
	_ = os.Remove(p + indexSuffix)
	_ = os.Remove(p + timeIndexSuffix)
	_ = os.Remove(p + txnIndexSuffix)
	return &segment{base: base, path: p, f: f, next: base, maxTs: -1, maxTsOffset: -1}, nil
}

// openSegment opens an existing segment file without reading it.
func openSegment(dir string, base int64) (*segment, error) {
	p := segmentPath(dir, base)
	f, err := os.OpenFile(p+logSuffix, os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("storage: open segment: %w", err)
	}
	return &segment{base: base, path: p, f: f, next: base, maxTs: -1, maxTsOffset: -1}, nil
}

// track updates the segment's metadata and indexes for a batch written at
// pos. Append and recovery both use it, so a rebuilt index is identical to
// the one built while appending.
func (s *segment) track(h record.Header, pos int64, interval int32) {
	if s.size > 0 && s.sinceIndex > int64(interval) {
		s.index = append(s.index, indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)})
		s.sinceIndex = 0
		if s.maxTs >= 0 && (len(s.tindex) == 0 || s.maxTs > s.tindex[len(s.tindex)-1].ts) {
			s.tindex = append(s.tindex, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOffset - s.base)})
		}
	}
	s.sinceIndex += int64(h.Size())
	if h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.BaseOffset
	}
	s.size = pos + int64(h.Size())
	s.next = h.NextOffset()
}

// reset forgets the segment's contents, for a rescan.
func (s *segment) reset() {
	s.size, s.next, s.index, s.tindex = 0, s.base, nil, nil
	s.maxTs, s.maxTsOffset, s.sinceIndex = -1, -1, 0
}

// lookup returns the position of the last indexed batch whose base offset is
// at most off, or 0.
func (s *segment) lookup(off int64) int64 {
	rel := off - s.base
	if rel <= 0 {
		return 0
	}
	if rel > math.MaxUint32 {
		rel = math.MaxUint32
	}
	i := sort.Search(len(s.index), func(i int) bool { return int64(s.index[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.index[i-1].pos)
}

// lookupTime returns the position from which to scan for the first batch
// with max timestamp >= ts: every batch before it has a smaller timestamp.
func (s *segment) lookupTime(ts int64) int64 {
	i := sort.Search(len(s.tindex), func(i int) bool { return s.tindex[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return s.lookup(s.base + int64(s.tindex[i-1].rel))
}

// scan reads the segment file from position 0, validating every batch
// (CRC included) and rebuilding the indexes. It returns the end of the last
// good batch; anything after it is torn or corrupt. visit, if not nil, sees
// every good header.
func (s *segment) scan(interval int32, visit func(record.Header)) (int64, error) {
	s.reset()
	fi, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("storage: scan %s: %w", s.path, err)
	}
	fileSize := fi.Size()
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, fileSize), 1<<20)
	var (
		pos int64
		buf []byte
	)
	for {
		hb, err := r.Peek(record.HeaderSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return pos, nil
			}
			return pos, fmt.Errorf("storage: scan %s: %w", s.path, err)
		}
		h, err := record.ParseHeader(hb)
		if err != nil || !s.fits(h) || int64(h.Size()) > fileSize-pos {
			return pos, nil // also keeps a corrupt length from allocating
		}
		if cap(buf) < h.Size() {
			buf = make([]byte, h.Size())
		}
		buf = buf[:h.Size()]
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return pos, nil
			}
			return pos, fmt.Errorf("storage: scan %s: %w", s.path, err)
		}
		if _, err := record.Validate(buf); err != nil {
			return pos, nil
		}
		s.track(h, pos, interval)
		if visit != nil {
			visit(h)
		}
		pos += int64(h.Size())
	}
}

// fits reports whether a batch header read at the segment's end can follow
// what the segment already holds.
func (s *segment) fits(h record.Header) bool {
	return h.BaseOffset >= s.next && h.LastOffset() >= h.BaseOffset &&
		h.LastOffset()-s.base <= math.MaxInt32 && s.size+int64(h.Size()) <= math.MaxInt32
}

// peekHeader reads the batch header at pos.
func (s *segment) peekHeader(pos int64) (record.Header, error) {
	var hb [record.HeaderSize]byte
	if _, err := s.f.ReadAt(hb[:], pos); err != nil {
		return record.Header{}, err
	}
	return record.ParseHeader(hb[:])
}

// loadIndexes reads the segment's index files and checks them against the
// log file, walking batch headers from the last index entry to the end. It
// returns false when anything is off; the caller then rescans.
func (s *segment) loadIndexes(interval int32) bool {
	s.reset()
	fi, err := s.f.Stat()
	if err != nil || fi.Size() > math.MaxInt32 {
		return false
	}
	fileSize := fi.Size()
	idx, err := os.ReadFile(s.path + indexSuffix)
	if err != nil || len(idx)%8 != 0 {
		return false
	}
	tidx, err := os.ReadFile(s.path + timeIndexSuffix)
	if err != nil || len(tidx)%12 != 0 {
		return false
	}
	for b := idx; len(b) > 0; b = b[8:] {
		e := indexEntry{rel: binary.BigEndian.Uint32(b), pos: binary.BigEndian.Uint32(b[4:])}
		if n := len(s.index); n > 0 && (e.rel <= s.index[n-1].rel || e.pos <= s.index[n-1].pos) || int64(e.pos) >= fileSize {
			return false
		}
		s.index = append(s.index, e)
	}
	for b := tidx; len(b) > 0; b = b[12:] {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b)), rel: binary.BigEndian.Uint32(b[8:])}
		if n := len(s.tindex); n > 0 && e.ts <= s.tindex[n-1].ts {
			return false
		}
		s.tindex = append(s.tindex, e)
	}
	// Walk the tail from the last index entry to find the end offset and
	// to check that the index points at batch boundaries.
	var pos int64
	if n := len(s.index); n > 0 {
		pos = int64(s.index[n-1].pos)
	}
	if n := len(s.tindex); n > 0 {
		s.maxTs, s.maxTsOffset = s.tindex[n-1].ts, s.base+int64(s.tindex[n-1].rel)
	}
	first := true
	for pos < fileSize {
		h, err := s.peekHeader(pos)
		if err != nil || h.Size() > int(fileSize-pos) || h.BaseOffset < s.base || h.LastOffset()-s.base > math.MaxInt32 {
			return false
		}
		if first && len(s.index) > 0 && h.BaseOffset != s.base+int64(s.index[len(s.index)-1].rel) {
			return false
		}
		first = false
		if h.MaxTimestamp > s.maxTs {
			s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.BaseOffset
		}
		s.next = h.NextOffset()
		pos += int64(h.Size())
	}
	s.size = fileSize
	return true
}

// writeIndexes persists the in-memory indexes, replacing the files
// atomically, and fsyncs them if sync is set.
func (s *segment) writeIndexes(sync bool) error {
	idx := make([]byte, 0, 8*len(s.index))
	for _, e := range s.index {
		idx = binary.BigEndian.AppendUint32(idx, e.rel)
		idx = binary.BigEndian.AppendUint32(idx, e.pos)
	}
	tidx := make([]byte, 0, 12*len(s.tindex))
	for _, e := range s.tindex {
		tidx = binary.BigEndian.AppendUint64(tidx, uint64(e.ts))
		tidx = binary.BigEndian.AppendUint32(tidx, e.rel)
	}
	write := durable.WriteFileNoSync
	if sync {
		write = durable.WriteFile
	}
	if err := write(s.path+indexSuffix, idx, 0o644); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if err := write(s.path+timeIndexSuffix, tidx, 0o644); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// finish adds the final time index entry for a segment that stops being
// active, as Kafka does, so the time index covers the whole segment.
func (s *segment) finish() {
	if s.maxTs >= 0 && (len(s.tindex) == 0 || s.maxTs > s.tindex[len(s.tindex)-1].ts) {
		s.tindex = append(s.tindex, timeEntry{ts: s.maxTs, rel: uint32(s.maxTsOffset - s.base)})
	}
}

// remove closes the segment and deletes its files.
func (s *segment) remove() error {
	_ = s.f.Close()
	var errs []error
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if err := os.Remove(s.path + suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lastModifiedMs returns the log file's modification time in milliseconds,
// the retention fallback for segments without timestamps.
func (s *segment) lastModifiedMs() int64 {
	fi, err := s.f.Stat()
	if err != nil {
		return time.Now().UnixMilli()
	}
	return fi.ModTime().UnixMilli()
}

// attrLogAppendTime is the batch attribute bit for log append time.
const attrLogAppendTime = 0x08

// txnIndexEntrySize is the size of one .txnindex entry, as Kafka writes it:
// version int16 (0), producer id, first offset, last offset and last stable
// offset, int64 each, big endian.
const txnIndexEntrySize = 34

// loadTxnIndex reads the segment's aborted transaction index. A missing or
// malformed file yields an empty index; recovery replays what it must.
func (s *segment) loadTxnIndex() {
	s.aborted = nil
	b, err := os.ReadFile(s.path + txnIndexSuffix)
	if err != nil || len(b)%txnIndexEntrySize != 0 {
		return
	}
	var out []AbortedTxn
	for ; len(b) > 0; b = b[txnIndexEntrySize:] {
		a := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		}
		if binary.BigEndian.Uint16(b) != 0 || a.FirstOffset > a.LastOffset || a.LastOffset < s.base ||
			(len(out) > 0 && a.LastOffset <= out[len(out)-1].LastOffset) {
			return
		}
		out = append(out, a)
	}
	s.aborted = out
}

// writeTxnIndex persists the aborted transaction index, removing the file
// when it is empty, and fsyncs it if sync is set.
func (s *segment) writeTxnIndex(sync bool) error {
	if len(s.aborted) == 0 {
		if err := os.Remove(s.path + txnIndexSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("storage: %w", err)
		}
		return nil
	}
	b := make([]byte, 0, txnIndexEntrySize*len(s.aborted))
	for _, a := range s.aborted {
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
		b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
	}
	write := durable.WriteFileNoSync
	if sync {
		write = durable.WriteFile
	}
	if err := write(s.path+txnIndexSuffix, b, 0o644); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
