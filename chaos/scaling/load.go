package scaling

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/chaos"
)

// loadGroup is the scenario's consumer group.
const loadGroup = "scaling"

// load is the scenario's clients: two producers and a consumer group, all through the gateway.
// Producers are idempotent (franz-go's default) with acks=all and unlimited retries within a
// generous delivery timeout; any error that reaches a callback or a poll is an error surfaced to
// the application.
type load struct {
	gw    string
	topic string

	acked atomic.Int64
	mu    sync.Mutex
	acks  map[int32][]chaos.Ack
	errs  []error
	// consumed holds the value consumed at each offset, per partition.
	consumed    map[int32]map[int64]string
	redelivered int
	ackTimes    []time.Time

	stopProduce, stopConsume context.CancelFunc
	producing, consuming     sync.WaitGroup
	producers                []*kgo.Client
	consumer                 *kgo.Client
}

func newLoad(gw, topic string) *load {
	return &load{gw: gw, topic: topic, acks: map[int32][]chaos.Ack{}, consumed: map[int32]map[int64]string{}}
}

func (l *load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err)
	}
}

// firstError is the first error the clients surfaced, nil if none.
func (l *load) firstError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d client errors, the first: %w", len(l.errs), l.errs[0])
}

func (l *load) newConsumer() (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(l.gw), kgo.ConsumerGroup(loadGroup), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
}

func (l *load) start(ctx context.Context) error {
	pctx, stopProduce := context.WithCancel(ctx)
	cctx, stopConsume := context.WithCancel(ctx)
	l.stopProduce, l.stopConsume = stopProduce, stopConsume
	for id := range 2 {
		kcl, err := kgo.NewClient(kgo.SeedBrokers(l.gw), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(3*time.Minute),
			kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			l.close()
			return err
		}
		l.producers = append(l.producers, kcl)
		l.producing.Add(1)
		go func() {
			defer l.producing.Done()
			l.produce(pctx, kcl, id)
		}()
	}
	kcl, err := l.newConsumer()
	if err != nil {
		l.close()
		return err
	}
	l.consumer = kcl
	l.consuming.Add(1)
	go func() {
		defer l.consuming.Done()
		l.consume(cctx)
	}()
	return nil
}

// produce keeps at most 256 records in flight, spread over the partitions round robin.
func (l *load) produce(ctx context.Context, kcl *kgo.Client, id int) {
	slots := make(chan struct{}, 256)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	seq := map[int32]int64{}
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		p := int32(i % Partitions)
		v := chaos.Value{Producer: id, Partition: p, Seq: seq[p]}
		seq[p]++
		inflight.Add(1)
		kcl.Produce(context.Background(), &kgo.Record{Topic: l.topic, Partition: p, Value: []byte(v.String())}, func(r *kgo.Record, err error) {
			defer inflight.Done()
			<-slots
			if err != nil {
				l.fail(fmt.Errorf("produce %s: %w", v, err))
				return
			}
			l.acked.Add(1)
			l.mu.Lock()
			l.acks[p] = append(l.acks[p], chaos.Ack{Offset: r.Offset, Value: v})
			l.ackTimes = append(l.ackTimes, time.Now())
			l.mu.Unlock()
		})
	}
}

func (l *load) consume(ctx context.Context) {
	for ctx.Err() == nil {
		fs := l.consumer.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				l.fail(fmt.Errorf("consume %s/%d: %w", topic, p, err))
			}
		})
		l.record(fs)
	}
}

func (l *load) record(fs kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		m := l.consumed[r.Partition]
		if m == nil {
			m = map[int64]string{}
			l.consumed[r.Partition] = m
		}
		if old, ok := m[r.Offset]; ok {
			l.redelivered++
			if old != string(r.Value) && len(l.errs) < 20 {
				l.errs = append(l.errs, fmt.Errorf("offset %d of partition %d read as %q and %q", r.Offset, r.Partition, old, r.Value))
			}
		}
		m[r.Offset] = string(r.Value)
	})
}

// rate is the acknowledged records per second over the last window.
func (l *load) rate(window time.Duration) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ackTimes) == 0 {
		return 0
	}
	last := l.ackTimes[len(l.ackTimes)-1]
	from := last.Add(-window)
	i := sort.Search(len(l.ackTimes), func(i int) bool { return !l.ackTimes[i].Before(from) })
	span := last.Sub(l.ackTimes[i]).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(len(l.ackTimes)-i) / span
}

// stop ends producing and waits for every outstanding acknowledgement (each producing loop waits
// for its records in flight before it returns; a Flush while the loops still produced could wait
// for ever); the consumer keeps going until consumeAll.
func (l *load) stop() {
	l.stopProduce()
	l.producing.Wait()
	for _, p := range l.producers {
		p.Close()
	}
	l.producers = nil
}

// close stops every client; safe after stop and more than once.
func (l *load) close() {
	if l.stopProduce != nil {
		l.stopProduce()
		l.stopConsume()
	}
	l.producing.Wait()
	l.consuming.Wait()
	for _, p := range l.producers {
		p.Close()
	}
	l.producers = nil
	if l.consumer != nil {
		l.consumer.Close()
		l.consumer = nil
	}
}

// consumeAll consumes (with a new client of the same group, the first one closed) until every
// acknowledged record was seen, and checks order and duplicates per partition. It returns the
// number of records the group received more than once.
func (l *load) consumeAll(ctx context.Context) (int, error) {
	l.stopConsume()
	l.consuming.Wait()
	l.consumer.Close()
	kcl, err := l.newConsumer()
	if err != nil {
		return 0, err
	}
	l.consumer = kcl
	missing := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for p, as := range l.acks {
			for _, a := range as {
				if _, ok := l.consumed[p][a.Offset]; !ok {
					n++
				}
			}
		}
		return n
	}
	if err := chaos.WaitFor(ctx, 2*time.Minute, "every acknowledged record consumed", func(ctx context.Context) (bool, error) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := kcl.PollFetches(pctx)
		cancel()
		l.record(fs)
		n := missing()
		return n == 0, fmt.Errorf("%d acknowledged records not consumed yet", n)
	}); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	logs := map[int32][]chaos.LogRecord{}
	for p, m := range l.consumed {
		offsets := make([]int64, 0, len(m))
		for o := range m {
			offsets = append(offsets, o)
		}
		slices.Sort(offsets)
		for _, o := range offsets {
			logs[p] = append(logs[p], chaos.LogRecord{Offset: o, Value: []byte(m[o])})
		}
	}
	c := chaos.CheckTopic(Partitions, l.acks, logs)
	for _, pc := range c.Partitions {
		if pc.Violations() > 0 {
			return 0, fmt.Errorf("%s/%d: %+v", l.topic, pc.Partition, pc)
		}
	}
	if len(l.errs) > 0 {
		return 0, fmt.Errorf("%d client errors, the first: %w", len(l.errs), l.errs[0])
	}
	return l.redelivered, nil
}
