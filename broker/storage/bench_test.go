package storage

import (
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

// benchBatch is a producer-sized batch: 160 records of 100 bytes (~17 KB).
func benchBatch() []byte {
	recs := make([]kmsg.Record, 160)
	for i := range recs {
		recs[i].Value = make([]byte, 100)
	}
	return record.Build(0, 1_700_000_000_000, recs)
}

// BenchmarkAppend appends 160 x 100 B batches; records/s is b.N*160/elapsed.
func BenchmarkAppend(b *testing.B) {
	for _, flush := range []FlushPolicy{FlushNone, FlushAlways} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("flush=%s/writers=%d", flush, par), func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Flush = flush
				cfg.SegmentBytes = 256 << 20
				l := openLog(b, b.TempDir(), cfg)
				defer l.Close()
				batch := benchBatch()
				b.SetBytes(int64(len(batch)))
				b.ReportAllocs()
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					mine := append([]byte(nil), batch...)
					for pb.Next() {
						if _, err := l.Append(mine, 0); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N*160)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkRead reads 1 MiB fetches at random-ish offsets from a 64 MiB log.
func BenchmarkRead(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 16 << 20
	l := openLog(b, b.TempDir(), cfg)
	defer l.Close()
	batch := benchBatch()
	for l.Size() < 64<<20 {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	for _, maxBytes := range []int32{16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("max=%d", maxBytes), func(b *testing.B) {
			b.ReportAllocs()
			var n int64
			i := int64(0)
			for b.Loop() {
				off := (i * 7919 * 160) % leo
				i++
				buf, err := l.Read(off, maxBytes, leo)
				if err != nil {
					b.Fatal(err)
				}
				n += int64(len(buf))
			}
			b.SetBytes(n / int64(b.N))
		})
	}
}

// BenchmarkAppendWithReaders appends while four consumers fetch 1 MiB at a
// time from the same log, the broker's steady state.
func BenchmarkAppendWithReaders(b *testing.B) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 64 << 20
	l := openLog(b, b.TempDir(), cfg)
	defer l.Close()
	batch := benchBatch()
	for l.Size() < 16<<20 {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			i := int64(r)
			for {
				select {
				case <-stop:
					return
				default:
				}
				leo := l.LogEndOffset()
				i++
				if _, err := l.Read((i*7919*160)%leo, 1<<20, leo); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*160)/b.Elapsed().Seconds(), "records/s")
	close(stop)
	wg.Wait()
}
