package storage

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// spec describes a test batch.
type spec struct {
	n        int    // records
	size     int    // value bytes per record
	key      string // key prefix; "" means no key
	pid      int64  // producer ID, -1 for none
	epoch    int16
	seq      int32
	ts       int64 // base timestamp
	tombs    bool  // nil values
	keyIndex int   // first key suffix
}

func plain(n int) spec { return spec{n: n, size: 10, pid: -1, seq: -1, ts: 1000} }

func (s spec) build() []byte {
	recs := make([]kmsg.Record, s.n)
	for i := range recs {
		if s.key != "" {
			recs[i].Key = fmt.Appendf(nil, "%s%d", s.key, s.keyIndex+i)
		}
		if !s.tombs {
			recs[i].Value = make([]byte, s.size)
			copy(recs[i].Value, fmt.Sprintf("v%d", i))
		}
		recs[i].OffsetDelta = int32(i)
		recs[i].TimestampDelta64 = int64(i)
	}
	h := record.Header{
		PartitionLeaderEpoch: -1, LastOffsetDelta: int32(s.n - 1),
		BaseTimestamp: s.ts, MaxTimestamp: s.ts + int64(s.n-1),
		ProducerID: s.pid, ProducerEpoch: s.epoch, BaseSequence: s.seq,
	}
	if s.pid < 0 {
		h.ProducerEpoch, h.BaseSequence = -1, -1
	}
	return record.Encode(nil, h, recs)
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.IndexIntervalBytes = 256
	return cfg
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg, nil)
	require.NoError(t, err)
	return l
}

func mustAppend(t testing.TB, l *Log, b []byte) AppendResult {
	t.Helper()
	res, err := l.Append(b, 0)
	require.NoError(t, err)
	return res
}

// readAll reads every batch from offset to the end, one Read at a time, and
// returns their headers after validating each.
func readAll(t testing.TB, l *Log, from int64, maxBytes int32) []record.Header {
	t.Helper()
	var hs []record.Header
	off := from
	for off < l.LogEndOffset() {
		b, err := l.Read(off, maxBytes, l.LogEndOffset())
		require.NoError(t, err)
		require.NotEmpty(t, b, "read at %d", off)
		for len(b) > 0 {
			h, err := record.Validate(b)
			require.NoError(t, err)
			hs = append(hs, h)
			b = b[h.Size():]
			off = h.NextOffset()
		}
	}
	return hs
}

// crashCopy copies a live log's directory as a crash would leave it: what
// was written is there, nothing Close does has happened.
func crashCopy(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		out, err := os.Create(filepath.Join(dst, e.Name()))
		require.NoError(t, err)
		_, err = io.Copy(out, in)
		require.NoError(t, err)
		require.NoError(t, in.Close())
		require.NoError(t, out.Close())
	}
	return dst
}

func segmentFile(dir string, base int64, suffix string) string {
	return segmentPath(dir, base) + suffix
}
