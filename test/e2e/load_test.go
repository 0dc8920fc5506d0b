package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/chaos"
)

// load is idempotent acks=all producers writing sequenced records (chaos.Value) to every
// partition of a topic, keeping every acknowledgement so that the log can be checked against
// them afterwards.
type load struct {
	topic      string
	partitions int32
	clients    []*kgo.Client
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu       sync.Mutex
	acks     map[int32][]chaos.Ack
	failures map[string]int
	dataLoss int
}

// Load shape: producers x partitions loops, each sending one record every loadInterval with at
// most loadInFlight unacknowledged: 2 x 6 x 100/s = 1200 records/s offered.
const (
	loadProducers  = 2
	loadInterval   = 10 * time.Millisecond
	loadInFlight   = 16
	loadPartitions = 6
)

// createTopic creates a topic with replication factor 3 and min.insync.replicas 2, so that an
// acks=all write with one broker down is still acknowledged by two replicas.
func createTopic(ctx context.Context, seeds []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	minISR := "2"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, loadPartitions, 3, map[string]*string{"min.insync.replicas": &minISR}, topic)
	if err != nil {
		return err
	}
	return resp.Err
}

func startLoad(seeds []string, topic string) (*load, error) {
	l := &load{topic: topic, partitions: loadPartitions, acks: map[int32][]chaos.Ack{}, failures: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for range loadProducers {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(seeds...),
			kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is kgo's default with acks=all
			kgo.RecordDeliveryTimeout(60*time.Second),
			kgo.ProduceRequestTimeout(5*time.Second),
			kgo.MetadataMinAge(250*time.Millisecond),
			kgo.DialTimeout(2*time.Second),
			kgo.ProducerOnDataLossDetected(func(string, int32) {
				l.mu.Lock()
				l.dataLoss++
				l.mu.Unlock()
			}),
		)
		if err != nil {
			l.close()
			return nil, err
		}
		l.clients = append(l.clients, cl)
	}
	for i, cl := range l.clients {
		for p := range l.partitions {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.produceLoop(ctx, cl, i, p)
			}()
		}
	}
	return l, nil
}

func (l *load) produceLoop(ctx context.Context, cl *kgo.Client, producer int, partition int32) {
	slots := make(chan struct{}, loadInFlight)
	tick := time.NewTicker(loadInterval)
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
		v := chaos.Value{Producer: producer, Partition: partition, Seq: seq}
		// Not tied to ctx: stop flushes, so every record sent gets its outcome.
		cl.Produce(context.Background(), &kgo.Record{Partition: partition, Value: []byte(v.String())}, func(r *kgo.Record, err error) {
			<-slots
			l.mu.Lock()
			defer l.mu.Unlock()
			if err != nil {
				l.failures[err.Error()]++
				return
			}
			l.acks[partition] = append(l.acks[partition], chaos.Ack{Offset: r.Offset, Value: v})
		})
	}
}

// minAcked is the fewest acknowledgements of any partition.
func (l *load) minAcked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := -1
	for p := range l.partitions {
		if c := len(l.acks[p]); n < 0 || c < n {
			n = c
		}
	}
	return n
}

// stop ends the loops and waits up to timeout for the outcome of every record sent.
func (l *load) stop(timeout time.Duration) error {
	l.cancel()
	l.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for _, cl := range l.clients {
		if ferr := cl.Flush(ctx); ferr != nil && err == nil {
			err = fmt.Errorf("flush producers: %w", ferr)
		}
	}
	l.close()
	return err
}

func (l *load) close() {
	for _, cl := range l.clients {
		cl.Close()
	}
}

// counts returns acknowledged and failed records.
func (l *load) counts() (acked, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, as := range l.acks {
		acked += len(as)
	}
	for _, n := range l.failures {
		failed += n
	}
	return acked, failed
}

// failureSummary lists the most frequent produce errors.
func (l *load) failureSummary() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for msg, n := range l.failures {
		out = append(out, fmt.Sprintf("%d x %s", n, msg))
	}
	sort.Strings(out)
	return out
}

// verify reads the topic back and compares it with the acknowledgements.
func (l *load) verify(ctx context.Context, seeds []string) (chaos.Check, error) {
	logs, err := chaos.ReadPartitions(ctx, seeds, l.topic, 90*time.Second)
	if err != nil {
		return chaos.Check{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return chaos.CheckTopic(l.partitions, l.acks, logs), nil
}
