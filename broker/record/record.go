// Package record reads, checks, patches and builds Kafka v2 record batches
// (magic 2, the only format Sluice serves).
//
// A batch on the wire and on disk is laid out as:
//
//	baseOffset           int64  @0
//	batchLength          int32  @8   bytes after this field
//	partitionLeaderEpoch int32  @12
//	magic                int8   @16
//	crc                  uint32 @17  CRC32C over bytes [21:end]
//	attributes           int16  @21
//	lastOffsetDelta      int32  @23
//	baseTimestamp        int64  @27
//	maxTimestamp         int64  @35
//	producerId           int64  @43
//	producerEpoch        int16  @51
//	baseSequence         int32  @53
//	recordCount          int32  @57
//	records                     @61
//
// The broker stores batches exactly as producers sent them; only the base
// offset and partition leader epoch are patched in place (they sit before the
// CRC'd range), and LogAppendTime topics rewrite the max timestamp and
// recompute the CRC. Errors wrap *kerr.Error values so that the caller can
// return the Kafka error code with errors.As.
package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kerr"
)

// HeaderSize is the size in bytes of a v2 batch header, up to and including
// the record count.
const HeaderSize = 61

// Magic is the only batch format version this package understands.
const Magic = 2

// Byte positions of the header fields.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// lengthFieldEnd is where the bytes counted by batchLength start.
	lengthFieldEnd = 12
)

// Attribute bits.
const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// Compression is a batch's compression codec, the low three attribute bits.
type Compression int8

// The codecs Kafka defines; values 5 to 7 are invalid.
const (
	CompressionNone   Compression = 0
	CompressionGzip   Compression = 1
	CompressionSnappy Compression = 2
	CompressionLZ4    Compression = 3
	CompressionZstd   Compression = 4
)

// String returns the codec's Kafka name, as in compression.type.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", int8(c))
}

// crcTable is the Castagnoli table the batch CRC uses; it is read-only.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Header is a decoded v2 batch header.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Compression returns the batch's compression codec.
func (h Header) Compression() Compression { return Compression(h.Attributes & attrCompressionMask) }

// IsLogAppendTime reports whether the batch's timestamps are broker append
// times rather than producer create times.
func (h Header) IsLogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// IsTransactional reports whether the batch belongs to a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch holds control records (transaction
// markers) rather than user data.
func (h Header) IsControl() bool { return h.Attributes&attrControl != 0 }

// LastOffset returns the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset returns the offset that follows the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Size returns the whole batch size in bytes, including the offset and
// length fields.
func (h Header) Size() int { return int(h.Length) + lengthFieldEnd }

// HasProducerID reports whether the batch was written by an idempotent or
// transactional producer.
func (h Header) HasProducerID() bool { return h.ProducerID >= 0 }

// LastSequence returns the sequence number of the batch's last record,
// wrapping at the int32 maximum as Kafka does.
func (h Header) LastSequence() int32 {
	return IncrementSequence(h.BaseSequence, h.LastOffsetDelta)
}

// IncrementSequence returns seq advanced by n, wrapping from the int32
// maximum back to zero like Kafka's DefaultRecordBatch.incrementSequence.
func IncrementSequence(seq, n int32) int32 {
	if seq > 1<<31-1-n {
		return n - (1<<31 - 1 - seq) - 1
	}
	return seq + n
}

// corrupt returns an error wrapping kerr.CorruptMessage.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("record: "+format+": %w", append(args, kerr.CorruptMessage)...)
}

// ParseHeader decodes the batch header at the start of b. It checks only that
// the header is present and that the batch length is plausible; it does not
// require the whole batch to be in b (use Validate for that).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, corrupt("batch header needs %d bytes, have %d", HeaderSize, len(b))
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		Length:               int32(binary.BigEndian.Uint32(b[offLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[offRecordCount:])),
	}
	if h.Magic != Magic {
		// The magic byte sits at 16 in every message format, so this
		// check is meaningful even for v0/v1 message sets.
		if h.Magic >= 0 && h.Magic < Magic {
			return h, fmt.Errorf("record: magic %d: %w", h.Magic, kerr.UnsupportedForMessageFormat)
		}
		return h, corrupt("unknown magic %d", h.Magic)
	}
	if h.Length < HeaderSize-lengthFieldEnd {
		return h, corrupt("batch length %d below minimum %d", h.Length, HeaderSize-lengthFieldEnd)
	}
	return h, nil
}

// Validate checks the batch at the start of b: magic, lengths, CRC, codec
// and that the record count fits the offset range. Bytes in b after the
// batch (h.Size()) are ignored, so callers step through a message set with
// b = b[h.Size():]. Batches rewritten by compaction may have fewer records
// than their offset range; producer input should be checked with
// ValidateProduced instead.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() > len(b) {
		return h, corrupt("batch of %d bytes truncated to %d", h.Size(), len(b))
	}
	if crc := crc32.Checksum(b[offAttributes:h.Size()], crcTable); crc != h.CRC {
		return h, corrupt("crc %08x, batch says %08x", crc, h.CRC)
	}
	if c := h.Compression(); c > CompressionZstd {
		return h, corrupt("unknown compression codec %d", c)
	}
	if h.LastOffsetDelta < 0 || h.RecordCount < 0 || int64(h.RecordCount) > int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("record: %d records with last offset delta %d: %w",
			h.RecordCount, h.LastOffsetDelta, kerr.InvalidRecord)
	}
	if h.Compression() == CompressionNone && int64(h.RecordCount)*minRecordSize > int64(h.Size()-HeaderSize) {
		return h, corrupt("%d records cannot fit in %d bytes", h.RecordCount, h.Size()-HeaderSize)
	}
	return h, nil
}

// ValidateProduced is Validate plus the rules for batches coming from a
// producer: at least one record, and exactly one record per offset.
func ValidateProduced(b []byte) (Header, error) {
	h, err := Validate(b)
	if err != nil {
		return h, err
	}
	if h.RecordCount == 0 || int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("record: %d records with last offset delta %d: %w",
			h.RecordCount, h.LastOffsetDelta, kerr.InvalidRecord)
	}
	return h, nil
}

// minRecordSize is the smallest encoding of one record: length, attributes,
// timestamp delta, offset delta, key length, value length, header count.
const minRecordSize = 7

// SetBaseOffset overwrites the base offset of the batch at the start of b.
// The field is outside the CRC'd range, so the CRC stays valid.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch overwrites the partition leader epoch of the batch
// at the start of b. The field is outside the CRC'd range.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch at the start of b as carrying log append
// time, sets its max timestamp to ts and recomputes the CRC, as Kafka does
// for topics with message.timestamp.type=LogAppendTime. b must hold the
// whole batch.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | attrLogAppendTime
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	updateCRC(b)
}

// updateCRC recomputes the CRC of the whole batch at the start of b.
func updateCRC(b []byte) {
	size := int(int32(binary.BigEndian.Uint32(b[offLength:]))) + lengthFieldEnd
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:size], crcTable))
}
