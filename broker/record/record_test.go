package record

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func testRecords() []kmsg.Record {
	return []kmsg.Record{
		{Key: []byte("k1"), Value: []byte("v1")},
		{Key: []byte("k2"), Value: nil, TimestampDelta64: 5},
		{Key: nil, Value: []byte("no key"), Headers: []kmsg.Header{{Key: "h", Value: []byte("hv")}, {Key: "n"}}},
	}
}

func TestBuildRoundTrip(t *testing.T) {
	t.Parallel()
	b := Build(100, 1_700_000_000_000, testRecords())
	h, err := ValidateProduced(b)
	require.NoError(t, err)
	require.Equal(t, int64(100), h.BaseOffset)
	require.Equal(t, int64(102), h.LastOffset())
	require.Equal(t, int64(103), h.NextOffset())
	require.Equal(t, int32(3), h.RecordCount)
	require.Equal(t, len(b), h.Size())
	require.Equal(t, int64(-1), h.ProducerID)
	require.Equal(t, int32(-1), h.BaseSequence)
	require.Equal(t, int64(1_700_000_000_005), h.MaxTimestamp)
	require.Equal(t, CompressionNone, h.Compression())
	require.False(t, h.IsControl() || h.IsTransactional() || h.IsLogAppendTime() || h.HasProducerID())

	got, err := Records(b)
	require.NoError(t, err)
	require.Len(t, got, 3)
	want := testRecords()
	for i := range want {
		require.Equal(t, int32(i), got[i].OffsetDelta)
		require.Equal(t, want[i].Key, got[i].Key)
		require.Equal(t, want[i].Value, got[i].Value)
		require.Equal(t, want[i].TimestampDelta64, got[i].TimestampDelta64)
	}
	require.Nil(t, got[1].Value, "tombstone stays null")
	require.Nil(t, got[2].Key, "null key stays null")
	require.Equal(t, []kmsg.Header{{Key: "h", Value: []byte("hv")}, {Key: "n"}}, got[2].Headers)

	// kmsg agrees with our encoding.
	var kb kmsg.RecordBatch
	require.NoError(t, kb.ReadFrom(b))
	require.Equal(t, int32(3), kb.NumRecords)
	require.Equal(t, int32(h.CRC), kb.CRC)
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	good := Build(0, 1, testRecords())
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name string
		b    []byte
		want *kerr.Error
	}{
		{"short header", good[:HeaderSize-1], kerr.CorruptMessage},
		{"truncated", good[:len(good)-1], kerr.CorruptMessage},
		{"magic 1", mutate(func(b []byte) []byte { b[16] = 1; return b }), kerr.UnsupportedForMessageFormat},
		{"magic 0", mutate(func(b []byte) []byte { b[16] = 0; return b }), kerr.UnsupportedForMessageFormat},
		{"magic 3", mutate(func(b []byte) []byte { b[16] = 3; return b }), kerr.CorruptMessage},
		{"bad crc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), kerr.CorruptMessage},
		{"tiny length", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 10); return b }), kerr.CorruptMessage},
		{"bad codec", mutate(func(b []byte) []byte { b[22] |= 7; updateCRC(b); return b }), kerr.CorruptMessage},
		{"count beyond delta", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[57:], 4); updateCRC(b); return b }), kerr.InvalidRecord},
		{"negative delta", mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 0xffffffff); updateCRC(b); return b }), kerr.InvalidRecord},
		{"count cannot fit", mutate(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[23:], 1000)
			binary.BigEndian.PutUint32(b[57:], 1000)
			updateCRC(b)
			return b
		}), kerr.CorruptMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate(tt.b)
			require.Error(t, err)
			require.ErrorIs(t, err, tt.want)
			var ke *kerr.Error
			require.True(t, errors.As(err, &ke))
			require.Equal(t, tt.want.Code, ke.Code)
		})
	}

	t.Run("produced needs one record per offset", func(t *testing.T) {
		b := mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[23:], 5); updateCRC(b); return b })
		_, err := Validate(b)
		require.NoError(t, err, "a compacted batch may have gaps")
		_, err = ValidateProduced(b)
		require.ErrorIs(t, err, kerr.InvalidRecord)
	})
	t.Run("trailing bytes ignored", func(t *testing.T) {
		h, err := Validate(append(append([]byte(nil), good...), 1, 2, 3))
		require.NoError(t, err)
		require.Equal(t, len(good), h.Size())
	})
}

func TestSetters(t *testing.T) {
	t.Parallel()
	b := Build(0, 1000, testRecords())
	SetBaseOffset(b, 42)
	SetPartitionLeaderEpoch(b, 7)
	h, err := Validate(b)
	require.NoError(t, err, "offset and epoch are outside the CRC")
	require.Equal(t, int64(42), h.BaseOffset)
	require.Equal(t, int32(7), h.PartitionLeaderEpoch)

	SetLogAppendTime(b, 9999)
	h, err = Validate(b)
	require.NoError(t, err)
	require.True(t, h.IsLogAppendTime())
	require.Equal(t, int64(9999), h.MaxTimestamp)
	require.Equal(t, int64(1000), h.BaseTimestamp)
}

