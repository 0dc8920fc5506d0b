//go:build unix

package storage

import (
	"encoding/binary"
	"hash/crc32"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

// producerBatch10 is a batch of 10 x 100 B records from producer pid at
// epoch 0, transactional or not; setSeq patches its base sequence.
type producerBatch10 []byte

func newProducerBatch10(pid int64, transactional bool) producerBatch10 {
	recs := make([]kmsg.Record, 10)
	for i := range recs {
		recs[i].Value = make([]byte, 100)
		recs[i].OffsetDelta = int32(i)
	}
	h := record.Header{PartitionLeaderEpoch: -1, LastOffsetDelta: 9, BaseTimestamp: 1_700_000_000_000,
		MaxTimestamp: 1_700_000_000_000, ProducerID: pid}
	if transactional {
		h.Attributes = 0x10
	}
	return record.Encode(nil, h, recs)
}

// setSeq patches the base sequence (inside the CRC'd range) and the CRC,
// the same cost for every variant.
func (b producerBatch10) setSeq(seq int32) {
	binary.BigEndian.PutUint32(b[53:], uint32(seq))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// cpuTime is the process's user plus system CPU time: on a machine shared
// with other work it moves far less than wall time, which also counts time
// spent waiting for a CPU.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAppendIdempotent appends 10-record batches of one idempotent
// producer: the producer-state work of each append (sequence check, the last
// five batches) weighs most with small batches.
//
//	go test ./broker/storage/ -run '^$' -bench 'BenchmarkAppendIdempotent$' -count 5
func BenchmarkAppendIdempotent(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Flush = FlushNone
	cfg.SegmentBytes = 256 << 20
	l := openLog(b, b.TempDir(), cfg)
	defer l.Close()
	batch := newProducerBatch10(1, false)
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	cpu := cpuTime()
	for i := 0; b.Loop(); i++ {
		batch.setSeq(int32(i * 10))
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "records/s")
}
