package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

// fillSegments appends batches of 5 records with timestamps ts0, ts0+1000,
// ... until the log has at least n segments.
func fillSegments(t *testing.T, l *Log, n int, ts0 int64) {
	t.Helper()
	for i := 0; l.NumSegments() < n; i++ {
		s := plain(5)
		s.ts = ts0 + int64(i)*1000
		mustAppend(t, l, s.build())
	}
}

func TestRetention(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	base := time.UnixMilli(10 * day)
	tests := []struct {
		name      string
		mutate    func(*Config)
		now       time.Time
		wantSegs  func(before int) int
		wantStart bool // log start moved
	}{
		{"nothing expired", func(*Config) {}, base, func(b int) int { return b }, false},
		{"everything expired by time", func(c *Config) { c.RetentionMs = 1000 }, base.Add(time.Hour),
			func(int) int { return 1 }, true},
		{"forever", func(c *Config) { c.RetentionMs = -1 }, base.Add(100 * time.Hour), func(b int) int { return b }, false},
		{"by bytes", func(c *Config) { c.RetentionBytes = 1500 }, base, func(int) int { return 3 }, true},
		{"compact only keeps", func(c *Config) { c.RetentionMs = 1; c.CleanupPolicy = CleanupCompact }, base.Add(time.Hour),
			func(b int) int { return b }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SegmentBytes = 1000
			tt.mutate(&cfg)
			l := openLog(t, t.TempDir(), cfg)
			defer l.Close()
			l.now = func() time.Time { return base }
			fillSegments(t, l, 5, base.UnixMilli()-day)
			before := l.NumSegments()
			leo := l.LogEndOffset()
			require.NoError(t, l.Maintain(tt.now))
			require.Equal(t, tt.wantSegs(before), l.NumSegments())
			require.Equal(t, leo, l.LogEndOffset())
			if tt.wantStart {
				require.Greater(t, l.LogStartOffset(), int64(0))
				_, err := l.Read(0, 100, leo)
				require.ErrorIs(t, err, kerr.OffsetOutOfRange)
			} else {
				require.Equal(t, int64(0), l.LogStartOffset())
			}
			// What is left reads back contiguously to the end.
			hs := readAll(t, l, l.LogStartOffset(), 1<<20)
			if len(hs) == 0 {
				require.Equal(t, leo, l.LogStartOffset())
			} else {
				require.Equal(t, leo, hs[len(hs)-1].NextOffset())
			}
		})
	}
}

func TestRetentionRollsIdleActiveSegment(t *testing.T) {
	cfg := testConfig()
	cfg.RetentionMs = 1000
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	mustAppend(t, l, plain(5).build()) // timestamps around 1000 ms
	require.NoError(t, l.Maintain(time.Now()))
	require.Equal(t, 1, l.NumSegments())
	require.Equal(t, int64(5), l.LogStartOffset())
	require.Equal(t, int64(5), l.LogEndOffset())
	require.Zero(t, l.Size())
	res := mustAppend(t, l, plain(1).build())
	require.Equal(t, int64(5), res.BaseOffset)
}

func TestSegmentMsRoll(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentMs = 1000
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	now := time.UnixMilli(1_000_000)
	l.now = func() time.Time { return now }
	mustAppend(t, l, plain(1).build())
	mustAppend(t, l, plain(1).build())
	require.Equal(t, 1, l.NumSegments())
	now = now.Add(2 * time.Second)
	mustAppend(t, l, plain(1).build())
	require.Equal(t, 2, l.NumSegments())
	require.NoError(t, l.Maintain(now.Add(2*time.Second)))
	require.Equal(t, 3, l.NumSegments())
	require.NoError(t, l.Maintain(now.Add(4*time.Second)))
	require.Equal(t, 3, l.NumSegments(), "an empty active segment is not rolled")
}

