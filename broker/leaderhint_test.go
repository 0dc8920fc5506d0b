package broker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/record"
)

// startHintCluster starts three brokers with topic hint (one partition on 1, 2, 3, led by 1).
func startHintCluster(t *testing.T, ctx context.Context) []*testBroker {
	brokers := startTestCluster(t, 3)
	createTopicOnController(t, ctx, brokers, 20*time.Second, "topic hint on brokers 1, 2, 3", "hint", [][]int32{{1, 2, 3}})
	waitUntil(t, 20*time.Second, "hint-0 led by 1 with a full ISR on every broker", func() bool {
		for _, tb := range brokers {
			p, ok := tb.quorum.Image().Partition("hint", 0)
			if !ok || p.Leader != 1 || len(p.ISR) != 3 {
				return false
			}
		}
		lp := brokers[0].partitionOf("hint", 0) // the image applied on the leader too
		if lp == nil {
			return false
		}
		_, _, isLeader := lp.state()
		return isLeader
	})
	return brokers
}

// TestLeaderHintFields checks the KIP-951 fields: a follower answers Produce v10+ and Fetch v16+
// with NOT_LEADER_OR_FOLLOWER, the leader and its epoch, and the leader's address; the leader
// answers a fetch with an old leader epoch FENCED_LEADER_EPOCH and names itself; older versions
// carry no hint (the fields do not exist there).
func TestLeaderHintFields(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := startHintCluster(t, ctx)
	img := brokers[1].quorum.Image()
	part, _ := img.Partition("hint", 0)
	topicID := img.Topic("hint").ID
	leaderHost, leaderPortStr, err := net.SplitHostPort(brokers[0].Addr())
	require.NoError(t, err)
	leaderPort64, err := strconv.ParseInt(leaderPortStr, 10, 32)
	require.NoError(t, err)
	leaderPort := int32(leaderPort64)

	batch := record.Build(0, time.Now().UnixMilli(), []kmsg.Record{{Value: []byte("v")}})
	for _, v := range []int16{9, 10, 12, 13} {
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = v, -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = "hint", topicID
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.ProduceResponse](t, brokers[1].Addr(), req)
		sp := resp.Topics[0].Partitions[0]
		require.Equal(t, kerr.NotLeaderForPartition.Code, sp.ErrorCode, "produce v%d to a follower", v)
		if v < 10 {
			require.Equal(t, int32(-1), sp.CurrentLeader.LeaderID, "produce v%d has no hint", v)
			require.Empty(t, resp.Brokers)
			continue
		}
		require.Equal(t, int32(1), sp.CurrentLeader.LeaderID, "produce v%d", v)
		require.Equal(t, part.LeaderEpoch, sp.CurrentLeader.LeaderEpoch, "produce v%d", v)
		require.Len(t, resp.Brokers, 1, "produce v%d", v)
		require.Equal(t, int32(1), resp.Brokers[0].NodeID)
		require.Equal(t, leaderHost, resp.Brokers[0].Host)
		require.Equal(t, leaderPort, resp.Brokers[0].Port)
	}

	fetch := func(addr string, v int16, epoch int32) *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID, req.MaxBytes = v, -1, 1<<20
		req.ReplicaState.ID = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "hint", topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.CurrentLeaderEpoch, rp.PartitionMaxBytes = epoch, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return request[*kmsg.FetchResponse](t, addr, req)
	}
	for _, v := range []int16{15, 16} {
		resp := fetch(brokers[2].Addr(), v, -1)
		sp := resp.Topics[0].Partitions[0]
		require.Equal(t, kerr.NotLeaderForPartition.Code, sp.ErrorCode, "fetch v%d from a follower", v)
		if v < 16 {
			require.Equal(t, int32(-1), sp.CurrentLeader.LeaderID)
			require.Empty(t, resp.Brokers)
			continue
		}
		require.Equal(t, int32(1), sp.CurrentLeader.LeaderID)
		require.Equal(t, part.LeaderEpoch, sp.CurrentLeader.LeaderEpoch)
		require.Len(t, resp.Brokers, 1)
		require.Equal(t, leaderPort, resp.Brokers[0].Port)
	}
	// A served partition carries no hint.
	resp := fetch(brokers[0].Addr(), 16, part.LeaderEpoch)
	require.Equal(t, int16(0), resp.Topics[0].Partitions[0].ErrorCode, "%+v epoch %d", resp.Topics[0].Partitions[0], part.LeaderEpoch)
	require.Equal(t, int32(-1), resp.Topics[0].Partitions[0].CurrentLeader.LeaderID)
	require.Empty(t, resp.Brokers)

	// Leadership moves to broker 2 (a new leader epoch); a fetch from it with the old epoch is
	// fenced, and the hint names broker 2 itself at the new epoch.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[1].Addr()))
	require.NoError(t, err)
	defer cl.Close()
	reassign := kadm.AlterPartitionAssignmentsReq{}
	reassign.Assign("hint", 0, []int32{2, 1, 3})
	ar, err := kadm.NewClient(cl).AlterPartitionAssignments(ctx, reassign)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	var moved metadata.Partition
	waitUntil(t, 30*time.Second, "hint-0 led by 2, applied on broker 2", func() bool {
		moved, _ = brokers[1].quorum.Image().Partition("hint", 0)
		lp := brokers[1].partitionOf("hint", 0)
		if moved.Leader != 2 || lp == nil {
			return false
		}
		_, _, isLeader := lp.state()
		return isLeader
	})
	require.Greater(t, moved.LeaderEpoch, part.LeaderEpoch)
	resp = fetch(brokers[1].Addr(), 16, part.LeaderEpoch)
	sp := resp.Topics[0].Partitions[0]
	require.Equal(t, kerr.FencedLeaderEpoch.Code, sp.ErrorCode)
	require.Equal(t, int32(2), sp.CurrentLeader.LeaderID)
	require.Equal(t, moved.LeaderEpoch, sp.CurrentLeader.LeaderEpoch)
	require.Len(t, resp.Brokers, 1)
	require.Equal(t, int32(2), resp.Brokers[0].NodeID)
}

