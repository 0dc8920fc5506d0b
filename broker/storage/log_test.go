package storage

import (
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/record"
)

func TestAppendReadAcrossSegments(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		interval     int32
		batches      int
		recs         int
	}{
		{"one segment", 1 << 20, 4096, 50, 10},
		{"many segments", 4000, 256, 200, 5},
		{"index every batch", 10000, 0, 100, 3},
		{"single record batches", 2000, 100, 300, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SegmentBytes, cfg.IndexIntervalBytes = tt.segmentBytes, tt.interval
			dir := t.TempDir()
			l := openLog(t, dir, cfg)
			var want []int64
			for i := range tt.batches {
				res := mustAppend(t, l, plain(tt.recs).build())
				require.Equal(t, int64(i*tt.recs), res.BaseOffset)
				require.Equal(t, int64((i+1)*tt.recs-1), res.LastOffset)
				require.Equal(t, int64(-1), res.LogAppendTime)
				want = append(want, res.BaseOffset)
			}
			require.Equal(t, int64(tt.batches*tt.recs), l.LogEndOffset())
			if tt.segmentBytes < 10000 {
				require.Greater(t, l.NumSegments(), 1)
			}
			check := func(l *Log) {
				for _, maxBytes := range []int32{1, 500, 1 << 20} {
					hs := readAll(t, l, 0, maxBytes)
					require.Len(t, hs, tt.batches)
					for i, h := range hs {
						require.Equal(t, want[i], h.BaseOffset)
						require.Equal(t, int32(0), h.PartitionLeaderEpoch)
					}
				}
				// Every offset, including ones inside a batch, finds
				// its batch first.
				for off := int64(0); off < l.LogEndOffset(); off += 7 {
					b, err := l.Read(off, 1, l.LogEndOffset())
					require.NoError(t, err)
					h, err := record.Validate(b)
					require.NoError(t, err)
					require.LessOrEqual(t, h.BaseOffset, off)
					require.GreaterOrEqual(t, h.LastOffset(), off)
					require.Equal(t, h.Size(), len(b), "KIP-74: one whole batch")
				}
			}
			check(l)
			require.NoError(t, l.Close())
			l = openLog(t, dir, cfg)
			defer l.Close()
			check(l)
			require.Equal(t, int64(tt.batches*tt.recs), l.LogEndOffset())
		})
	}
}

func TestReadBounds(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	for range 10 {
		mustAppend(t, l, plain(10).build())
	}
	b, err := l.Read(100, 1000, 100)
	require.NoError(t, err)
	require.NotNil(t, b)
	require.Empty(t, b)

	_, err = l.Read(101, 1000, 100)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)
	_, err = l.Read(-1, 1000, 100)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)

	// The high watermark cuts before the batch that starts at it.
	b, err = l.Read(0, 1<<20, 35)
	require.NoError(t, err)
	var last record.Header
	for h := range record.Batches(b) {
		last = h
	}
	require.Equal(t, int64(30), last.BaseOffset)
	b, err = l.Read(40, 1<<20, 40)
	require.NoError(t, err)
	require.Empty(t, b)

	// maxBytes is honoured at batch granularity.
	one := len(plain(10).build())
	b, err = l.Read(0, int32(2*one+one/2), 100)
	require.NoError(t, err)
	require.Len(t, b, 2*one)
}

func TestAppendRejects(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageBytes = 200
	good := plain(2).build()
	corrupt := plain(2).build()
	corrupt[len(corrupt)-1] ^= 1
	v1 := plain(2).build()
	v1[16] = 1
	tests := []struct {
		name string
		b    []byte
		want *kerr.Error
	}{
		{"corrupt crc", corrupt, kerr.CorruptMessage},
		{"good then corrupt", append(append([]byte(nil), good...), corrupt...), kerr.CorruptMessage},
		{"trailing garbage", append(append([]byte(nil), good...), 1, 2, 3), kerr.CorruptMessage},
		{"magic 1", v1, kerr.UnsupportedForMessageFormat},
		{"too large", plain(10).build(), kerr.MessageTooLarge},
		{"empty", nil, kerr.CorruptMessage},
	}
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	mustAppend(t, l, plain(2).build())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := l.Size()
			_, err := l.Append(tt.b, 0)
			require.ErrorIs(t, err, tt.want)
			require.Equal(t, int64(2), l.LogEndOffset())
			require.Equal(t, size, l.Size())
		})
	}
}

