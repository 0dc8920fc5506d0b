package record

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxDecompressedBytes bounds the records of one batch after decompression,
// so a small compressed batch cannot make the broker allocate without limit.
const MaxDecompressedBytes = 256 << 20

// Records decodes the records of the batch at the start of b, decompressing
// them if needed. The batch is validated first. For uncompressed batches the
// keys, values and header values alias b. A nil key or value is null (a nil
// value is a tombstone).
func Records(b []byte) ([]kmsg.Record, error) {
	h, err := Validate(b)
	if err != nil {
		return nil, err
	}
	raw, err := decompress(h.Compression(), b[HeaderSize:h.Size()])
	if err != nil {
		return nil, fmt.Errorf("record: decompressing %s batch at offset %d: %w: %w",
			h.Compression(), h.BaseOffset, err, kerr.CorruptMessage)
	}
	// Each record takes at least minRecordSize bytes, which bounds the
	// allocation however large the claimed count is.
	n := int(h.RecordCount)
	if limit := len(raw) / minRecordSize; n > limit {
		return nil, corrupt("%d records cannot fit in %d bytes", n, len(raw))
	}
	recs := make([]kmsg.Record, 0, n)
	for i := 0; i < n; i++ {
		var r kmsg.Record
		used, err := parseRecord(raw, &r)
		if err != nil {
			return nil, corrupt("record %d of batch at offset %d: %v", i, h.BaseOffset, err)
		}
		recs = append(recs, r)
		raw = raw[used:]
	}
	if len(raw) != 0 {
		return nil, corrupt("%d trailing bytes after %d records", len(raw), n)
	}
	return recs, nil
}

var errShort = errors.New("record truncated")

// reader is a tiny cursor over varint-encoded record fields.
type reader struct {
	b   []byte
	err error
}

func (r *reader) varlong() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int32 {
	v := r.varlong()
	if v != int64(int32(v)) {
		r.err = errors.New("varint overflows int32")
		return 0
	}
	return int32(v)
}

func (r *reader) bytes() []byte {
	n := r.varint()
	if r.err != nil || n == -1 {
		return nil
	}
	if n < 0 || int(n) > len(r.b) {
		r.err = errShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// parseRecord decodes one record from the start of b into r and returns the
// number of bytes it used.
func parseRecord(b []byte, r *kmsg.Record) (int, error) {
	length, n := binary.Varint(b)
	if n <= 0 || length < 0 || length > int64(len(b)-n) {
		return 0, errShort
	}
	body := reader{b: b[n : n+int(length)]}
	r.Length = int32(length)
	if len(body.b) < 1 {
		return 0, errShort
	}
	r.Attributes = int8(body.b[0])
	body.b = body.b[1:]
	r.TimestampDelta64 = body.varlong()
	r.TimestampDelta = int32(r.TimestampDelta64)
	r.OffsetDelta = body.varint()
	r.Key = body.bytes()
	r.Value = body.bytes()
	nh := body.varint()
	if body.err == nil && (nh < 0 || int(nh) > len(body.b)/2) {
		body.err = fmt.Errorf("bad header count %d", nh)
	}
	if body.err == nil && nh > 0 {
		r.Headers = make([]kmsg.Header, nh)
		for i := range r.Headers {
			k := body.bytes()
			r.Headers[i] = kmsg.Header{Key: string(k), Value: body.bytes()}
		}
	}
	if body.err != nil {
		return 0, body.err
	}
	if len(body.b) != 0 {
		return 0, fmt.Errorf("%d bytes left inside record", len(body.b))
	}
	return n + int(length), nil
}

var errTooLarge = fmt.Errorf("decompressed records exceed %d bytes", MaxDecompressedBytes)

func decompress(c Compression, src []byte) ([]byte, error) {
	switch c {
	case CompressionNone:
		return src, nil
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readBounded(zr)
	case CompressionSnappy:
		return decompressSnappy(src)
	case CompressionLZ4:
		return readBounded(lz4.NewReader(bytes.NewReader(src)))
	case CompressionZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		return d.DecodeAll(src, nil)
	}
	return nil, fmt.Errorf("unknown codec %d", c)
}

// zstdDecoders caches zstd decoders, which are costly to create. It holds
// no state between calls beyond the decoders' buffers.
var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
	if err != nil {
		panic(err) // only on invalid options
	}
	return d
}}

func readBounded(r io.Reader) ([]byte, error) {
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, MaxDecompressedBytes+1))
	if err != nil {
		return nil, err
	}
	if n > MaxDecompressedBytes {
		return nil, errTooLarge
	}
	return out.Bytes(), nil
}

// xerialPrefix starts snappy data framed the way the Java client does it.
var xerialPrefix = []byte{130, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// decompressSnappy handles both raw snappy blocks (librdkafka, franz-go
// option) and xerial framing (Java): a 16-byte header and then chunks of a
// big-endian int32 length followed by a raw snappy block.
func decompressSnappy(src []byte) ([]byte, error) {
	if len(src) < 16 || !bytes.HasPrefix(src, xerialPrefix) {
		return snappyBlock(nil, src)
	}
	src = src[16:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("malformed xerial framing")
		}
		size := int(binary.BigEndian.Uint32(src))
		src = src[4:]
		if size < 0 || size > len(src) {
			return nil, errors.New("malformed xerial framing")
		}
		var err error
		if out, err = snappyBlock(out, src[:size]); err != nil {
			return nil, err
		}
		src = src[size:]
	}
	return out, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst.
func snappyBlock(dst, block []byte) ([]byte, error) {
	l, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if len(dst)+l > MaxDecompressedBytes {
		return nil, errTooLarge
	}
	buf := make([]byte, l)
	if _, err := s2.Decode(buf, block); err != nil {
		return nil, err
	}
	return append(dst, buf...), nil
}
