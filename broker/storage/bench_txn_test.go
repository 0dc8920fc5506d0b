//go:build unix

package storage

import (
	"testing"

	"github.com/sluicemq/sluice/broker/record"
)

// BenchmarkAppendTransactional is BenchmarkAppendIdempotent with transactions
// of 1,000 records (100 batches) ended by a commit marker, the issue's
// benchmark shape, on the log alone: the cost of tracking open transactions
// and writing markers, against BenchmarkAppendIdempotent in the same run.
//
//	go test ./broker/storage/ -run '^$' -bench 'BenchmarkAppend(Idempotent|Transactional)$' -count 5
func BenchmarkAppendTransactional(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Flush = FlushNone
	cfg.SegmentBytes = 256 << 20
	l := openLog(b, b.TempDir(), cfg)
	defer l.Close()
	batch := newProducerBatch10(1, true)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		batch.setSeq(int32(i * 10))
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
		if i%100 == 99 {
			if _, err := l.AppendMarker(record.Marker{ProducerID: 1, Commit: true}, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "records/s")
}
