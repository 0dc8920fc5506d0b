package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestMain removes the sluice binary the process tests built (they build it on
// first use, or take $SLUICE_BIN) and checks for leaked goroutines.
func TestMain(m *testing.M) {
	code := m.Run()
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

// startCluster starts n `sluice broker` processes on loopback ports, killed at
// cleanup.
func startCluster(t testing.TB, n int) *chaos.Cluster {
	t.Helper()
	bin := testutil.SluiceBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := chaos.StartCluster(ctx, chaos.ClusterConfig{Bin: bin, Dir: t.TempDir(), Brokers: n})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(60))
		}
		cl.Close()
	})
	return cl
}

// testGateway is an in-process gateway.
type testGateway struct {
	*Gateway
	reg  *prometheus.Registry
	logs *testutil.Buffer
}

// startGateway starts a gateway in front of bootstrap on 127.0.0.1:0 and waits
// until it serves. It is stopped at cleanup; its log is printed if the test
// failed.
func startGateway(t testing.TB, bootstrap []string, adjust ...func(*Config)) *testGateway {
	t.Helper()
	return startGatewayCtx(t, context.Background(), bootstrap, adjust...)
}

// startGatewayCtx is startGateway for a gateway that stops when ctx ends.
func startGatewayCtx(t testing.TB, parent context.Context, bootstrap []string, adjust ...func(*Config)) *testGateway {
	t.Helper()
	cfg := Config{Listen: "127.0.0.1:0", Bootstrap: bootstrap, NodeID: 100, MetadataMaxAge: 2 * time.Second}
	for _, a := range adjust {
		a(&cfg)
	}
	logs := &testutil.Buffer{}
	reg := prometheus.NewRegistry()
	g, err := New(cfg, slog.New(slog.NewTextHandler(logs, nil)), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(parent)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop within 20s")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", tail(logs.String(), 60))
		}
	})
	testutil.WaitFor(t, 60*time.Second, "gateway ready", func() bool { return strings.Contains(logs.String(), "gateway ready") })
	return &testGateway{Gateway: g, reg: reg, logs: logs}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// newClient is a kgo client that knows only the gateway's address.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.RetryTimeout(time.Minute)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// createTopic creates a topic through the gateway, retrying while the cluster
// settles.
func createTopic(t testing.TB, addr, topic string, partitions int32, rf int16) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	testutil.WaitForErr(t, time.Minute, "create "+topic, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := adm.CreateTopic(ctx, partitions, rf, nil, topic)
		if err == nil {
			err = resp.Err
		}
		return err == nil, err
	})
}

// TestGatewayProduceConsume produces keyed records through the gateway to an RF 3
// topic whose partitions are led by all three brokers, and reads them back in
// order per partition with a consumer group that knows only the gateway.
func TestGatewayProduceConsume(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic, n = "gw-basic", 3000
	createTopic(t, g.Addr(), topic, 6, 3)

	// the client sees the cluster's brokers and leaders, every broker at the
	// gateway's address
	adm := kadm.NewClient(newClient(t, g.Addr()))
	md, err := adm.Metadata(testCtx(t, 30*time.Second), topic)
	require.NoError(t, err)
	require.Len(t, md.Brokers, 3)
	host, port, err := net.SplitHostPort(g.Addr())
	require.NoError(t, err)
	ids := map[int32]bool{}
	for _, b := range md.Brokers {
		require.Equal(t, host, b.Host)
		require.Equal(t, port, fmt.Sprint(b.Port))
		ids[b.NodeID] = true
	}
	require.Len(t, md.Topics[topic].Partitions, 6)
	leaders := map[int32]bool{}
	for _, p := range md.Topics[topic].Partitions {
		require.True(t, ids[p.Leader], "leader %d is one of the brokers listed", p.Leader)
		leaders[p.Leader] = true
		require.Len(t, p.Replicas, 3)
	}
	require.Greater(t, len(leaders), 1, "the partitions' leaders are the cluster's, not one")

	prod := newClient(t, g.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()))
	ctx := testCtx(t, 2*time.Minute)
	for i := 0; i < n; i++ {
		prod.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i % 60)), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	require.NoError(t, prod.Flush(ctx))

	cons := newClient(t, g.Addr(), kgo.ConsumerGroup("gw-basic-group"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	last := map[string]int{}
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d", got, n)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			var v int
			_, err := fmt.Sscan(string(r.Value), &v)
			require.NoError(t, err)
			if prev, ok := last[string(r.Key)]; ok {
				require.Greater(t, v, prev, "key %s out of order", r.Key)
			}
			last[string(r.Key)] = v
			got++
		})
	}
	require.Equal(t, n, got)
	require.NoError(t, cons.CommitUncommittedOffsets(ctx))
	offs, err := adm.FetchOffsets(ctx, "gw-basic-group")
	require.NoError(t, err)
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	require.Equal(t, int64(n), committed)
}

