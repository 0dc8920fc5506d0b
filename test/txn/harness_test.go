// Package txn holds the client tests of Kafka transactions against real `sluice broker` processes: a
// single broker with replication factor 1 and a 3-broker cluster with replication factor 3, driven by
// franz-go (GroupTransactSession and the transactional producer), sarama's transactional producer and
// librdkafka (Debian's python3-confluent-kafka run with /usr/bin/python3).
//
// Every check reads back with a read_committed consumer and a read_uncommitted one. To know that a
// read has reached the end of a partition, the tests write a non-transactional sentinel record to every
// partition after the transactions under test: a read_committed consumer sees a sentinel only once every
// transaction before it is decided (the last stable offset passed it), so "sentinel seen on every
// partition" is the end of the read, with no quiet period to wait out.
package txn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// sentinel is the value of the end-of-read record written to every partition.
const sentinel = "sentinel"

var (
	binPath string
	binErr  error
)

// TestMain builds cmd/sluice once (or takes $SLUICE_BIN), stops the shared deployments after the
// tests and checks for leaked goroutines.
func TestMain(m *testing.M) {
	binPath, binErr = testutil.BuildSluice()
	code := m.Run()
	for _, d := range shared {
		d.stop()
	}
	testutil.RemoveBuilt()
	if code == 0 {
		if err := goleak.Find(
			// sarama's metrics registry starts one process-wide meter ticker.
			goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// deployment is a running set of brokers and the replication factor its topics get.
type deployment struct {
	name    string
	brokers int
	rf      int16
	minISR  int

	once sync.Once
	dir  string
	cl   *chaos.Cluster
	err  error
}

// shared are the deployments most tests run against, started on first use and stopped by TestMain.
var shared = []*deployment{
	{name: "single", brokers: 1, rf: 1, minISR: 1},
	{name: "cluster", brokers: 3, rf: 3, minISR: 2},
}

// forEachDeployment runs f as a subtest against each shared deployment.
func forEachDeployment(t *testing.T, f func(t *testing.T, d *deployment)) {
	for _, d := range shared {
		t.Run(d.name, func(t *testing.T) {
			d.start(t)
			t.Cleanup(func() {
				if t.Failed() && d.cl != nil {
					t.Logf("broker logs:\n%s", d.cl.Logs(60))
				}
			})
			f(t, d)
		})
	}
}

// start starts the deployment once; a deployment that failed to start fails every test using it.
func (d *deployment) start(t *testing.T) {
	t.Helper()
	require.NoError(t, binErr)
	d.once.Do(func() {
		d.dir, d.err = os.MkdirTemp("", "sluice-txn-"+d.name+"-")
		if d.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		d.cl, d.err = chaos.StartCluster(ctx, chaos.ClusterConfig{Bin: binPath, Dir: d.dir, Brokers: d.brokers})
	})
	require.NoError(t, d.err, "start the %s deployment", d.name)
}

func (d *deployment) stop() {
	if d.cl != nil {
		d.cl.Close()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// ownDeployment starts a deployment of its own for a test that kills brokers, stopped at cleanup.
func ownDeployment(t *testing.T, brokers int) *deployment {
	t.Helper()
	require.NoError(t, binErr)
	d := &deployment{name: fmt.Sprintf("own-%d", brokers), brokers: brokers, rf: int16(min(brokers, 3)), minISR: min(brokers, 2)}
	d.cl = brokertest.StartProcesses(t, chaos.ClusterConfig{Bin: binPath, Brokers: brokers})
	return d
}

// testCtx is a context for one test step, bounded so that a hung broker fails the test instead of
// hanging it.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns prefix followed by random hex, for topics, groups and transactional ids.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// client returns a kgo client seeded with every broker, quick to notice a new leader or coordinator,
// closed at cleanup.
func (d *deployment) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(d.cl.Bootstrap()...),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.DialTimeout(time.Second),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, opts...)
	kcl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	return kcl
}

// admin returns a kadm client over its own kgo client.
func (d *deployment) admin(t *testing.T) *kadm.Client {
	return kadm.NewClient(d.client(t))
}

// createTopic creates a topic with the deployment's replication factor and min.insync.replicas and
// waits until every broker shows a full ISR.
func (d *deployment) createTopic(t *testing.T, topic string, partitions int32) {
	t.Helper()
	adm := d.admin(t)
	v := strconv.Itoa(d.minISR)
	ctx := testCtx(t, 2*time.Minute)
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "create "+topic, func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, partitions, d.rf, map[string]*string{"min.insync.replicas": &v}, topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			return true, nil
		}
		return err == nil, err
	}))
	require.NoError(t, d.cl.WaitHealthy(ctx, time.Minute, topic))
}

