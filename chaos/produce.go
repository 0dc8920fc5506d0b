package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Value is the identity of a produced record: which producer sent it to which partition, as the
// how-manieth record of that producer on that partition.
type Value struct {
	Producer  int
	Partition int32
	Seq       int64
}

// String is the record value as produced: "p<producer>/<partition>/<seq>".
func (v Value) String() string { return fmt.Sprintf("p%d/%d/%d", v.Producer, v.Partition, v.Seq) }

// ParseValue parses a record value written by a chaos producer.
func ParseValue(b []byte) (Value, bool) {
	s, ok := strings.CutPrefix(string(b), "p")
	if !ok {
		return Value{}, false
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return Value{}, false
	}
	prod, err1 := strconv.Atoi(parts[0])
	part, err2 := strconv.ParseInt(parts[1], 10, 32)
	seq, err3 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Value{}, false
	}
	return Value{Producer: prod, Partition: int32(part), Seq: seq}, true
}

// Ack is an acknowledged record: the broker said Value is at Offset.
type Ack struct {
	Offset int64
	Value  Value
}

// ledger collects the acknowledgements of all producers and fires failover watchers.
type ledger struct {
	mu       sync.Mutex
	acks     map[int32][]Ack
	failed   int64
	failures map[string]int
	dataLoss int
	watchers []*watcher
	latency  []time.Duration // produce call to acknowledgement, every record
}

// watcher waits for the first acknowledgement, on one partition, of a record issued at or after a
// given time.
type watcher struct {
	partition int32
	after     time.Time
	acked     chan time.Time // receives the acknowledgement time once
	fired     bool
}

func newLedger() *ledger {
	return &ledger{acks: map[int32][]Ack{}, failures: map[string]int{}}
}

func (l *ledger) ack(a Ack, issued, acked time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acks[a.Value.Partition] = append(l.acks[a.Value.Partition], a)
	l.latency = append(l.latency, acked.Sub(issued))
	kept := l.watchers[:0]
	for _, w := range l.watchers {
		if w.partition == a.Value.Partition && !issued.Before(w.after) {
			w.fired = true
			w.acked <- acked
			continue
		}
		kept = append(kept, w)
	}
	l.watchers = kept
}

func (l *ledger) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	l.failures[err.Error()]++
}

// watch registers a watcher for records of partition issued at or after after.
func (l *ledger) watch(partition int32, after time.Time) *watcher {
	w := &watcher{partition: partition, after: after, acked: make(chan time.Time, 1)}
	l.mu.Lock()
	l.watchers = append(l.watchers, w)
	l.mu.Unlock()
	return w
}

// unwatch drops watchers that never fired.
func (l *ledger) unwatch(ws []*watcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.watchers[:0]
	for _, w := range l.watchers {
		drop := false
		for _, x := range ws {
			drop = drop || x == w
		}
		if !drop {
			kept = append(kept, w)
		}
	}
	l.watchers = kept
}

func (l *ledger) counts() (acked, failed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, as := range l.acks {
		acked += int64(len(as))
	}
	return acked, l.failed
}

// latencies returns the acknowledgement latencies, sorted.
func (l *ledger) latencies() []time.Duration {
	l.mu.Lock()
	ds := slices.Clone(l.latency)
	l.mu.Unlock()
	slices.Sort(ds)
	return ds
}

// snapshot returns copies of the acknowledgements by partition and the failures by message.
func (l *ledger) snapshot() (map[int32][]Ack, map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	acks := make(map[int32][]Ack, len(l.acks))
	for p, as := range l.acks {
		acks[p] = append([]Ack(nil), as...)
	}
	failures := make(map[string]int, len(l.failures))
	for k, v := range l.failures {
		failures[k] = v
	}
	return acks, failures, l.dataLoss
}

// producers are cfg.Producers idempotent acks=all kgo clients, each writing to every partition at an
// even share of cfg.Rate.
type producers struct {
	cfg     Config
	clients []*kgo.Client
	ledger  *ledger
	wg      sync.WaitGroup
}