func TestLogAppendTime(t *testing.T) {
	cfg := testConfig()
	cfg.MessageTimestampType = LogAppendTime
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	res := mustAppend(t, l, plain(3).build())
	require.Positive(t, res.LogAppendTime)
	b, err := l.Read(0, 1<<20, 3)
	require.NoError(t, err)
	h, err := record.Validate(b)
	require.NoError(t, err)
	require.True(t, h.IsLogAppendTime())
	require.Equal(t, res.LogAppendTime, h.MaxTimestamp)
}

func TestOffsetForTimestamp(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 3000
	cfg.IndexIntervalBytes = 100
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	for i := range 100 {
		s := plain(5)
		s.ts = int64(1000 + 10*i) // records at ts, ts+1, ..., ts+4
		mustAppend(t, l, s.build())
	}
	require.Greater(t, l.NumSegments(), 2)
	check := func(l *Log) {
		tests := []struct {
			ts      int64
			off, at int64
			ok      bool
		}{
			{0, 0, 1000, true},
			{1000, 0, 1000, true},
			{1003, 3, 1003, true},
			{1005, 5, 1010, true},
			{1502, 252, 1502, true},
			{1994, 499, 1994, true},
			{1995, -1, -1, false},
		}
		for _, tt := range tests {
			off, at, ok := l.OffsetForTimestamp(tt.ts)
			require.Equal(t, tt.ok, ok, "ts %d", tt.ts)
			require.Equal(t, tt.off, off, "ts %d", tt.ts)
			require.Equal(t, tt.at, at, "ts %d", tt.ts)
		}
		off, ts := l.MaxTimestamp()
		require.Equal(t, int64(499), off)
		require.Equal(t, int64(1994), ts)
	}
	check(l)
	require.NoError(t, l.Close())
	l = openLog(t, dir, cfg)
	defer l.Close()
	check(l)
}

func TestFlushAlwaysConcurrentAppends(t *testing.T) {
	cfg := testConfig()
	cfg.Flush = FlushAlways
	cfg.SegmentBytes = 50_000
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	results := make(chan AppendResult, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				res, err := l.Append(plain(4).build(), 1)
				if err != nil {
					t.Error(err)
					return
				}
				results <- res
			}
		})
	}
	// Readers run alongside and never see a partial batch.
	done := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			b, err := l.Read(l.LogStartOffset(), 1<<16, l.LogEndOffset())
			if err != nil {
				t.Error(err)
				return
			}
			if record.Complete(b) != len(b) {
				t.Error("partial batch read")
				return
			}
		}
	})
	for range writers * each {
		<-results
	}
	close(done)
	wg.Wait()
	seen := make(map[int64]bool)
	for _, h := range readAll(t, l, 0, 1<<20) {
		require.False(t, seen[h.BaseOffset])
		seen[h.BaseOffset] = true
	}
	require.Len(t, seen, writers*each)
	require.Equal(t, int64(writers*each*4), l.LogEndOffset())
	require.NoError(t, l.Flush())
	require.NoError(t, l.Close())
	_, err := l.Append(plain(1).build(), 1)
	require.ErrorIs(t, err, ErrClosed)
}

func TestParseFlushPolicy(t *testing.T) {
	for s, want := range map[string]FlushPolicy{"none": FlushNone, "interval": FlushInterval, "Always": FlushAlways} {
		got, err := ParseFlushPolicy(s)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.Equal(t, want, must(ParseFlushPolicy(got.String())))
	}
	_, err := ParseFlushPolicy("sometimes")
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	tests := []func(*Config){
		func(c *Config) { c.SegmentBytes = 1 << 40 },
		func(c *Config) { c.CleanupPolicy = "shred" },
		func(c *Config) { c.MessageTimestampType = "Now" },
		func(c *Config) { c.RetentionMs = -2 },
		func(c *Config) { c.MaxMessageBytes = 0 },
	}
	for _, mutate := range tests {
		cfg := DefaultConfig()
		mutate(&cfg)
		require.Error(t, cfg.Validate())
		_, err := Open(t.TempDir(), cfg, nil)
		require.Error(t, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDelete(t *testing.T) {
	dir := t.TempDir() + "/p-0"
	l := openLog(t, dir, testConfig())
	mustAppend(t, l, plain(1).build())
	require.NoError(t, l.Delete())
	_, err := os.Stat(dir)
	require.True(t, os.IsNotExist(err))
}
