package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/record"
)

func TestRecovery(t *testing.T) {
	type damage func(t *testing.T, dir string, lastBase int64, lastSize int64)
	appendGarbage := func(b []byte) damage {
		return func(t *testing.T, dir string, base, _ int64) {
			f, err := os.OpenFile(segmentFile(dir, base, logSuffix), os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write(b)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}
	}
	tests := []struct {
		name string
		hurt damage
		lost int // batches lost from the end
	}{
		{"clean", func(*testing.T, string, int64, int64) {}, 0},
		{"garbage tail", appendGarbage([]byte("this is not a batch at all, really not")), 0},
		{"zeros tail", appendGarbage(make([]byte, 4096)), 0},
		{"half a batch", appendGarbage(plain(5).build()[:40]), 0},
		{"truncated mid batch", func(t *testing.T, dir string, base, size int64) {
			require.NoError(t, os.Truncate(segmentFile(dir, base, logSuffix), size-10))
		}, 1},
		{"flipped byte in last batch", func(t *testing.T, dir string, base, size int64) {
			f, err := os.OpenFile(segmentFile(dir, base, logSuffix), os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte{0xff}, size-3)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, 1},
		{"indexes missing", func(t *testing.T, dir string, _, _ int64) {
			for _, e := range must(os.ReadDir(dir)) {
				if n := e.Name(); len(n) > 6 && (n[len(n)-6:] == ".index" || n[len(n)-10:] == ".timeindex") {
					require.NoError(t, os.Remove(dir+"/"+n))
				}
			}
		}, 0},
		{"indexes garbage", func(t *testing.T, dir string, _, _ int64) {
			require.NoError(t, os.WriteFile(segmentFile(dir, 0, indexSuffix), []byte("0123456789abcdef"), 0o644))
			require.NoError(t, os.WriteFile(segmentFile(dir, 0, timeIndexSuffix), []byte("xyz"), 0o644))
		}, 0},
		{"snapshots garbage", func(t *testing.T, dir string, _, _ int64) {
			offs, _ := snapshotOffsets(dir)
			for _, o := range offs {
				require.NoError(t, os.WriteFile(snapshotPath(dir, o), []byte("junk"), 0o644))
			}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SegmentBytes = 2000
			cfg.IndexIntervalBytes = 100
			src := t.TempDir()
			l := openLog(t, src, cfg)
			const batches = 60
			for i := range batches {
				s := plain(5)
				s.pid, s.epoch, s.seq = 7, 0, int32(i*5)
				mustAppend(t, l, s.build())
			}
			// Crash: copy the directory as it is while the log is open.
			dir := crashCopy(t, src)
			l.segMu.RLock()
			last := l.active()
			lastBase, lastSize := last.base, last.size
			l.segMu.RUnlock()
			require.NoError(t, l.Close())

			tt.hurt(t, dir, lastBase, lastSize)
			l = openLog(t, dir, cfg)
			defer l.Close()
			hs := readAll(t, l, 0, 1<<20)
			require.Len(t, hs, batches-tt.lost)
			require.Equal(t, int64((batches-tt.lost)*5), l.LogEndOffset())
			// Producer state survives: the next sequence is accepted and
			// a resend of the last kept batch is a duplicate.
			s := plain(5)
			s.pid, s.seq = 7, int32((batches-tt.lost-1)*5)
			res, err := l.Append(s.build(), 0)
			require.NoError(t, err)
			require.True(t, res.Duplicate)
			s.seq += 5
			res, err = l.Append(s.build(), 0)
			require.NoError(t, err)
			require.False(t, res.Duplicate)
			require.Equal(t, int64((batches-tt.lost)*5), res.BaseOffset)
			require.Len(t, readAll(t, l, 0, 1<<20), batches-tt.lost+1)
		})
	}
}

// FuzzRecover opens a log whose only segment holds arbitrary bytes: Open
// must succeed, and every batch it keeps must be valid.
func FuzzRecover(f *testing.F) {
	one := plain(3).build()
	two := append(append([]byte(nil), one...), plain(2).build()...)
	record.SetBaseOffset(two[len(one):], 3)
	f.Add(one)
	f.Add(two)
	f.Add(two[:len(two)-5])
	f.Add([]byte("garbage"))
	f.Add(append(append([]byte(nil), one...), 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(segmentFile(dir, 0, logSuffix), data, 0o644))
		cfg := testConfig()
		cfg.IndexIntervalBytes = 10
		l, err := Open(dir, cfg, nil)
		require.NoError(t, err)
		defer l.Close()
		next := int64(0)
		for off := int64(0); off < l.LogEndOffset(); {
			b, err := l.Read(off, 1<<20, l.LogEndOffset())
			require.NoError(t, err)
			require.NotEmpty(t, b)
			for len(b) > 0 {
				h, err := record.Validate(b)
				require.NoError(t, err)
				require.GreaterOrEqual(t, h.BaseOffset, next)
				next = h.NextOffset()
				b = b[h.Size():]
			}
			off = next
		}
		require.Equal(t, l.LogEndOffset(), next)
		_, err = l.Append(plain(1).build(), 0)
		require.NoError(t, err)
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzRecover when
// SLUICE_WRITE_CORPUS is set; the files are committed.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SLUICE_WRITE_CORPUS") == "" {
		t.Skip("set SLUICE_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzRecover")
	}
	one := plain(3).build()
	two := append(append([]byte(nil), one...), plain(2).build()...)
	record.SetBaseOffset(two[len(one):], 3)
	idemp := idem(5, 0, 0, 2)
	seeds := map[string][]byte{
		"one":        one,
		"two":        two,
		"torn":       two[:len(two)-5],
		"garbage":    []byte("garbage"),
		"zeros":      append(append([]byte(nil), one...), make([]byte, 64)...),
		"overlap":    append(append([]byte(nil), one...), one...),
		"idempotent": idemp,
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRecover")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, b := range seeds {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
}