func TestDeleteRecordsBefore(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1000
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	fillSegments(t, l, 4, 1000)
	segs := l.NumSegments()
	leo := l.LogEndOffset()

	_, err := l.DeleteRecordsBefore(leo + 1)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)

	start, err := l.DeleteRecordsBefore(7)
	require.NoError(t, err)
	require.Equal(t, int64(7), start)
	require.Equal(t, segs, l.NumSegments(), "first segment still holds offsets >= 7")
	_, err = l.Read(6, 100, leo)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)
	b, err := l.Read(7, 100, leo)
	require.NoError(t, err)
	h, err := record.Validate(b)
	require.NoError(t, err)
	require.Equal(t, int64(5), h.BaseOffset, "the batch holding the start offset")

	start, err = l.DeleteRecordsBefore(3)
	require.NoError(t, err)
	require.Equal(t, int64(7), start, "never moves back")

	mid := leo - 10
	start, err = l.DeleteRecordsBefore(mid)
	require.NoError(t, err)
	require.Equal(t, mid, start)
	require.Less(t, l.NumSegments(), segs)

	require.NoError(t, l.Close())
	l = openLog(t, dir, cfg)
	defer l.Close()
	require.Equal(t, mid, l.LogStartOffset())
	require.Equal(t, leo, l.LogEndOffset())
	_, err = l.Read(mid-1, 100, leo)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)

	start, err = l.DeleteRecordsBefore(leo)
	require.NoError(t, err)
	require.Equal(t, leo, start)
	b, err = l.Read(leo, 100, leo)
	require.NoError(t, err)
	require.Empty(t, b)
}

func TestTruncateToAndEpochs(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1000
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	// Epoch 1: offsets 0-49, epoch 3: 50-99, epoch 4: 100-149.
	for _, epoch := range []int32{1, 3, 4} {
		for range 10 {
			_, err := l.Append(plain(5).build(), epoch)
			require.NoError(t, err)
		}
	}
	require.Greater(t, l.NumSegments(), 3)
	require.Equal(t, int32(4), l.LatestEpoch())
	tests := []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{0, 0, 0}, // older than any: the first epoch's start
		{1, 1, 50},
		{2, 1, 50},
		{3, 3, 100},
		{4, 4, 150},
		{5, -1, -1},
		{-1, -1, -1},
	}
	for _, tt := range tests {
		e, end := l.EndOffsetForEpoch(tt.epoch)
		require.Equal(t, tt.wantEpoch, e, "epoch %d", tt.epoch)
		require.Equal(t, tt.wantEnd, end, "epoch %d", tt.epoch)
	}

	// Truncate inside epoch 3, in the middle of a batch: the batch goes.
	require.NoError(t, l.TruncateTo(72))
	require.Equal(t, int64(70), l.LogEndOffset())
	require.Equal(t, int32(3), l.LatestEpoch())
	e, end := l.EndOffsetForEpoch(3)
	require.Equal(t, int32(3), e)
	require.Equal(t, int64(70), end)
	hs := readAll(t, l, 0, 1<<20)
	require.Equal(t, int64(70), hs[len(hs)-1].NextOffset())
	_, err := l.Read(71, 100, 200)
	require.ErrorIs(t, err, kerr.OffsetOutOfRange)

	// New leader epoch appends continue from there.
	res, err := l.Append(plain(5).build(), 6)
	require.NoError(t, err)
	require.Equal(t, int64(70), res.BaseOffset)
	e, end = l.EndOffsetForEpoch(4)
	require.Equal(t, int32(3), e)
	require.Equal(t, int64(70), end)

	require.NoError(t, l.Close())
	l = openLog(t, dir, cfg)
	defer l.Close()
	require.Equal(t, int32(6), l.LatestEpoch())
	e, end = l.EndOffsetForEpoch(6)
	require.Equal(t, int32(6), e)
	require.Equal(t, int64(75), end)

	// Truncating to zero empties the log.
	require.NoError(t, l.TruncateTo(0))
	require.Equal(t, int64(0), l.LogEndOffset())
	require.Equal(t, 1, l.NumSegments())
	require.Equal(t, int32(-1), l.LatestEpoch())
	res = mustAppend(t, l, plain(1).build())
	require.Equal(t, int64(0), res.BaseOffset)
}

