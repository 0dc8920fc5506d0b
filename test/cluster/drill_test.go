package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/chaos"
)

// drillPartitions makes "within 10% of the mean" reachable for leaders on the final four brokers
// (ten each) when the balancer evens them out to within one per broker.
const drillPartitions = 40

// TestScalingDrill is issue 16's proof: three controllers+brokers and a gateway; idempotent acks=all
// producers and a consumer group that know only the gateway's address; two broker-only nodes join and
// the controller balances onto them by itself; a controller-only node is added to the quorum and an
// original broker leaves it, is drained, stopped and unregistered; another original broker is killed
// with SIGKILL and restarted. Afterwards every acknowledged record was consumed, in order per
// partition, without duplicates in the log; no client surfaced an error to the application; and
// replicas, leaders and bytes are within 10% of the mean per broker. It logs the time to reach balance
// and the acknowledged throughput before and during balancing (docs/benchmarks.md).
func TestScalingDrill(t *testing.T) {
	// The balancer looks every second and moves up to eight partitions at a time.
	cl := startPartialCluster(t, 3, 3, "flush: always\nauto.balance.interval.ms: 1000\nauto.balance.max.moves: 8\n")
	dir := t.TempDir()
	configPath := filepath.Join(dir, "broker.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte("flush: always\n"), 0o644))
	var bootstrapServers []string
	for _, n := range cl.Nodes() {
		bootstrapServers = append(bootstrapServers, n.ControllerAddr)
	}
	quorumFlag := []string{"--controller-quorum-bootstrap-servers", strings.Join(bootstrapServers, ",")}
	ctx := testCtx(t, 12*time.Minute)

	gw := startGateway(t, cl.Bootstrap())
	// The operator's tools talk to the brokers; the gateway presents the cluster as one broker.
	admin := newClientSeeds(t, cl.Bootstrap())
	const topic = "drill"
	createTopicAll(t, admin, topic, drillPartitions, 3, 2)

	// Clients that know only the gateway. Producers are idempotent (franz-go's default) with acks=all
	// and unlimited retries within a generous delivery timeout; any error that reaches a callback is
	// an error surfaced to the application.
	load := newDrillLoad(t, gw, topic)
	load.start(ctx)
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "first acknowledgements", func(context.Context) (bool, error) {
		return load.acked.Load() >= 2000, nil
	}))
	before := load.rate(10 * time.Second)
	t.Logf("acknowledged throughput before scaling: %.0f records/s", before)

	// Two broker-only nodes join; the controller balances by itself.
	var added []*procNode
	for _, name := range []string{"broker-a", "broker-b"} {
		n := newProcNode(t, name, configPath, append([]string{"--process-roles", "broker"}, quorumFlag...)...)
		n.start()
		added = append(added, n)
	}
	joined := time.Now()
	var newIDs []int32
	for _, n := range added {
		n.waitLogged("broker ready", 90*time.Second)
		newIDs = append(newIDs, n.nodeID())
	}
	brokers := append([]int32{1, 2, 3}, newIDs...)
	ackedAtJoin := load.acked.Load()
	balancedIn := waitBalanced(t, ctx, admin, topic, brokers, 5*time.Minute, false)
	during := float64(load.acked.Load()-ackedAtJoin) / time.Since(joined).Seconds()
	t.Logf("balanced on %v %s after the brokers joined; acknowledged throughput meanwhile %.0f records/s (%.0f%% of before)",
		brokers, balancedIn.Round(100*time.Millisecond), during, 100*during/before)

	// A controller-only node joins the quorum; broker 3 leaves it, is drained, stopped, unregistered.
	ctl4 := newProcNode(t, "controller-4", configPath, append([]string{"--node-id", "4", "--process-roles", "controller"}, quorumFlag...)...)
	ctl4.start()
	ctl4.waitLogged("controller ready", 90*time.Second)
	cli := []string{"--bootstrap", strings.Join([]string{cl.Node(1).Addr, added[0].Addr, added[1].Addr}, ",")}
	// runCLI runs `sluice cluster VERB [flags] ARGS...`, the bootstrap flag before the arguments.
	runCLI := func(verb string, args ...string) string {
		t.Helper()
		full := append(append([]string{"cluster", verb}, cli...), args...)
		out, err := sluiceCLI(ctx, full...)
		require.NoError(t, err, "sluice %v: %s", full, out)
		return out
	}
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "add-controller 4", func(ctx context.Context) (bool, error) {
		out, err := sluiceCLI(ctx, append(append([]string{"cluster", "add-controller"}, cli...), "4")...)
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		return true, nil
	}))
	runCLI("remove-controller", "3")
	out := runCLI("drain", "--timeout", "5m", "3")
	require.Contains(t, out, "safe to stop")
	require.NoError(t, cl.Stop(3, 30*time.Second))
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "unregister 3", func(ctx context.Context) (bool, error) {
		out, err := sluiceCLI(ctx, append(append([]string{"cluster", "unregister"}, cli...), "3")...)
		if err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		return true, nil
	}))
	brokers = []int32{1, 2, newIDs[0], newIDs[1]}

	// Kill -9 an original broker (a voter) and restart it.
	require.NoError(t, cl.Kill(2))
	require.NoError(t, cl.Restart(ctx, 2))

	q, err := describeQuorum(ctx, admin)
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2, 4}, q.voters)
	require.NotContains(t, q.observers, int32(3), "an unregistered broker leaves the Raft configuration")

	// Stop the load, read everything, check.
	require.NoError(t, chaos.WaitFor(ctx, 2*time.Minute, "ISRs full again", func(ctx context.Context) (bool, error) {
		return fullISRs(ctx, admin, topic)
	}))
	load.stop()
	require.Empty(t, load.errors(), "errors surfaced to the application")
	load.requireConsumedAll(t, ctx)
	waitBalanced(t, ctx, admin, topic, brokers, 5*time.Minute, true)
	requireBytesBalanced(t, ctx, []string{cl.Node(1).Addr, cl.Node(2).Addr, added[0].Addr, added[1].Addr}, topic, brokers)
	t.Logf("%d records acknowledged and consumed through the gateway", load.acked.Load())
}