func TestIncrementSequence(t *testing.T) {
	t.Parallel()
	tests := []struct{ seq, n, want int32 }{
		{0, 0, 0},
		{0, 4, 4},
		{1<<31 - 1, 0, 1<<31 - 1},
		{1<<31 - 1, 1, 0},
		{1<<31 - 3, 4, 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, IncrementSequence(tt.seq, tt.n), "%d+%d", tt.seq, tt.n)
	}
	h := Header{BaseSequence: 1<<31 - 2, LastOffsetDelta: 3}
	require.Equal(t, int32(1), h.LastSequence())
}

func TestBatches(t *testing.T) {
	t.Parallel()
	var set []byte
	for i := range 3 {
		set = append(set, Build(int64(i*10), 1, testRecords())...)
	}
	full := len(set)
	for _, cut := range []int{0, 1, HeaderSize, full / 3, full/3 + 1, full - 1, full} {
		var offs []int64
		n := 0
		for h, b := range Batches(set[:cut]) {
			require.Len(t, b, h.Size())
			offs = append(offs, h.BaseOffset)
			n += len(b)
		}
		require.Equal(t, n, Complete(set[:cut]))
		require.Len(t, offs, cut/(full/3), "cut %d", cut)
	}
	// Breaking out early works.
	for range Batches(set) {
		break
	}
}

// compressed returns a batch holding recs, compressed with c.
func compressed(t testing.TB, c Compression, recs []kmsg.Record) []byte {
	b := Build(0, 1, recs)
	raw := b[HeaderSize:]
	var body []byte
	switch c {
	case CompressionGzip:
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(raw)
		require.NoError(t, w.Close())
		body = buf.Bytes()
	case CompressionSnappy:
		body = s2.EncodeSnappy(nil, raw)
	case CompressionSnappy + 8: // xerial framed snappy, in two chunks
		c = CompressionSnappy
		body = append(append([]byte(nil), xerialPrefix...), 0, 0, 0, 1, 0, 0, 0, 1)
		half := len(raw) / 2
		for _, chunk := range [][]byte{raw[:half], raw[half:]} {
			enc := s2.EncodeSnappy(nil, chunk)
			body = binary.BigEndian.AppendUint32(body, uint32(len(enc)))
			body = append(body, enc...)
		}
	case CompressionLZ4:
		var buf bytes.Buffer
		w := lz4.NewWriter(&buf)
		_, _ = w.Write(raw)
		require.NoError(t, w.Close())
		body = buf.Bytes()
	case CompressionZstd:
		enc, err := zstd.NewWriter(nil)
		require.NoError(t, err)
		body = enc.EncodeAll(raw, nil)
		require.NoError(t, enc.Close())
	}
	out := append(b[:HeaderSize:HeaderSize], body...)
	binary.BigEndian.PutUint16(out[offAttributes:], uint16(c))
	binary.BigEndian.PutUint32(out[offLength:], uint32(len(out)-lengthFieldEnd))
	updateCRC(out)
	return out
}

func TestRecordsCompressed(t *testing.T) {
	t.Parallel()
	for _, c := range []Compression{CompressionGzip, CompressionSnappy, CompressionSnappy + 8, CompressionLZ4, CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) {
			b := compressed(t, c, testRecords())
			h, err := ValidateProduced(b)
			require.NoError(t, err)
			require.Equal(t, c&7, h.Compression())
			got, err := Records(b)
			require.NoError(t, err)
			require.Len(t, got, 3)
			require.Equal(t, []byte("v1"), got[0].Value)
			require.Nil(t, got[1].Value)
			require.Equal(t, "h", got[2].Headers[0].Key)
		})
	}
	t.Run("garbage body", func(t *testing.T) {
		b := compressed(t, CompressionGzip, testRecords())
		b[HeaderSize+12] ^= 0xff
		updateCRC(b)
		_, err := Records(b)
		require.ErrorIs(t, err, kerr.CorruptMessage)
	})
}

func TestRecordsMalformed(t *testing.T) {
	t.Parallel()
	b := Build(0, 1, testRecords())
	// Claim a longer first record than there is.
	b[HeaderSize] = 0x7e
	updateCRC(b)
	_, err := Records(b)
	require.ErrorIs(t, err, kerr.CorruptMessage)
}

func BenchmarkValidate(b *testing.B) {
	recs := make([]kmsg.Record, 160)
	for i := range recs {
		recs[i].Value = make([]byte, 100)
	}
	batch := Build(0, 1, recs)
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := ValidateProduced(batch); err != nil {
			b.Fatal(err)
		}
	}
}
