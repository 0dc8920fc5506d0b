package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

// groupLoad is the scaling drill's clients in small: idempotent acks=all
// producers and a consumer group that consumes while brokers fail, all through
// the gateway. Records are checked by offset: every acknowledged offset must be
// consumed with the acknowledged value.
type groupLoad struct {
	t     *testing.T
	addr  string
	topic string
	group string

	mu       sync.Mutex
	acked    map[int32]map[int64]string // partition -> offset -> value
	consumed map[int32]map[int64]string
	errs     []error

	stop     context.CancelFunc
	wg       sync.WaitGroup
	consumer *kgo.Client
}

func startGroupLoad(t *testing.T, addr, topic string, partitions int32) *groupLoad {
	l := &groupLoad{t: t, addr: addr, topic: topic, group: topic + "-group",
		acked: map[int32]map[int64]string{}, consumed: map[int32]map[int64]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	for id := range 2 {
		prod := newClient(t, addr, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RecordDeliveryTimeout(3*time.Minute), kgo.ProducerLinger(5*time.Millisecond))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			slots := make(chan struct{}, 256)
			var inflight sync.WaitGroup
			defer inflight.Wait()
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				p := int32(i) % partitions
				v := fmt.Sprintf("p%d/%d/%d", id, p, i)
				inflight.Add(1)
				prod.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
					defer inflight.Done()
					<-slots
					l.mu.Lock()
					defer l.mu.Unlock()
					if err != nil {
						l.errs = append(l.errs, fmt.Errorf("produce %s: %w", v, err))
						return
					}
					if l.acked[p] == nil {
						l.acked[p] = map[int64]string{}
					}
					l.acked[p][r.Offset] = v
				})
			}
		}()
	}
	l.consumer = l.newConsumer()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			fs := l.consumer.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) {
				if ctx.Err() == nil {
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Errorf("consume %s/%d: %w", topic, p, err))
					l.mu.Unlock()
				}
			})
			l.record(fs)
		}
	}()
	return l
}

func (l *groupLoad) newConsumer() *kgo.Client {
	kcl, err := kgo.NewClient(kgo.SeedBrokers(l.addr), kgo.ConsumerGroup(l.group), kgo.ConsumeTopics(l.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
	require.NoError(l.t, err)
	return kcl
}

func (l *groupLoad) record(fs kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs.EachRecord(func(r *kgo.Record) {
		if l.consumed[r.Partition] == nil {
			l.consumed[r.Partition] = map[int64]string{}
		}
		if old, ok := l.consumed[r.Partition][r.Offset]; ok && old != string(r.Value) {
			l.errs = append(l.errs, fmt.Errorf("offset %d of partition %d read as %q and %q", r.Offset, r.Partition, old, r.Value))
		}
		l.consumed[r.Partition][r.Offset] = string(r.Value)
	})
}

func (l *groupLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.acked {
		n += len(m)
	}
	return n
}

// missing lists the acknowledged offsets not consumed (or consumed with
// another value), per partition.
func (l *groupLoad) missing() map[int32][]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int32][]int64{}
	for p, m := range l.acked {
		for o, v := range m {
			if l.consumed[p][o] != v {
				out[p] = append(out[p], o)
			}
		}
		slices.Sort(out[p])
	}
	return out
}

// finish stops producing, closes the consumer (which commits what it
// consumed) and reads on with a new member of the group until every
// acknowledged record was consumed.
func (l *groupLoad) finish(ctx context.Context) {
	l.stop()
	l.wg.Wait()
	l.consumer.Close()
	l.mu.Lock()
	require.Empty(l.t, l.errs, "the clients saw errors")
	l.mu.Unlock()
	kcl := l.newConsumer()
	defer kcl.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m := l.missing()
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			n := 0
			summary := map[int32]string{}
			for p, offs := range m {
				n += len(offs)
				summary[p] = fmt.Sprintf("%d from %d to %d", len(offs), offs[0], offs[len(offs)-1])
			}
			l.t.Fatalf("%d acknowledged records never consumed by the group: %v", n, summary)
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := kcl.PollFetches(pctx)
		cancel()
		l.record(fs)
	}
}