// requireBytesBalanced checks that the bytes of topic on each broker are within 10% of the mean,
// asking each broker (addrs[i] is brokers[i]) for its own log dirs with DescribeLogDirs.
func requireBytesBalanced(t *testing.T, ctx context.Context, addrs []string, topic string, brokers []int32) {
	t.Helper()
	lastLog := time.Now()
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "bytes balanced", func(ctx context.Context) (bool, error) {
		bytes := map[int32]int{}
		for i, addr := range addrs {
			c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(time.Second), kgo.RequestRetries(0))
			if err != nil {
				return false, err
			}
			req := kmsg.NewPtrDescribeLogDirsRequest()
			rt := kmsg.NewDescribeLogDirsRequestTopic()
			rt.Topic = topic
			for p := int32(0); p < drillPartitions; p++ {
				rt.Partitions = append(rt.Partitions, p)
			}
			req.Topics = append(req.Topics, rt)
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := c.SeedBrokers()[0].Request(rctx, req)
			cancel()
			c.Close()
			if err != nil {
				return false, fmt.Errorf("log dirs of broker %d: %w", brokers[i], err)
			}
			for _, d := range resp.(*kmsg.DescribeLogDirsResponse).Dirs {
				for _, dt := range d.Topics {
					for _, dp := range dt.Partitions {
						bytes[brokers[i]] += int(dp.Size)
					}
				}
			}
		}
		err := within10(bytes, brokers, "bytes")
		if time.Since(lastLog) > 10*time.Second || err == nil {
			lastLog = time.Now()
			t.Logf("bytes of %s per broker: %v", topic, bytes)
		}
		return err == nil, err
	}))
}