// TestLeaderHintFollowedByClient moves the leadership of a partition that an idempotent acks=all
// franz-go producer writes to without pause: every record is acknowledged without an error, the
// producer's next Produce after the move goes to the new leader without a Metadata request first
// (it learnt the leader from the answer), and a consumer reading along reads every record once, in
// order, and follows the leader too.
func TestLeaderHintFollowedByClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	brokers := startHintCluster(t, ctx)
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}

	// What the producer writes, in order, after the leader moved.
	var mu sync.Mutex
	var moved atomic.Bool
	var after []hintWrite
	hook := hintHook(func(node int32, key int16) {
		if !moved.Load() {
			return
		}
		mu.Lock()
		after = append(after, hintWrite{node, key})
		mu.Unlock()
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("hint"),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond), kgo.WithHooks(hook),
		kgo.RecordDeliveryTimeout(time.Minute))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// A consumer reads along from the start; what it writes after the move is recorded too.
	var cmu sync.Mutex
	var cafter []hintWrite
	chook := hintHook(func(node int32, key int16) {
		if !moved.Load() {
			return
		}
		cmu.Lock()
		cafter = append(cafter, hintWrite{node, key})
		cmu.Unlock()
	})
	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithHooks(chook),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"hint": {0: kgo.NewOffset().AtStart()}}))
	require.NoError(t, err)
	defer consumer.Close()
	var consumed atomic.Int64
	var consumeErr atomic.Value
	cctx, stopConsuming := context.WithCancel(ctx)
	defer stopConsuming()
	consuming := make(chan struct{})
	go func() {
		defer close(consuming)
		got := 0
		for cctx.Err() == nil {
			fs := consumer.PollFetches(cctx)
			fs.EachError(func(_ string, _ int32, err error) {
				if cctx.Err() == nil {
					consumeErr.CompareAndSwap(nil, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				if string(r.Value) != fmt.Sprintf("%08d", got) {
					consumeErr.CompareAndSwap(nil, fmt.Errorf("record %d is %q", got, r.Value))
				}
				got++
			})
			consumed.Store(int64(got))
		}
	}()

	var acked atomic.Int64
	var produceErr atomic.Value
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			cl.Produce(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%08d", n)}, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.CompareAndSwap(nil, err)
					return
				}
				acked.Add(1)
			})
			n++
			if n%64 == 0 {
				// Keep some records in flight at all times, not thousands.
				for int64(n)-acked.Load() > 256 && ctx.Err() == nil && produceErr.Load() == nil {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	waitUntil(t, 30*time.Second, "1000 records acknowledged before the move", func() bool { return acked.Load() >= 1000 })

	// Broker 2 becomes the preferred leader; the controller's preferred election moves leadership.
	moved.Store(true)
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("hint", 0, []int32{2, 1, 3})
	ar, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	waitUntil(t, 30*time.Second, "hint-0 led by 2", func() bool {
		p, _ := brokers[0].quorum.Image().Partition("hint", 0)
		return p.Leader == 2
	})
	base := acked.Load()
	waitUntil(t, 60*time.Second, "1000 records acknowledged after the move", func() bool { return acked.Load() >= base+1000 })
	close(stop)
	n := <-done
	require.NoError(t, cl.Flush(ctx))
	if err, _ := produceErr.Load().(error); err != nil {
		t.Fatalf("a record failed: %v", err)
	}
	require.Equal(t, int64(n), acked.Load())

	mu.Lock()
	writes := slices.Clone(after)
	mu.Unlock()
	first := slices.Index(writes, hintWrite{2, int16(kmsg.Produce)})
	require.GreaterOrEqual(t, first, 0, "no Produce to broker 2 after the move: %v", writes)
	require.False(t, slices.ContainsFunc(writes[:first], func(w hintWrite) bool { return w.key == int16(kmsg.Metadata) }),
		"a Metadata request before the first Produce to the new leader (node, key): %v", writes[:first+1])

	// The consumer read every record once, in order, through the move, and fetched from the new
	// leader. (Its fetches carry the leader epoch, so the old leader answers FENCED_LEADER_EPOCH,
	// as Kafka does, with the hint; franz-go acts on a Fetch hint only with NOT_LEADER_OR_FOLLOWER
	// and refreshes its metadata instead. TestLeaderHintFields checks that hint.)
	waitUntil(t, 60*time.Second, "every record consumed", func() bool {
		return consumed.Load() >= int64(n) || consumeErr.Load() != nil
	})
	stopConsuming()
	<-consuming
	if err, _ := consumeErr.Load().(error); err != nil {
		t.Fatalf("consuming: %v", err)
	}
	require.Equal(t, int64(n), consumed.Load())
	cmu.Lock()
	defer cmu.Unlock()
	require.Contains(t, cafter, hintWrite{2, int16(kmsg.Fetch)}, "no Fetch from broker 2 after the move")
}

// hintWrite is one request a client wrote.
type hintWrite struct {
	node int32
	key  int16
}

// hintHook records each request the client writes (API key and node).
type hintHook func(node int32, key int16)

func (h hintHook) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		h(meta.NodeID, key)
	}
}

