package bench

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencySampleEvery is how often the produce phase times a record: every
// LatencySampleEvery-th record a producer hands to franz-go is timed from
// its Produce call to its promise. Timing every record would cost two
// clock reads per record in the load generator, which shares the cores
// with the brokers; one record in 16 still gives 62,500 samples per
// million records, plenty for a p999.
const LatencySampleEvery = 16

// Latency summarises the produce latency of a phase: the time from a
// record's Produce call to its promise, for the sampled records. It
// includes the time Produce blocks while the producer's buffer is full
// and the time the record waits in the buffer behind earlier records, as
// Kafka's own producer-perf-test does: at full throughput it is mostly
// queueing, and MaxBufferedRecords bounds it.
type Latency struct {
	Samples int64         // Samples is how many records were timed.
	P50     time.Duration // P50 is the median.
	P99     time.Duration // P99 is the 99th percentile.
	P999    time.Duration // P999 is the 99.9th percentile.
	Max     time.Duration // Max is the largest sample, exact.
}

// String formats the percentiles, or "" when nothing was sampled.
func (l Latency) String() string {
	if l.Samples == 0 {
		return ""
	}
	return fmt.Sprintf("latency p50 %s, p99 %s, p999 %s, max %s (%s samples)",
		shortDuration(l.P50), shortDuration(l.P99), shortDuration(l.P999), shortDuration(l.Max), thousands(l.Samples))
}

// shortDuration rounds d to three significant digits, so that 1.234567ms
// prints as 1.23ms rather than with the nanoseconds.
func shortDuration(d time.Duration) time.Duration {
	for unit := time.Duration(1000); unit <= time.Hour; unit *= 10 {
		if d < unit {
			return d.Round(unit / 1000)
		}
	}
	return d.Round(time.Second)
}

// histSubBits sets the histogram's precision: each power of two is split
// into 2^histSubBits linear sub-buckets, so a recorded value is known to
// within 1/2^histSubBits (3.1%) of itself, like an HdrHistogram with two
// significant decimal digits.
const histSubBits = 5

// histBuckets covers every non-negative int64 nanosecond count.
const histBuckets = (64 - histSubBits) << histSubBits

// histogram is a log-linear histogram of durations that many goroutines
// record into at once without locks or allocation: recording is two or
// three atomic operations on a fixed array. Values below 2^(histSubBits+1)
// nanoseconds are counted exactly.
type histogram struct {
	counts [histBuckets]atomic.Int64
	max    atomic.Int64
}

// histBucket is the index of the bucket that counts v.
func histBucket(v int64) int {
	if v < 0 {
		v = 0
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	if shift <= 0 {
		return int(v)
	}
	return shift<<histSubBits + int(v>>shift)
}

// histUpper is the largest value counted by bucket i.
func histUpper(i int) int64 {
	shift := i>>histSubBits - 1
	if shift <= 0 {
		return int64(i)
	}
	m := int64(i - shift<<histSubBits)
	if m+1 > math.MaxInt64>>shift {
		return math.MaxInt64
	}
	return (m+1)<<shift - 1
}

// record counts one duration.
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	h.counts[histBucket(v)].Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// summary returns the percentiles of what has been recorded. A percentile
// is the upper bound of its bucket, capped at the exact maximum, so it
// never understates a latency by more than the bucket width.
func (h *histogram) summary() Latency {
	var counts [histBuckets]int64
	var n int64
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	if n == 0 {
		return Latency{}
	}
	maxV := h.max.Load()
	quantile := func(q float64) time.Duration {
		rank := int64(math.Ceil(q * float64(n)))
		rank = min(max(rank, 1), n)
		var seen int64
		for i, c := range counts {
			seen += c
			if seen >= rank {
				return time.Duration(min(histUpper(i), maxV))
			}
		}
		return time.Duration(maxV)
	}
	return Latency{
		Samples: n,
		P50:     quantile(0.50),
		P99:     quantile(0.99),
		P999:    quantile(0.999),
		Max:     time.Duration(maxV),
	}
}