// producePlain writes values with a non-transactional idempotent producer, round-robin over the
// partitions when partition is -1, and waits for every acknowledgement.
func (d *deployment) producePlain(t *testing.T, topic string, partition int32, values ...string) {
	t.Helper()
	kcl := d.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer kcl.Close()
	parts := d.partitions(t, topic)
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		p := partition
		if p < 0 {
			p = int32(i % parts)
		}
		rs[i] = &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}
	}
	require.NoError(t, kcl.ProduceSync(testCtx(t, time.Minute), rs...).FirstErr())
}

// partitions returns the partition count of topic.
func (d *deployment) partitions(t *testing.T, topic string) int {
	t.Helper()
	td, err := d.admin(t).ListTopics(testCtx(t, 30*time.Second), topic)
	require.NoError(t, err)
	require.NoError(t, td[topic].Err)
	return len(td[topic].Partitions)
}

// readBack writes a fresh sentinel to every partition of topic and reads every partition from its
// start up to that sentinel with the given isolation level, returning the values before it (other
// sentinels left out), per partition in offset order.
func (d *deployment) readBack(t *testing.T, topic string, level kgo.IsolationLevel) map[int32][]string {
	t.Helper()
	s := d.writeSentinels(t, topic)
	got, err := d.readTo(t, topic, level, s, 2*time.Minute)
	require.NoError(t, err)
	return got
}

// writeSentinels writes one new sentinel record (the same value) to every partition of topic and
// returns its value.
func (d *deployment) writeSentinels(t *testing.T, topic string) string {
	t.Helper()
	s := uniqueName(sentinel)
	for p := range d.partitions(t, topic) {
		d.producePlain(t, topic, int32(p), s)
	}
	return s
}

// readTo reads every partition of topic from the start to the record whose value is until.
func (d *deployment) readTo(t *testing.T, topic string, level kgo.IsolationLevel, until string, timeout time.Duration) (map[int32][]string, error) {
	t.Helper()
	n := d.partitions(t, topic)
	kcl := d.client(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	defer kcl.Close()
	ctx := testCtx(t, timeout)
	got := map[int32][]string{}
	done := map[int32]bool{}
	for len(done) < n {
		fs := kcl.PollFetches(ctx)
		if ctx.Err() != nil {
			return got, fmt.Errorf("read %s (%s): sentinel seen on %d of %d partitions after %v; read so far: %v",
				topic, isolationName(level), len(done), n, timeout, summarize(got))
		}
		for _, e := range fs.Errors() {
			// Leadership moves and restarts are retried by kgo; anything else is worth knowing.
			t.Logf("read %s: fetch error on %s/%d: %v", topic, e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			v := string(r.Value)
			switch {
			case done[r.Partition]:
			case v == until:
				done[r.Partition] = true
			case strings.HasPrefix(v, sentinel):
			default:
				got[r.Partition] = append(got[r.Partition], v)
			}
		})
	}
	return got, nil
}

func isolationName(level kgo.IsolationLevel) string {
	if level == kgo.ReadCommitted() {
		return "read_committed"
	}
	return "read_uncommitted"
}

// summarize counts values per partition, for failure messages.
func summarize(m map[int32][]string) string {
	var sb strings.Builder
	for p, vs := range m {
		fmt.Fprintf(&sb, "p%d:%d ", p, len(vs))
	}
	return sb.String()
}

// all flattens a per-partition read into one list, partition by partition.
func all(m map[int32][]string) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[p]...)
	}
	return out
}

// withPrefix returns the values that start with prefix.
func withPrefix(vs []string, prefix string) []string {
	var out []string
	for _, v := range vs {
		if strings.HasPrefix(v, prefix) {
			out = append(out, v)
		}
	}
	return out
}

// numbered returns prefix0 .. prefix(n-1).
func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// stableOffsets returns, per partition of topic, the read_uncommitted end offset (the high watermark)
// and the read_committed one (the last stable offset).
func (d *deployment) stableOffsets(t *testing.T, adm *kadm.Client, topic string) (hw, lso map[int32]int64, err error) {
	ctx := testCtx(t, 30*time.Second)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	committed, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	hw, lso = map[int32]int64{}, map[int32]int64{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
		hw[o.Partition] = o.Offset
	})
	committed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
		lso[o.Partition] = o.Offset
	})
	return hw, lso, errors.Join(errs...)
}

// isFenced reports whether err is what Kafka returns to a producer whose epoch was bumped by another
// producer with the same transactional id or by the coordinator's timeout abort.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}
