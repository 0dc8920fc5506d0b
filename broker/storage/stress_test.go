package storage

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestConcurrentEverything runs appends, reads, timestamp lookups,
// maintenance (retention and compaction), DeleteRecords and flushes at the
// same time, for the race detector and for invariants on what reads see.
func TestConcurrentEverything(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 4000
	cfg.CleanupPolicy = CleanupCompactDelete
	cfg.RetentionBytes = 40_000
	cfg.Flush = FlushInterval
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()

	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				recs := []kmsg.Record{{Key: []byte{byte(w), byte(i % 7)}, Value: []byte("value")}}
				if _, err := l.Append(record.Build(0, time.Now().UnixMilli(), recs), 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				start, end := l.LogStartOffset(), l.LogEndOffset()
				b, err := l.Read(start+(end-start)/2, 1<<12, end)
				if errors.Is(err, kerr.OffsetOutOfRange) {
					continue // retention moved the start meanwhile
				}
				if err != nil {
					t.Error(err)
					return
				}
				for len(b) > 0 {
					h, err := record.Validate(b)
					if err != nil {
						t.Error(err)
						return
					}
					b = b[h.Size():]
				}
				l.OffsetForTimestamp(0)
				l.MaxTimestamp()
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			if err := l.Maintain(time.Now()); err != nil {
				t.Error(err)
				return
			}
			if err := l.Flush(); err != nil {
				t.Error(err)
				return
			}
			_, _ = l.DeleteRecordsBefore(l.LogStartOffset() + 1)
			l.EndOffsetForEpoch(1)
		}
	})
	testutil.WaitFor(t, 30*time.Second, `l.LogEndOffset() > 1000 || t.Failed()`, func() bool { return l.LogEndOffset() > 1000 || t.Failed() })
	stop.Store(true)
	wg.Wait()
	require.Greater(t, l.NumSegments(), 1)
	readAll(t, l, l.LogStartOffset(), 1<<20)
}