// TestGroupConsumesThroughKills: idempotent acks=all producers and a consumer
// group consuming all along, through the gateway (the per-broker view), while
// brokers are killed (SIGKILL) and restarted one after the other. Every
// acknowledged record is consumed by the group, at the offset it was
// acknowledged at, and no client sees an error.
func TestGroupConsumesThroughKills(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic, partitions = "gw-kills", 24
	adm := kadm.NewClient(newClient(t, g.Addr()))
	testutil.WaitForErr(t, time.Minute, "create "+topic, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		resp, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
		if err == nil {
			err = resp.Err
		}
		return err == nil, err
	})
	ctx := testCtx(t, 8*time.Minute)
	l := startGroupLoad(t, g.Addr(), topic, partitions)
	testutil.WaitFor(t, time.Minute, "records acknowledged", func() bool { return l.ackedCount() > 3000 })
	for _, victim := range []int32{2, 1, 3} {
		require.NoError(t, cl.Kill(victim))
		before := l.ackedCount()
		testutil.WaitFor(t, 2*time.Minute, "records acknowledged after the kill", func() bool { return l.ackedCount() > before+3000 })
		require.NoError(t, cl.Restart(ctx, victim))
		waitInSync(t, cl, g.Addr(), topic)
		before = l.ackedCount()
		testutil.WaitFor(t, 2*time.Minute, "records acknowledged after the restart", func() bool { return l.ackedCount() > before+3000 })
	}
	l.finish(ctx)
}

// TestProduceOrderThroughLeaderMoves: an idempotent producer keeps several
// produce requests per partition in flight through the gateway while the
// partitions' leaders move (the replica order is rotated and the preferred
// replicas elected, over and over). The gateway must keep each partition's
// batches in the order the producer sent them: a batch sent on to the new
// leader before an earlier one the gateway was still retrying is refused as
// OUT_OF_ORDER_SEQUENCE_NUMBER, after which the producer bumps its epoch
// (and, for a client without franz-go's recovery, fails the records). So at
// the end the producer is still at epoch 0, and every partition holds exactly
// the acknowledged records in the order produced.
func TestProduceOrderThroughLeaderMoves(t *testing.T) {
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic, partitions = "gw-moves", 6
	createTopic(t, g.Addr(), topic, partitions, 3)
	ctx := testCtx(t, 6*time.Minute)
	adm := kadm.NewClient(newClient(t, g.Addr()))

	prod := newClient(t, g.Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(time.Millisecond), kgo.RecordDeliveryTimeout(2*time.Minute))
	var mu sync.Mutex
	acked := map[int32][]int{}
	var errs []error
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		slots := make(chan struct{}, 2000)
		for i := 0; ; i++ {
			select {
			case slots <- struct{}{}:
			case <-pctx.Done():
				return
			}
			p, seq := int32(i%partitions), i/partitions
			prod.Produce(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprint(seq))}, func(_ *kgo.Record, err error) {
				<-slots
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				acked[p] = append(acked[p], seq)
			})
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acked {
			n += len(a)
		}
		return n
	}
	testutil.WaitFor(t, time.Minute, "records acknowledged", func() bool { return count() > 2000 })

	md, err := adm.Metadata(ctx, topic)
	require.NoError(t, err)
	replicas := map[int32][]int32{}
	for _, p := range md.Topics[topic].Partitions {
		replicas[p.Partition] = p.Replicas
	}
	for round := 0; round < 6; round++ {
		req := kadm.AlterPartitionAssignmentsReq{}
		for p, rs := range replicas {
			rs = append(rs[1:], rs[0]) // the next replica becomes the preferred leader
			replicas[p] = rs
			req.Assign(topic, p, rs)
		}
		testutil.WaitForErr(t, time.Minute, "reassign", func() (bool, error) {
			resps, err := adm.AlterPartitionAssignments(ctx, req)
			if err == nil {
				err = resps.Error()
			}
			return err == nil, err
		})
		testutil.WaitForErr(t, time.Minute, "leaders moved", func() (bool, error) {
			_, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: nil})
			if err != nil {
				return false, err
			}
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return false, err
			}
			for _, p := range md.Topics[topic].Partitions {
				if p.Leader != replicas[p.Partition][0] {
					return false, fmt.Errorf("partition %d led by %d, not %d yet", p.Partition, p.Leader, replicas[p.Partition][0])
				}
			}
			return true, nil
		})
		before := count()
		testutil.WaitFor(t, time.Minute, "records acknowledged after the move", func() bool { return count() > before+1000 })
	}
	stop()
	<-done
	require.NoError(t, prod.Flush(ctx))
	mu.Lock()
	require.Empty(t, errs, "the producer saw errors")
	mu.Unlock()
	_, epoch, err := prod.ProducerID(ctx)
	require.NoError(t, err)
	require.Zero(t, epoch, "the producer bumped its epoch: a batch was refused out of order")

	// every partition holds exactly the acknowledged records, in order
	offsets, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	ends := map[int32]kgo.Offset{}
	total := int64(0)
	offsets.Each(func(o kadm.ListedOffset) { ends[o.Partition] = kgo.NewOffset().At(0); total += o.Offset })
	cons := newClient(t, g.Addr(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: ends}))
	got := map[int32][]int{}
	for n := int64(0); n < total; {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			var v int
			_, err := fmt.Sscan(string(r.Value), &v)
			require.NoError(t, err)
			got[r.Partition] = append(got[r.Partition], v)
			n++
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for p := int32(0); p < partitions; p++ {
		require.Equal(t, acked[p], got[p], "partition %d", p)
	}
}
