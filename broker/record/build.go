package record

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Build returns an uncompressed batch holding recs at offsets baseOffset,
// baseOffset+1, ..., with base timestamp ts, no producer ID (-1) and no
// sequence (-1), the way the broker writes its own records such as
// __consumer_offsets commits. Each record's TimestampDelta64 is kept; its
// OffsetDelta and Length are replaced.
func Build(baseOffset, ts int64, recs []kmsg.Record) []byte {
	h := Header{
		BaseOffset:           baseOffset,
		PartitionLeaderEpoch: -1,
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		BaseSequence:         -1,
	}
	for i := range recs {
		recs[i].OffsetDelta = int32(i)
		h.MaxTimestamp = max(h.MaxTimestamp, ts+recs[i].TimestampDelta64)
	}
	if len(recs) > 0 {
		h.LastOffsetDelta = int32(len(recs) - 1)
	}
	return Encode(nil, h, recs)
}

// Encode appends to dst an uncompressed batch with the header fields of h
// (base offset, leader epoch, attributes other than the codec, last offset
// delta, timestamps and producer fields) holding recs with their own offset
// and timestamp deltas. Magic, length, CRC and record count are computed.
// Compaction uses it to rewrite a batch with fewer records but the same
// offsets; the caller keeps LastOffsetDelta covering every record.
func Encode(dst []byte, h Header, recs []kmsg.Record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	b := dst[start:]
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(h.PartitionLeaderEpoch))
	b[offMagic] = Magic
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes&^attrCompressionMask))
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	binary.BigEndian.PutUint32(b[offRecordCount:], uint32(len(recs)))
	for i := range recs {
		dst = AppendRecord(dst, &recs[i])
	}
	b = dst[start:]
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-lengthFieldEnd))
	updateCRC(b)
	return dst
}

// AppendRecord appends the v2 encoding of r to dst, computing its length
// field. A nil Key or Value is encoded as null (length -1), so a nil Value
// is a tombstone. TimestampDelta64 is used, or TimestampDelta if it is zero.
func AppendRecord(dst []byte, r *kmsg.Record) []byte {
	tsDelta := r.TimestampDelta64
	if tsDelta == 0 {
		tsDelta = int64(r.TimestampDelta)
	}
	bodyLen := 1 + varlongLen(tsDelta) + varlongLen(int64(r.OffsetDelta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varlongLen(int64(len(r.Headers)))
	for i := range r.Headers {
		bodyLen += varlongLen(int64(len(r.Headers[i].Key))) + len(r.Headers[i].Key) + bytesLen(r.Headers[i].Value)
	}
	dst = binary.AppendVarint(dst, int64(bodyLen))
	dst = append(dst, byte(r.Attributes))
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, int64(r.OffsetDelta))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for i := range r.Headers {
		dst = binary.AppendVarint(dst, int64(len(r.Headers[i].Key)))
		dst = append(dst, r.Headers[i].Key...)
		dst = appendBytes(dst, r.Headers[i].Value)
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varlongLen(int64(len(b))) + len(b)
}

// varlongLen returns the size of the zig-zag varint encoding of v.
func varlongLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