// startGateway runs `sluice gateway` in front of seeds and returns its address.
func startGateway(t *testing.T, seeds []string) string {
	t.Helper()
	n := newProcNode(t, "gateway", "")
	n.args = []string{"gateway", "--listen", n.Addr, "--bootstrap", strings.Join(seeds, ","), "--metrics-listen", n.MetricsAddr}
	n.start()
	require.NoError(t, chaos.WaitFor(testCtx(t, time.Minute), time.Minute, "gateway answers", func(ctx context.Context) (bool, error) {
		kcl := newClientSeeds(t, []string{n.Addr})
		defer kcl.Close()
		_, err := liveBrokers(ctx, kcl)
		return err == nil, err
	}))
	return n.Addr
}

// drillLoad is the drill's clients: two producers and a consumer group, all through the gateway.
type drillLoad struct {
	t     *testing.T
	gw    string
	topic string

	acked atomic.Int64
	mu    sync.Mutex
	acks  map[int32][]chaos.Ack
	errs  []error
	// consumed holds the value consumed at each offset, per partition.
	consumed    map[int32]map[int64]string
	redelivered int

	ackTimes  []time.Time
	stopFn    context.CancelFunc
	wg        sync.WaitGroup
	producers []*kgo.Client
	consumer  *kgo.Client
}

func newDrillLoad(t *testing.T, gw, topic string) *drillLoad {
	return &drillLoad{t: t, gw: gw, topic: topic, acks: map[int32][]chaos.Ack{}, consumed: map[int32]map[int64]string{}}
}

func (l *drillLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, err)
	}
}

func (l *drillLoad) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *drillLoad) start(ctx context.Context) {
	ctx, l.stopFn = context.WithCancel(ctx)
	for id := range 2 {
		kcl, err := kgo.NewClient(kgo.SeedBrokers(l.gw), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordDeliveryTimeout(3*time.Minute),
			kgo.ProducerLinger(5*time.Millisecond))
		require.NoError(l.t, err)
		l.producers = append(l.producers, kcl)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.produce(ctx, kcl, id)
		}()
	}
	kcl, err := kgo.NewClient(kgo.SeedBrokers(l.gw), kgo.ConsumerGroup("drill"), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	require.NoError(l.t, err)
	l.consumer = kcl
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.consume(ctx)
	}()
}

// produce keeps at most 256 records in flight, spread over the partitions round robin.
func (l *drillLoad) produce(ctx context.Context, kcl *kgo.Client, id int) {
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
		p := int32(i % drillPartitions)
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

func (l *drillLoad) consume(ctx context.Context) {
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

func (l *drillLoad) record(fs kgo.Fetches) {
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
			if old != string(r.Value) {
				l.errs = append(l.errs, fmt.Errorf("offset %d of partition %d read as %q and %q", r.Offset, r.Partition, old, r.Value))
			}
		}
		m[r.Offset] = string(r.Value)
	})
}

// rate is the acknowledged records per second over the last window.
func (l *drillLoad) rate(window time.Duration) float64 {
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

// stop ends producing and waits for every outstanding acknowledgement; the consumer keeps going.
func (l *drillLoad) stop() {
	for _, p := range l.producers {
		p.Flush(context.Background())
	}
	l.stopFn()
	l.wg.Wait()
	for _, p := range l.producers {
		p.Close()
	}
}

// requireConsumedAll consumes (with a new client of the same group, the first one stopped) until
// every acknowledged record was seen, and checks order and duplicates per partition.
func (l *drillLoad) requireConsumedAll(t *testing.T, ctx context.Context) {
	l.consumer.Close()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(l.gw), kgo.ConsumerGroup("drill"), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	require.NoError(t, err)
	defer kcl.Close()
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
	require.NoError(t, chaos.WaitFor(ctx, 2*time.Minute, "every acknowledged record consumed", func(ctx context.Context) (bool, error) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := kcl.PollFetches(pctx)
		cancel()
		l.record(fs)
		n := missing()
		return n == 0, fmt.Errorf("%d acknowledged records not consumed yet", n)
	}))
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
	c := chaos.CheckTopic(drillPartitions, l.acks, logs)
	for _, pc := range c.Partitions {
		require.Zero(t, pc.Violations(), "%s/%d: %+v", l.topic, pc.Partition, pc)
	}
	require.Empty(t, l.errs)
	t.Logf("consumed %d acknowledged records in order, %d redelivered to the group (at-least-once)", c.Acked, l.redelivered)
}