// producerOpts are the kgo options of a chaos producer: idempotent (kgo's default), acks from the
// whole ISR, bounded delivery time, and retry and metadata timings like Kafka's Java client.
func producerOpts(cfg Config, seeds []string, onDataLoss func(string, int32)) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProduceRequestTimeout(5 * time.Second),
		kgo.MetadataMinAge(cfg.MetadataMinAge),
		kgo.RetryBackoffFn(javaBackoff(cfg.RetryBackoffMax)),
		kgo.DialTimeout(2 * time.Second),
		kgo.ProducerOnDataLossDetected(onDataLoss),
	}
}

// javaBackoff is Kafka's Java client backoff: 100ms doubling up to maxBackoff (retry.backoff.ms and
// retry.backoff.max.ms), with 20% jitter.
func javaBackoff(maxBackoff time.Duration) func(int) time.Duration {
	return func(tries int) time.Duration {
		d := 100 * time.Millisecond
		for i := 1; i < tries && d < maxBackoff; i++ {
			d *= 2
		}
		d = min(d, maxBackoff)
		return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	}
}

func startProducers(ctx context.Context, cfg Config, seeds []string, l *ledger) (*producers, error) {
	ps := &producers{cfg: cfg, ledger: l}
	onDataLoss := func(string, int32) {
		l.mu.Lock()
		l.dataLoss++
		l.mu.Unlock()
	}
	for i := 0; i < cfg.Producers; i++ {
		cl, err := kgo.NewClient(producerOpts(cfg, seeds, onDataLoss)...)
		if err != nil {
			ps.close()
			return nil, err
		}
		ps.clients = append(ps.clients, cl)
	}
	interval := time.Second * time.Duration(cfg.Producers*int(cfg.Partitions)) / time.Duration(cfg.Rate)
	for i, cl := range ps.clients {
		for p := int32(0); p < cfg.Partitions; p++ {
			ps.wg.Add(1)
			go func() {
				defer ps.wg.Done()
				ps.produceLoop(ctx, cl, i, p, interval)
			}()
		}
	}
	return ps, nil
}

// produceLoop sends sequenced records to one partition until ctx ends, at most InFlight unacknowledged.
func (ps *producers) produceLoop(ctx context.Context, cl *kgo.Client, producer int, partition int32, interval time.Duration) {
	slots := make(chan struct{}, ps.cfg.InFlight)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := int64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		v := Value{Producer: producer, Partition: partition, Seq: seq}
		issued := time.Now()
		rec := &kgo.Record{Partition: partition, Value: []byte(v.String())}
		// The record is not tied to ctx: a cancelled context fails unsent records, and stopping the
		// producers is done by Flush, which waits for every record's outcome.
		cl.Produce(context.Background(), rec, func(r *kgo.Record, err error) {
			now := time.Now()
			<-slots
			if err != nil {
				ps.ledger.fail(err)
				return
			}
			ps.ledger.ack(Ack{Offset: r.Offset, Value: v}, issued, now)
		})
	}
}

// stop ends the produce loops and waits up to timeout for every record's outcome.
func (ps *producers) stop(cancel context.CancelFunc, timeout time.Duration) error {
	cancel()
	ps.wg.Wait()
	ctx, cancelFlush := context.WithTimeout(context.Background(), timeout)
	defer cancelFlush()
	var err error
	for _, cl := range ps.clients {
		if ferr := cl.Flush(ctx); ferr != nil && err == nil {
			err = fmt.Errorf("flush producers: %w", ferr)
		}
	}
	ps.close()
	return err
}

func (ps *producers) close() {
	for _, cl := range ps.clients {
		cl.Close()
	}
}

// topFailures formats the most frequent produce errors.
func topFailures(failures map[string]int, n int) []string {
	type kv struct {
		msg   string
		count int
	}
	var all []kv
	for m, c := range failures {
		all = append(all, kv{m, c})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].count > all[j].count })
	var out []string
	for i, e := range all {
		if i == n {
			break
		}
		out = append(out, fmt.Sprintf("%d x %s", e.count, e.msg))
	}
	return out
}