// TestGatewayBrokerKilled keeps an idempotent acks=all producer and a consumer
// group that know only the gateway busy while a broker is killed (SIGKILL) and
// restarted: leadership moves twice, the clients see no error, and every
// acknowledged record is consumed, in order per partition.
func TestGatewayBrokerKilled(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic = "gw-failover"
	createTopic(t, g.Addr(), topic, 6, 3)
	ctx := testCtx(t, 4*time.Minute)

	prod := newClient(t, g.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var mu sync.Mutex
	acked := map[int32][]int{} // partition -> acknowledged sequence numbers
	var prodErrs []error
	stop := make(chan struct{})
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := int32(i % 6)
			seq := i / 6
			prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(seq))}, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					prodErrs = append(prodErrs, err)
					return
				}
				acked[r.Partition] = append(acked[r.Partition], seq)
			})
			if i%200 == 199 {
				time.Sleep(20 * time.Millisecond) // pace the producer; not a wait for anything
			}
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acked {
			n += len(a)
		}
		return n
	}
	testutil.WaitFor(t, time.Minute, "records acknowledged before the kill", func() bool { return ackedCount() > 2000 })
	victim := cl.Running()[0]
	require.NoError(t, cl.Kill(victim))
	before := ackedCount()
	testutil.WaitFor(t, 2*time.Minute, "records acknowledged after the kill", func() bool { return ackedCount() > before+3000 })
	require.NoError(t, cl.Restart(ctx, victim))
	before = ackedCount()
	testutil.WaitFor(t, 2*time.Minute, "records acknowledged after the restart", func() bool { return ackedCount() > before+2000 })
	close(stop)
	<-prodDone
	require.NoError(t, prod.Flush(ctx))
	mu.Lock()
	require.Empty(t, prodErrs, "the producer saw errors")
	want := map[int32][]int{}
	total := 0
	for p, a := range acked {
		want[p] = append([]int(nil), a...)
		total += len(a)
	}
	mu.Unlock()

	cons := newClient(t, g.Addr(), kgo.ConsumerGroup("gw-failover-group"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := map[int32][]int{}
	n := 0
	for n < total {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consumed %d of %d", n, total)
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			var v int
			_, err := fmt.Sscan(string(r.Value), &v)
			require.NoError(t, err)
			got[r.Partition] = append(got[r.Partition], v)
			n++
		})
	}
	for p, seqs := range want {
		// idempotence: exactly the acknowledged records, in order, no duplicates
		require.Equal(t, seqs, got[p], "partition %d", p)
	}
}

// roundRobin is a TCP load balancer for tests: each connection goes to the
// next live backend; a backend that refuses is skipped.
type roundRobin struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
	wg       sync.WaitGroup
	conns    map[net.Conn]struct{}
}