// fullISRs reports whether every partition of topic has a leader and a full ISR.
func fullISRs(ctx context.Context, kcl *kgo.Client, topic string) (bool, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, kcl)
	if err != nil || len(resp.Topics) != 1 {
		return false, err
	}
	for _, p := range resp.Topics[0].Partitions {
		if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
			return false, nil
		}
	}
	return true, nil
}

// waitBalanced waits until every ISR of topic is full and its replicas are spread over brokers
// within one of the mean per broker (the balancer's own target); with strict, its replicas and the
// leaders of every partition of the cluster must be within 10% of the mean. It returns how long
// that took.
func waitBalanced(t *testing.T, ctx context.Context, kcl *kgo.Client, topic string, brokers []int32, timeout time.Duration, strict bool) time.Duration {
	t.Helper()
	start := time.Now()
	lastLog := start
	require.NoError(t, chaos.WaitFor(ctx, timeout, fmt.Sprintf("%s balanced over %v", topic, brokers), func(ctx context.Context) (bool, error) {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, kcl)
		if err != nil || len(resp.Topics) != 1 {
			return false, err
		}
		replicas, leaders := map[int32]int{}, map[int32]int{}
		for _, p := range resp.Topics[0].Partitions {
			if len(p.ISR) != len(p.Replicas) || len(p.Replicas) != 3 {
				return false, fmt.Errorf("%s/%d: replicas %v isr %v", topic, p.Partition, p.Replicas, p.ISR)
			}
			leaders[p.Leader]++
			for _, r := range p.Replicas {
				replicas[r]++
			}
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("after %s: replicas %v leaders %v", time.Since(start).Round(time.Second), replicas, leaders)
		}
		if !strict {
			err := withinOne(replicas, brokers, "replicas")
			return err == nil, err
		}
		if err := within10(replicas, brokers, "replicas"); err != nil {
			return false, err
		}
		// Leaders are balanced over the cluster (the balancer evens out preferred leaders over
		// every partition, __consumer_offsets included), not per topic.
		all, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, kcl)
		if err != nil {
			return false, err
		}
		clusterLeaders := map[int32]int{}
		for _, t := range all.Topics {
			for _, p := range t.Partitions {
				clusterLeaders[p.Leader]++
			}
		}
		err = within10(clusterLeaders, brokers, "leaders over every topic")
		return err == nil, err
	}))
	return time.Since(start)
}

// withinOne checks that counts over brokers (and nothing else) are within one of their mean.
func withinOne(counts map[int32]int, brokers []int32, what string) error {
	total := 0
	for id, n := range counts {
		if !slices.Contains(brokers, id) {
			return fmt.Errorf("%s on broker %d, not one of %v", what, id, brokers)
		}
		total += n
	}
	mean := float64(total) / float64(len(brokers))
	for _, id := range brokers {
		if d := float64(counts[id]) - mean; d >= 1 || d <= -1 {
			return fmt.Errorf("%s per broker %v, mean %.1f", what, counts, mean)
		}
	}
	return nil
}

// within10 checks that counts over brokers (and nothing else) are within 10% of their mean.
func within10(counts map[int32]int, brokers []int32, what string) error {
	total := 0
	for id, n := range counts {
		if !slices.Contains(brokers, id) {
			return fmt.Errorf("%s on broker %d, not one of %v", what, id, brokers)
		}
		total += n
	}
	mean := float64(total) / float64(len(brokers))
	for _, id := range brokers {
		if d := float64(counts[id]) - mean; d > 0.1*mean || d < -0.1*mean {
			return fmt.Errorf("%s per broker %v, mean %.1f", what, counts, mean)
		}
	}
	return nil
}
