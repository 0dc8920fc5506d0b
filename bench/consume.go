package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetRange is the half-open range [From, To) of one partition to read.
type offsetRange struct{ From, To int64 }

// recordPool is a franz-go PoolRecords: the fetch path decodes each batch
// into a []kgo.Record taken from here and the bench recycles the records
// after counting them, so consuming allocates no records per batch once
// warm.
type recordPool struct{ p sync.Pool }

// GetRecords implements kgo.PoolRecords.
func (rp *recordPool) GetRecords(n int) []kgo.Record {
	if s, ok := rp.p.Get().(*[]kgo.Record); ok && cap(*s) >= n {
		return (*s)[:0]
	}
	return make([]kgo.Record, 0, max(n, 1024))
}

// PutRecords implements kgo.PoolRecords.
func (rp *recordPool) PutRecords(s []kgo.Record) { rp.p.Put(&s) }

// consumerOpts are the franz-go options of a throughput consumer reading
// the given ranges directly, without a group.
func (c Config) consumerOpts(ranges map[int32]offsetRange, pool *recordPool) []kgo.Opt {
	parts := make(map[int32]kgo.Offset, len(ranges))
	for p, r := range ranges {
		if r.To > r.From {
			parts[p] = kgo.NewOffset().At(r.From)
		}
	}
	return []kgo.Opt{
		kgo.SeedBrokers(c.seeds()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.Topic: parts}),
		kgo.FetchMaxBytes(c.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(max(c.FetchMaxBytes/4, 1<<20)),
		kgo.BrokerMaxReadBytes(max(c.FetchMaxBytes*2, 100<<20)),
		kgo.FetchMaxWait(100 * time.Millisecond),
		kgo.MaxConcurrentFetches(4),
		kgo.WithPools(pool),
	}
}

// consume reads every range to its end and returns how fast that went.
// It checks that offsets arrive in order without gaps, so that the count
// it reports is the count the broker served.
func consume(ctx context.Context, cfg Config, ranges map[int32]offsetRange, pool *recordPool) (Phase, error) {
	var want int64
	next := make(map[int32]int64, len(ranges))
	for p, r := range ranges {
		if r.To > r.From {
			want += r.To - r.From
			next[p] = r.From
		}
	}
	if want == 0 {
		return Phase{}, nil
	}
	start := time.Now()
	cl, err := kgo.NewClient(cfg.consumerOpts(ranges, pool)...)
	if err != nil {
		return Phase{}, fmt.Errorf("consumer client: %w", err)
	}
	defer cl.Close()

	var got, bytes int64
	pending := len(next)
	for pending > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return Phase{}, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return Phase{}, ferr
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			end := ranges[fp.Partition].To
			n, ok := next[fp.Partition]
			for _, r := range fp.Records {
				if r.Offset < end && ok {
					if r.Offset != n && ferr == nil {
						ferr = fmt.Errorf("partition %d: offset %d follows %d", fp.Partition, r.Offset, n-1)
					}
					n = r.Offset + 1
					got++
					bytes += int64(len(r.Value))
				}
				r.Recycle()
			}
			if ok {
				next[fp.Partition] = n
				if n >= end {
					delete(next, fp.Partition)
					pending--
				}
			}
		})
		if ferr != nil {
			return Phase{}, ferr
		}
	}
	elapsed := time.Since(start)
	if got != want {
		return Phase{}, fmt.Errorf("consumed %d records, want %d", got, want)
	}
	ph := newPhase(got, 0, elapsed)
	ph.Bytes = bytes
	ph.MiBPerSec = float64(bytes) / (1 << 20) / elapsed.Seconds()
	return ph, nil
}
