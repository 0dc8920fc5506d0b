// Package cluster holds process-level tests of a replicated Sluice cluster: three `sluice broker`
// processes on loopback ports, killed with SIGKILL, stopped with SIGTERM and restarted in place, driven
// by franz-go clients.
package cluster

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

var (
	binPath string
	binErr  error
)

// TestMain builds cmd/sluice once into a temp dir (or takes $SLUICE_BIN) and checks for leaked
// goroutines after the tests.
func TestMain(m *testing.M) {
	binPath, binErr = testutil.BuildSluice()
	code := m.Run()
	testutil.RemoveBuilt()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startCluster starts three brokers with flush: always and waits until each lists all three. The
// processes are killed at cleanup, and every broker's log tail is printed if the test failed.
func startCluster(t *testing.T) *chaos.Cluster {
	t.Helper()
	require.NoError(t, binErr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := chaos.StartCluster(ctx, chaos.ClusterConfig{Bin: binPath, Dir: t.TempDir(), Brokers: 3})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(80))
		}
		cl.Close()
	})
	return cl
}

// testCtx is a context for one test step, bounded so that a hung broker fails the test instead of
// hanging it.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newClient returns a kgo client seeded with every broker and quick metadata refreshes, closed at
// cleanup.
func newClient(t *testing.T, cl *chaos.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(cl.Bootstrap()...),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.DialTimeout(time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, opts...)
	kcl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	return kcl
}

// createTopic creates a topic, retrying while the cluster settles, and waits until every running
// broker shows a leader and a full ISR for each partition.
func createTopic(t *testing.T, cl *chaos.Cluster, topic string, partitions int32, rf int16, minISR int) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, cl))
	v := strconv.Itoa(minISR)
	ctx := testCtx(t, time.Minute)
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "create "+topic, func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, partitions, rf, map[string]*string{"min.insync.replicas": &v}, topic)
		if err == nil {
			err = resp.Err
		}
		return err == nil, err
	}))
	require.NoError(t, cl.WaitHealthy(ctx, 30*time.Second, topic))
}

// producer writes chaos-format values ("p<producer>/<partition>/<seq>") and keeps the
// acknowledgements, so that a test can compare them with what is read back.
type producer struct {
	t   *testing.T
	kcl *kgo.Client
	id  int

	mu   sync.Mutex
	seq  map[topicPartition]int64
	acks map[topicPartition][]chaos.Ack
}

type topicPartition struct {
	topic     string
	partition int32
}

func newProducer(t *testing.T, kcl *kgo.Client, id int) *producer {
	return &producer{t: t, kcl: kcl, id: id, seq: map[topicPartition]int64{}, acks: map[topicPartition][]chaos.Ack{}}
}

func (p *producer) next(topic string, partition int32) chaos.Value {
	p.mu.Lock()
	defer p.mu.Unlock()
	tp := topicPartition{topic, partition}
	v := chaos.Value{Producer: p.id, Partition: partition, Seq: p.seq[tp]}
	p.seq[tp]++
	return v
}

// produce sends n records to topic/partition and waits for all their outcomes; it returns the first
// error and keeps the acknowledgements of the records that succeeded.
func (p *producer) produce(ctx context.Context, topic string, partition int32, n int) error {
	var wg sync.WaitGroup
	var first error
	var errMu sync.Mutex
	for range n {
		v := p.next(topic, partition)
		wg.Add(1)
		p.kcl.Produce(ctx, &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v.String())}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				errMu.Lock()
				if first == nil {
					first = err
				}
				errMu.Unlock()
				return
			}
			p.mu.Lock()
			p.acks[topicPartition{topic, partition}] = append(p.acks[topicPartition{topic, partition}], chaos.Ack{Offset: r.Offset, Value: v})
			p.mu.Unlock()
		})
	}
	wg.Wait()
	return first
}

// stream sends records to topic/partition, at most 64 unacknowledged, until ctx ends; then it waits
// for their outcomes and returns how many failed.
func (p *producer) stream(ctx context.Context, topic string, partition int32) int {
	var wg sync.WaitGroup
	failed := 0 // guarded by p.mu
	slots := make(chan struct{}, 64)
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		v := p.next(topic, partition)
		wg.Add(1)
		p.kcl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: partition, Value: []byte(v.String())}, func(r *kgo.Record, err error) {
			defer wg.Done()
			<-slots
			p.mu.Lock()
			defer p.mu.Unlock()
			if err != nil {
				failed++
				return
			}
			p.acks[topicPartition{topic, partition}] = append(p.acks[topicPartition{topic, partition}], chaos.Ack{Offset: r.Offset, Value: v})
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return failed
}

// acked returns a copy of the acknowledgements of topic by partition.
func (p *producer) acked(topic string) map[int32][]chaos.Ack {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int32][]chaos.Ack{}
	for tp, as := range p.acks {
		if tp.topic == topic {
			out[tp.partition] = slices.Clone(as)
		}
	}
	return out
}

// requireAllAcknowledged reads topic back and requires every acknowledged record of the producers at
// its acknowledged offset, once, in order. Records of other producers in the log are ignored.
func requireAllAcknowledged(t *testing.T, cl *chaos.Cluster, topic string, partitions int32, ps ...*producer) {
	t.Helper()
	ctx := testCtx(t, 2*time.Minute)
	logs, err := chaos.ReadPartitions(ctx, cl.Bootstrap(), topic, time.Minute)
	require.NoError(t, err)
	ids := map[int]bool{}
	acks := map[int32][]chaos.Ack{}
	for _, p := range ps {
		ids[p.id] = true
		for part, as := range p.acked(topic) {
			acks[part] = append(acks[part], as...)
		}
	}
	for part, recs := range logs {
		logs[part] = slices.DeleteFunc(recs, func(r chaos.LogRecord) bool {
			v, ok := chaos.ParseValue(r.Value)
			return ok && !ids[v.Producer]
		})
	}
	c := chaos.CheckTopic(partitions, acks, logs)
	for _, pc := range c.Partitions {
		require.Zero(t, pc.Violations(), "%s/%d: %+v", topic, pc.Partition, pc)
	}
	require.NotZero(t, c.Acked)
	t.Logf("%s: all %d acknowledged records read back (%d records in the log)", topic, c.Acked, c.InLog)
}

// viewOf returns the first running node's view of topic.
func viewOf(t *testing.T, cl *chaos.Cluster, topic string) chaos.View {
	t.Helper()
	v, err := cl.AnyView(testCtx(t, 10*time.Second), topic)
	require.NoError(t, err)
	return v
}
