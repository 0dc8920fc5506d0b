package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestHistBuckets checks that buckets tile the non-negative int64s: every
// value lands in a bucket whose upper bound is at least the value and
// within 1/2^histSubBits of it, and bucket indexes never decrease.
func TestHistBuckets(t *testing.T) {
	values := []int64{0, 1, 31, 32, 63, 64, 65, 127, 128, 1000, 999_999, 1 << 40, math.MaxInt64 - 1, math.MaxInt64}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10_000 {
		values = append(values, r.Int64N(math.MaxInt64>>r.IntN(63)))
	}
	slices.Sort(values)
	prev := 0
	for _, v := range values {
		i := histBucket(v)
		require.GreaterOrEqual(t, i, prev, "v=%d", v)
		require.Less(t, i, histBuckets, "v=%d", v)
		up := histUpper(i)
		require.GreaterOrEqual(t, up, v, "v=%d bucket %d", v, i)
		require.LessOrEqual(t, float64(up-v), float64(v)/(1<<histSubBits), "v=%d bucket %d upper %d", v, i, up)
		if i > 0 {
			require.Less(t, histUpper(i-1), v, "v=%d is past the previous bucket", v)
		}
		prev = i
	}
	require.Equal(t, 0, histBucket(-5), "negative durations count as zero")
}

func TestHistogramSummary(t *testing.T) {
	var h histogram
	require.Equal(t, Latency{}, h.summary())
	require.Empty(t, h.summary().String())

	// 1..10000 µs, recorded from several goroutines at once.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for v := g + 1; v <= 10_000; v += 4 {
				h.record(time.Duration(v) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	l := h.summary()
	require.Equal(t, int64(10_000), l.Samples)
	require.Equal(t, 10*time.Millisecond, l.Max)
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"p50", l.P50, 5 * time.Millisecond},
		{"p99", l.P99, 9900 * time.Microsecond},
		{"p999", l.P999, 9990 * time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.GreaterOrEqual(t, tc.got, tc.want, "a percentile is never understated")
			require.LessOrEqual(t, float64(tc.got), float64(tc.want)*(1+1.0/(1<<histSubBits)))
		})
	}
	require.LessOrEqual(t, l.P999, l.Max, "capped at the maximum")
	require.Contains(t, l.String(), "latency p50 5.")
	require.Contains(t, l.String(), "max 10ms (10,000 samples)")
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h histogram
	allocs := testing.AllocsPerRun(1000, func() { h.record(1234 * time.Microsecond) })
	require.Zero(t, allocs)
}

func TestShortDuration(t *testing.T) {
	for in, want := range map[time.Duration]string{
		0:                        "0s",
		999:                      "999ns",
		1234:                     "1.23µs",
		1234567:                  "1.23ms",
		12345678:                 "12.3ms",
		123456789:                "123ms",
		1234567890:               "1.23s",
		90*time.Minute + 1234567: "1h30m0s",
	} {
		require.Equal(t, want, shortDuration(in).String(), "%d", int64(in))
	}
}

// BenchmarkHistogramRecord is the cost of one latency sample, paid once
// per LatencySampleEvery records, with every core recording at once.
func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Millisecond
		for pb.Next() {
			h.record(d)
			d += 997
		}
	})
}