func (rr *roundRobin) serve() {
	defer rr.wg.Done()
	for {
		c, err := rr.ln.Accept()
		if err != nil {
			return
		}
		rr.mu.Lock()
		backends := rr.backends
		rr.mu.Unlock()
		var up net.Conn
		for i := 0; i < len(backends) && up == nil; i++ {
			rr.mu.Lock()
			addr := backends[rr.next%len(backends)]
			rr.next++
			rr.mu.Unlock()
			up, _ = net.DialTimeout("tcp", addr, 2*time.Second)
		}
		if up == nil {
			c.Close()
			continue
		}
		rr.mu.Lock()
		rr.conns[c], rr.conns[up] = struct{}{}, struct{}{}
		rr.mu.Unlock()
		rr.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer rr.wg.Done()
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
			rr.mu.Lock()
			delete(rr.conns, dst)
			delete(rr.conns, src)
			rr.mu.Unlock()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// TestTwoGatewaysBehindOneAddress runs two gateway instances with the same
// node id and advertised address (a round-robin load balancer in front of
// both). A producer and a consumer group know only that address; one instance
// is stopped midway, the clients reconnect through the other and carry on
// without an error: no client state lives in an instance.
func TestTwoGatewaysBehindOneAddress(t *testing.T) {
	cl := startCluster(t, 3)
	lbLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lbAddr := lbLn.Addr().String()
	require.NoError(t, lbLn.Close()) // the balancer binds it again below
	adv := func(c *Config) { c.Advertised = lbAddr }
	ctxA, stopA := context.WithCancel(context.Background())
	a := startGatewayCtx(t, ctxA, cl.Bootstrap(), adv)
	b := startGateway(t, cl.Bootstrap(), adv)
	ln, err := net.Listen("tcp", lbAddr)
	require.NoError(t, err)
	rr := &roundRobin{ln: ln, backends: []string{a.Addr(), b.Addr()}, conns: map[net.Conn]struct{}{}}
	rr.wg.Add(1)
	go rr.serve()
	t.Cleanup(func() {
		ln.Close()
		rr.mu.Lock()
		for c := range rr.conns {
			c.Close()
		}
		rr.mu.Unlock()
		rr.wg.Wait()
	})

	const topic = "two-gateways"
	createTopic(t, lbAddr, topic, 4, 3)
	ctx := testCtx(t, 3*time.Minute)

	// both instances show the same brokers, the cluster's ids at the shared address
	views := map[string][]string{}
	for _, inst := range []*testGateway{a, b} {
		md, err := kadm.NewClient(newClient(t, inst.Addr())).BrokerMetadata(ctx)
		require.NoError(t, err)
		for _, br := range md.Brokers {
			views[inst.Addr()] = append(views[inst.Addr()], fmt.Sprintf("%d@%s:%d", br.NodeID, br.Host, br.Port))
		}
		slices.Sort(views[inst.Addr()])
	}
	require.Len(t, views[a.Addr()], 3)
	require.Equal(t, views[a.Addr()], views[b.Addr()])
	require.Contains(t, views[a.Addr()][0], "@"+lbAddr)
	prod := newClient(t, lbAddr, kgo.RequiredAcks(kgo.AllISRAcks()))
	cons := newClient(t, lbAddr, kgo.ConsumerGroup("two-gateways"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr())
		}
	}
	consume := func(n int) {
		for len(seen) < n {
			fs := cons.PollFetches(ctx)
			require.NoError(t, ctx.Err(), "consumed %d of %d", len(seen), n)
			fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
		}
	}
	produce(0, 200)
	consume(200)
	stopA() // instance A goes away: its clients' connections close
	testutil.WaitFor(t, 30*time.Second, "gateway A stopped", func() bool {
		c, err := net.DialTimeout("tcp", a.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	rr.mu.Lock()
	rr.backends = []string{b.Addr()}
	rr.mu.Unlock()
	produce(200, 400)
	consume(400)
	for i := 0; i < 400; i++ {
		require.True(t, seen[fmt.Sprint(i)], "record %d", i)
	}
}

// TestAdminThroughGateway uses kadm through the gateway alone for the requests
// it splits or fans out: groups spread over several coordinators are listed
// (ListGroups to every broker), described and deleted (per coordinator),
// records deleted and offsets listed per leader, and configs read.
func TestAdminThroughGateway(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic = "gw-admin"
	createTopic(t, g.Addr(), topic, 6, 3)
	ctx := testCtx(t, 3*time.Minute)
	adm := kadm.NewClient(newClient(t, g.Addr()))

	prod := newClient(t, g.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 6; p++ {
		for i := 0; i < 10; i++ {
			require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("v")}).FirstErr())
		}
	}
	// twelve groups: with 3 brokers their coordinators are spread
	var groups []string
	for i := 0; i < 12; i++ {
		grp := fmt.Sprintf("gw-admin-%d", i)
		groups = append(groups, grp)
		resp, err := adm.CommitOffsets(ctx, grp, kadm.OffsetsFromRecords(kgo.Record{Topic: topic, Partition: int32(i % 6), Offset: int64(i)}))
		require.NoError(t, err)
		require.NoError(t, resp.Error())
	}
	listed, err := adm.ListGroups(ctx)
	require.NoError(t, err)
	for _, grp := range groups {
		require.Contains(t, listed.Groups(), grp)
	}
	described, err := adm.DescribeGroups(ctx, groups...)
	require.NoError(t, err)
	require.Len(t, described, len(groups))
	for _, d := range described {
		require.NoError(t, d.Err)
	}
	offs := adm.FetchManyOffsets(ctx, groups...)
	require.NoError(t, offs.Error())
	for i, grp := range groups {
		o, ok := offs[grp].Fetched.Lookup(topic, int32(i%6))
		require.True(t, ok, grp)
		require.Equal(t, int64(i+1), o.At) // a committed record means its next offset
	}
	deleted, err := adm.DeleteGroups(ctx, groups[:6]...)
	require.NoError(t, err)
	require.NoError(t, deleted.Error())
	listed, err = adm.ListGroups(ctx)
	require.NoError(t, err)
	require.NotContains(t, listed.Groups(), groups[0])
	require.Contains(t, listed.Groups(), groups[11])

	// DeleteRecords and ListOffsets per leader
	del := kadm.Offsets{}
	for p := int32(0); p < 6; p++ {
		del.Add(kadm.Offset{Topic: topic, Partition: p, At: int64(p)})
	}
	dr, err := adm.DeleteRecords(ctx, del)
	require.NoError(t, err)
	require.NoError(t, dr.Error())
	starts, err := adm.ListStartOffsets(ctx, topic)
	require.NoError(t, err)
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	for p := int32(0); p < 6; p++ {
		s, _ := starts.Lookup(topic, p)
		e, _ := ends.Lookup(topic, p)
		require.NoError(t, s.Err)
		require.Equal(t, int64(p), s.Offset, "start of %d", p)
		require.Equal(t, int64(10), e.Offset, "end of %d", p)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	require.NoError(t, err)
	_, err = rc.On(topic, nil)
	require.NoError(t, err)

	// every broker's own configs, asked of the broker of that id (any other
	// answers INVALID_REQUEST)
	md, err := adm.BrokerMetadata(ctx)
	require.NoError(t, err)
	require.Len(t, md.Brokers, 3)
	for _, b := range md.Brokers {
		bc, err := adm.DescribeBrokerConfigs(ctx, b.NodeID)
		require.NoError(t, err)
		_, err = bc.On(fmt.Sprint(b.NodeID), nil)
		require.NoError(t, err, "broker %d", b.NodeID)
	}
}

// TestTransactionsThroughGateway: a transactional producer that knows only the
// gateway (its InitProducerId, AddPartitionsToTxn and EndTxn go to the
// transaction coordinator, its batches to each leader) commits one
// transaction and aborts another over partitions of three leaders; a
// read_committed consumer through the gateway sees exactly the committed
// records.
func TestTransactionsThroughGateway(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic = "gw-txn"
	createTopic(t, g.Addr(), topic, 6, 3)
	ctx := testCtx(t, 3*time.Minute)
	prod := newClient(t, g.Addr(), kgo.TransactionalID("gw-txn-producer"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	run := func(commit bool, prefix string) {
		require.NoError(t, prod.BeginTransaction())
		for p := int32(0); p < 6; p++ {
			for i := 0; i < 5; i++ {
				require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%s-%d-%d", prefix, p, i))}).FirstErr())
			}
		}
		require.NoError(t, prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)))
	}
	run(true, "committed")
	run(false, "aborted")
	run(true, "committed-again")

	cons := newClient(t, g.Addr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	got := map[string]bool{}
	for len(got) < 60 {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of 60 committed records", len(got))
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			require.NotContains(t, string(r.Value), "aborted")
			got[string(r.Value)] = true
		})
	}
	// nothing else arrives: the aborted records stay hidden
	ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	fs := cons.PollFetches(ectx)
	fs.EachRecord(func(r *kgo.Record) { t.Errorf("unexpected record %s", r.Value) })
}