// TestParkedProduceAnsweredOnHandover: an acks=all produce waiting on its leader for a follower that
// does not fetch is answered as soon as the leader hands leadership over (a preferred election), with
// NOT_LEADER_OR_FOLLOWER and the new leader, not after its 60 s timeout.
func TestParkedProduceAnsweredOnHandover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers := startHintCluster(t, ctx)
	// Broker 3 stops fetching hint-0: the high watermark stays below the next batch.
	p3 := brokers[2].partitionOf("hint", 0)
	require.NotNil(t, p3)
	brokers[2].fetchers.remove(p3)

	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 12, -1, 60000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "hint"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = record.Build(0, time.Now().UnixMilli(), []kmsg.Record{{Value: []byte("parked")}})
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	answered := make(chan *kmsg.ProduceResponse, 1)
	go func() { answered <- request[*kmsg.ProduceResponse](t, brokers[0].Addr(), req) }()
	select {
	case resp := <-answered:
		t.Fatalf("answered before the handover: %+v", resp.Topics[0].Partitions[0])
	case <-time.After(time.Second):
	}

	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers[1].Addr()))
	require.NoError(t, err)
	defer cl.Close()
	reassign := kadm.AlterPartitionAssignmentsReq{}
	reassign.Assign("hint", 0, []int32{2, 1, 3})
	ar, err := kadm.NewClient(cl).AlterPartitionAssignments(ctx, reassign)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	select {
	case resp := <-answered:
		sp := resp.Topics[0].Partitions[0]
		require.Equal(t, kerr.NotLeaderForPartition.Code, sp.ErrorCode)
		require.Equal(t, int32(2), sp.CurrentLeader.LeaderID)
		require.Len(t, resp.Brokers, 1)
		require.Equal(t, int32(2), resp.Brokers[0].NodeID)
		t.Logf("answered %v after the reassignment was asked", time.Since(start).Round(time.Millisecond))
	case <-time.After(45 * time.Second):
		t.Fatal("the parked produce was not answered after the handover")
	}
}