func TestTruncateRestoresProducerState(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig())
	defer l.Close()
	mustAppend(t, l, idem(1, 0, 0, 2))
	mustAppend(t, l, idem(1, 0, 2, 2))
	require.NoError(t, l.TruncateTo(2))
	// The second batch is gone, so its sequence is next again, not a duplicate.
	res := mustAppend(t, l, idem(1, 0, 2, 2))
	require.False(t, res.Duplicate)
	require.Equal(t, int64(2), res.BaseOffset)
}

func TestCompaction(t *testing.T) {
	cfg := testConfig()
	cfg.CleanupPolicy = CleanupCompact
	cfg.SegmentBytes = 600
	cfg.DeleteRetentionMs = 1000
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	now := time.UnixMilli(1_000_000)
	l.now = func() time.Time { return now }

	// Ten rounds of writes over keys k0..k4; round 9 deletes k0 and k1.
	latest := map[string]string{}
	for round := range 10 {
		var recs []kmsg.Record
		for k := range 5 {
			key := fmt.Sprintf("k%d", k)
			v := fmt.Sprintf("r%d", round)
			if round == 9 && k < 2 {
				recs = append(recs, kmsg.Record{Key: []byte(key)})
				delete(latest, key)
				continue
			}
			recs = append(recs, kmsg.Record{Key: []byte(key), Value: []byte(v)})
			latest[key] = v
		}
		recs = append(recs, kmsg.Record{Value: []byte("no key")})
		_, err := l.Append(record.Build(0, now.UnixMilli(), recs), 0)
		require.NoError(t, err)
	}
	// Roll so that everything is in sealed segments, then add one more
	// record so the active segment is not empty.
	l.mu.Lock()
	require.NoError(t, l.roll(l.cfg))
	l.mu.Unlock()
	_, err := l.Append(record.Build(0, now.UnixMilli(), []kmsg.Record{{Key: []byte("k4"), Value: []byte("active")}}), 0)
	require.NoError(t, err)
	leo := l.LogEndOffset()
	sizeBefore := l.Size()

	type kept struct {
		off int64
		val *string
	}
	collect := func() map[string][]kept {
		got := map[string][]kept{}
		for off := l.LogStartOffset(); off < l.LogEndOffset(); {
			b, err := l.Read(off, 1<<20, l.LogEndOffset())
			require.NoError(t, err)
			for h, batch := range record.Batches(b) {
				recs, err := record.Records(batch)
				require.NoError(t, err)
				for _, r := range recs {
					var v *string
					if r.Value != nil {
						s := string(r.Value)
						v = &s
					}
					got[string(r.Key)] = append(got[string(r.Key)], kept{h.BaseOffset + int64(r.OffsetDelta), v})
				}
				off = h.NextOffset()
			}
		}
		return got
	}
	before := collect()

	require.NoError(t, l.Maintain(now))
	require.Equal(t, leo, l.LogEndOffset())
	require.Less(t, l.Size(), sizeBefore)
	got := collect()
	require.NotContains(t, got, "", "records without keys are dropped")
	for _, k := range []string{"k2", "k3"} {
		require.Len(t, got[k], 1, k)
		require.Equal(t, latest[k], *got[k][0].val)
		require.Equal(t, before[k][len(before[k])-1].off, got[k][0].off, "offsets are kept")
	}
	require.Len(t, got["k4"], 2, "sealed latest plus the active segment's record")
	for _, k := range []string{"k0", "k1"} {
		require.Len(t, got[k], 1, k)
		require.Nil(t, got[k][0].val, "tombstone kept within delete.retention.ms")
	}

	// After delete.retention.ms the tombstones go too, also across a restart.
	require.NoError(t, l.Close())
	l = openLog(t, dir, cfg)
	defer l.Close()
	require.NoError(t, l.Maintain(now.Add(2*time.Second)))
	got = collect()
	require.NotContains(t, got, "k0")
	require.NotContains(t, got, "k1")
	require.Len(t, got["k2"], 1)
	require.Equal(t, leo, l.LogEndOffset())

	// The compacted log still recovers cleanly.
	require.NoError(t, l.Close())
	l2 := openLog(t, dir, cfg)
	require.Equal(t, leo, l2.LogEndOffset())
	require.Equal(t, got, func() map[string][]kept { l = l2; return collect() }())
}
