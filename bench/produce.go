package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// slabMinBytes is the least amount of random bytes record values are cut
// from. It is several times the largest default batch so that no batch
// contains the same bytes twice: compression then finds nothing to gain,
// as it would with real, already-compressed payloads.
const slabMinBytes = 16 << 20

// valueSlab is a block of random bytes that record values are sliced from.
// Values are never written after they are handed to the producer, so one
// slab is shared by every record, every producer and every run: the bench
// allocates no value bytes per record.
type valueSlab struct {
	data []byte
	size int
}

func newValueSlab(recordSize int) *valueSlab {
	n := max(slabMinBytes, 64*recordSize)
	data := make([]byte, n)
	var seed [32]byte
	binary64(seed[:], uint64(time.Now().UnixNano()))
	r := rand.NewChaCha8(seed)
	_, _ = r.Read(data)
	return &valueSlab{data: data, size: recordSize}
}

// value returns the i-th record value; consecutive values do not overlap.
func (s *valueSlab) value(i int64) []byte {
	per := int64(len(s.data) / s.size)
	off := int((i % per) * int64(s.size))
	return s.data[off : off+s.size : off+s.size]
}

func binary64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// producerOpts are the franz-go options of a throughput producer.
func (c Config) producerOpts() []kgo.Opt {
	linger := max(c.Linger, 0)
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.seeds()...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.RequiredAcks(c.acks()),
		kgo.ProducerBatchCompression(codec(c.Compression)...),
		kgo.ProducerBatchMaxBytes(c.BatchMaxBytes),
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		// The bench owns its topic; a missing topic is a setup bug that
		// must fail fast rather than be retried for the default minute.
		kgo.UnknownTopicRetries(3),
	}
	if !c.Idempotent {
		opts = append(opts,
			kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(c.MaxInflight),
		)
	}
	return opts
}

// produce runs the produce phase: Producers clients share the records (or
// the duration), each producing asynchronously and counting completions
// in a promise, and the phase ends when every record is acknowledged.
// Every LatencySampleEvery-th record of each producer is timed.
//
// With txnRecords > 0 every producer is transactional (a transactional id
// of its own) and commits a transaction after each txnRecords records:
// it flushes, ends the transaction with a commit and begins the next, as
// Kafka's Java producer does in commitTransaction. The phase's time
// includes the last commit.
func produce(ctx context.Context, cfg Config, slab *valueSlab, txnRecords int64) (Phase, error) {
	clients := make([]*kgo.Client, cfg.Producers)
	txnPrefix := fmt.Sprintf("sluice-bench-%d", time.Now().UnixNano())
	for i := range clients {
		opts := cfg.producerOpts()
		if txnRecords > 0 {
			opts = append(opts, kgo.TransactionalID(fmt.Sprintf("%s-%d", txnPrefix, i)))
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			closeAll(clients)
			return Phase{}, fmt.Errorf("producer client: %w", err)
		}
		clients[i] = cl
	}
	defer closeAll(clients)
	// Connect and load the topic's metadata before the clock starts, so
	// that the figure is the steady state and not the first dial.
	for _, cl := range clients {
		if err := cl.Ping(ctx); err != nil {
			return Phase{}, fmt.Errorf("producer: %w", err)
		}
	}

	var (
		acked    atomic.Int64
		failed   atomic.Int64
		firstErr atomic.Pointer[error]
		// recs recycles kgo.Records: a promise gets the record back
		// when franz-go no longer references it.
		recs = sync.Pool{New: func() any { return new(kgo.Record) }}
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
		} else {
			acked.Add(1)
		}
		*r = kgo.Record{}
		recs.Put(r)
	}
	// timedPromise completes the sampled records, whose Timestamp was
	// read from the clock right before their Produce call: its monotonic
	// reading gives the latency without storing anything per record.
	// Only acknowledged records are timed.
	lat := new(histogram)
	timedPromise := func(r *kgo.Record, err error) {
		if err == nil {
			lat.record(time.Since(r.Timestamp))
		}
		promise(r, err)
	}

	var deadline time.Time
	start := time.Now()
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	var (
		wg       sync.WaitGroup
		produced atomic.Int64
	)
	for i, cl := range clients {
		// Split Records evenly; the first producers take the remainder.
		n := cfg.Records / int64(cfg.Producers)
		if int64(i) < cfg.Records%int64(cfg.Producers) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// end flushes and commits the open transaction, if any.
			inTxn := false
			end := func() bool {
				if !inTxn {
					return true
				}
				inTxn = false
				err := cl.Flush(ctx)
				if err == nil {
					err = cl.EndTransaction(ctx, kgo.TryCommit)
				}
				if err != nil {
					err = fmt.Errorf("commit: %w", err)
					firstErr.CompareAndSwap(nil, &err)
					return false
				}
				return true
			}
			// Each producer walks its own stride through the slab.
			next := int64(i) * (int64(len(slab.data)/slab.size) / int64(cfg.Producers))
			var (
				sent int64
				now  time.Time
			)
			for ; ; sent++ {
				if deadline.IsZero() {
					if sent >= n {
						break
					}
				} else if sent&1023 == 0 && !time.Now().Before(deadline) {
					break
				}
				if sent&1023 == 0 && ctx.Err() != nil {
					break
				}
				if txnRecords > 0 && sent%txnRecords == 0 {
					if !end() {
						break
					}
					if err := cl.BeginTransaction(); err != nil {
						err = fmt.Errorf("begin transaction: %w", err)
						firstErr.CompareAndSwap(nil, &err)
						break
					}
					inTxn = true
				}
				r := recs.Get().(*kgo.Record)
				r.Value = slab.value(next)
				next++
				if sent%LatencySampleEvery == 0 {
					// franz-go would call time.Now for every record;
					// a timestamp refreshed with each latency sample
					// is as good for a benchmark and much cheaper.
					now = time.Now()
					r.Timestamp = now
					cl.Produce(ctx, r, timedPromise)
					continue
				}
				r.Timestamp = now
				cl.Produce(ctx, r, promise)
			}
			produced.Add(sent)
			if txnRecords > 0 {
				end()
			}
			_ = cl.Flush(ctx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return Phase{}, err
	}
	if p := firstErr.Load(); p != nil {
		return Phase{}, fmt.Errorf("producing: %d of %d records failed, first: %w", failed.Load(), produced.Load(), *p)
	}
	if got, want := acked.Load(), produced.Load(); got != want {
		return Phase{}, fmt.Errorf("producing: %d of %d records have no acknowledgement", want-got, want)
	}
	ph := newPhase(acked.Load(), int64(cfg.RecordSize), elapsed)
	ph.Latency = lat.summary()
	return ph, nil
}

func closeAll(clients []*kgo.Client) {
	for _, cl := range clients {
		if cl != nil {
			cl.Close()
		}
	}
}
