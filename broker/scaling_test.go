package broker

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/record"
	"github.com/sluicemq/sluice/broker/storage"
)

// TestLeaderKeepsNewerISRThanImage: a leader that applied its AlterPartition answer (ISR 1,2,3 at
// partition epoch 6) and then applies a metadata image from before that commit (ISR 1,2 at epoch 5)
// keeps the newer ISR. Going back let the high watermark pass replica 3's log end while the
// controller counted 3 in sync, and 3 elected leader then lacked acknowledged records (the scaling
// drill lost records that way while the balancer churned the metadata).
func TestLeaderKeepsNewerISRThanImage(t *testing.T) {
	p := &partition{leader: 1, leaderEpoch: 2, partitionEpoch: 6, replicas: []int32{1, 2, 3}, isr: []int32{1, 2, 3}, isLeader: true}
	role := p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 5}, 1)
	require.Equal(t, roleSame, role)
	require.Equal(t, []int32{1, 2, 3}, p.isr)
	require.Equal(t, int32(6), p.partitionEpoch)

	// The image that brings the commit, and a later one, apply as before.
	require.Equal(t, roleSame, p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 6}, 1))
	require.Equal(t, []int32{1, 2, 3}, p.isr)
	// A new leader epoch always applies, whatever the partition epoch.
	require.Equal(t, roleFollower, p.update(metadata.Partition{Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}, Leader: 2, LeaderEpoch: 3, PartitionEpoch: 7}, 1))
	require.Equal(t, []int32{2, 3}, p.isr)
	require.False(t, p.isLeader)
}

// TestBalanceRoundGapConfig: auto.balance.round.gap.ms defaults to a second, reaches the balancer,
// and a value outside [1, 3600000] is refused by name.
func TestBalanceRoundGapConfig(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	require.Equal(t, int64(1000), c.Balance.AutoBalanceRoundGapMs)
	b := &Broker{cfg: c}
	require.Equal(t, time.Second, b.autoBalanceConfig().RoundGap)
	for _, v := range []int64{-1, 3600001} {
		c := DefaultConfig()
		c.Balance.AutoBalanceRoundGapMs = v
		require.ErrorContains(t, c.Validate(), "auto.balance.round.gap.ms")
	}
}

// TestReassignmentCompletesUnderLoad moves replicas of partitions led by broker 1 to broker 4 while
// acks=all producers keep writing to them: the new replicas must join the ISR and the moves complete
// although the producers never pause (the scaling drill saw moves that never completed while clients
// produced, and completed at once when their leader stopped).
func TestReassignmentCompletesUnderLoad(t *testing.T) {
	brokers := startTestCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}
	const parts = 8
	assign := make([][]int32, parts)
	for i := range assign {
		assign[i] = []int32{1, 2, 3}
	}
	createTopicOnController(t, ctx, brokers, 10*time.Second, "topic load on brokers 1, 2, 3", "load", assign)
	waitUntil(t, 10*time.Second, "leaders of load", func() bool {
		for i := range parts {
			p, ok := brokers[0].quorum.Image().Partition("load", int32(i))
			if !ok || p.Leader != 1 || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	})
	var acked atomic.Int64
	var firstErr atomic.Value
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()))
		require.NoError(t, err)
		defer cl.Close()
		wg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for pctx.Err() == nil {
				<-tick.C
				value := make([]byte, 200)
				rand.Read(value)
				cl.Produce(pctx, &kgo.Record{Topic: "load", Value: value}, func(_ *kgo.Record, err error) {
					if err == nil {
						acked.Add(1)
					} else if pctx.Err() == nil {
						firstErr.CompareAndSwap(nil, err)
					}
				})
			}
		})
	}
	waitUntil(t, 30*time.Second, "records acknowledged", func() bool { return acked.Load() > 500 })

	adm := kadm.NewClient(newClient(t, seeds[0]))
	req := kadm.AlterPartitionAssignmentsReq{}
	for i := range parts {
		req.Assign("load", int32(i), []int32{1, 2, 4})
	}
	ar, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	before := acked.Load()
	waitUntil(t, 60*time.Second, "load moved to 1,2,4 while the producers write", func() bool {
		for i := range parts {
			p, _ := brokers[0].quorum.Image().Partition("load", int32(i))
			if !slices.Equal(p.Replicas, []int32{1, 2, 4}) {
				return false
			}
		}
		return true
	})
	require.Greater(t, acked.Load(), before, "the producers kept going")
	stop()
	wg.Wait()
	require.Nil(t, firstErr.Load())
}

// TestUnsettledISRExpansionHoldsHighWatermark: a leader whose AlterPartition adding replica 4 ended
// without an answer (a timeout: the controller may have committed it) keeps 4 in its maximal ISR, so
// the high watermark does not pass 4's log end while the controller may count 4 in sync (the scaling
// drill once elected such a new replica, which led with records missing); the change is asked
// again, and only an answer that it was not made, or a metadata image past the partition epoch it
// was asked at, settles it.
func TestUnsettledISRExpansionHoldsHighWatermark(t *testing.T) {
	l, err := storage.Open(t.TempDir(), storage.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer l.Close()
	b := &Broker{cfg: Config{NodeID: 1}}
	p := &partition{b: b, log: l, leader: 1, leaderEpoch: 2, partitionEpoch: 5, replicas: []int32{1, 2, 4}, isr: []int32{1, 2}, isLeader: true}
	r := kmsg.NewRecord()
	r.Value = []byte("v")
	for range 10 {
		_, err := l.Append(record.Build(0, time.Now().UnixMilli(), []kmsg.Record{r}), 2)
		require.NoError(t, err)
	}
	p.followers = map[int32]*followerState{2: {leo: 10}, 4: {leo: 6}}

	p.mu.Lock()
	p.askISRLocked([]int32{1, 2, 4})
	p.isrChangeFailedLocked([]int32{1, 2, 4}, context.DeadlineExceeded)
	p.mu.Unlock()
	p.maybeAdvanceHW()
	require.Equal(t, int64(6), p.hw.Load(), "the high watermark waits for the replica that may be in the ISR")

	p.mu.Lock()
	require.Equal(t, []int32{1, 2, 4}, p.retryISRLocked(), "asked again")
	require.Nil(t, p.retryISRLocked(), "one attempt at a time")
	p.isrChangeFailedLocked([]int32{1, 2, 4}, kerr.InvalidUpdateVersion)
	require.Nil(t, p.retryISRLocked(), "the next image settles it")
	p.mu.Unlock()

	// An image at the epoch it was asked at does not settle it; one past it does.
	require.Equal(t, roleSame, p.update(metadata.Partition{Replicas: []int32{1, 2, 4}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 5}, 1))
	require.Equal(t, []int32{1, 2, 4}, p.maximalISR())
	require.Equal(t, roleSame, p.update(metadata.Partition{Replicas: []int32{1, 2, 4}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 6}, 1))
	require.Equal(t, []int32{1, 2}, p.maximalISR())
	p.maybeAdvanceHW()
	require.Equal(t, int64(10), p.hw.Load())

	// INELIGIBLE_REPLICA: the controller did not make it at the current epoch.
	p.mu.Lock()
	p.askISRLocked([]int32{1, 2, 4})
	p.isrChangeFailedLocked([]int32{1, 2, 4}, kerr.IneligibleReplica)
	p.mu.Unlock()
	require.Equal(t, []int32{1, 2}, p.maximalISR())
}

// TestReassignmentAfterDeleteRecords moves a partition whose log start the leader moved up with
// DeleteRecords (retention does the same): the new replica cannot fetch offset 0 and must start at
// the leader's log start, like Kafka's follower, or the move never completes (it asked for offset
// 0 forever). Afterwards the new leader serves every record from the log start on.
func TestReassignmentAfterDeleteRecords(t *testing.T) {
	brokers := startTestCluster(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}
	createTopicOnController(t, ctx, brokers, 10*time.Second, "topic trimmed on brokers 1, 2, 3", "trimmed", [][]int32{{1, 2, 3}})
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 100 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "trimmed", Value: fmt.Appendf(nil, "record-%03d", i)}).FirstErr())
	}
	adm := kadm.NewClient(cl)
	trim := kadm.Offsets{}
	trim.Add(kadm.Offset{Topic: "trimmed", Partition: 0, At: 50})
	dr, err := adm.DeleteRecords(ctx, trim)
	require.NoError(t, err)
	require.NoError(t, dr.Error())

	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("trimmed", 0, []int32{4, 2, 3})
	ar, err := adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	ar.Each(func(r kadm.AlterPartitionAssignmentsResponse) { require.NoError(t, r.Err) })
	waitUntil(t, 60*time.Second, "trimmed-0 moved to 4,2,3 and led by 4", func() bool {
		p, _ := brokers[0].quorum.Image().Partition("trimmed", 0)
		return slices.Equal(p.Replicas, []int32{4, 2, 3}) && p.Leader == 4
	})
	require.Equal(t, int64(50), brokers[3].partitionOf("trimmed", 0).log.LogStartOffset())

	consumer := newClient(t, seeds[3], kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"trimmed": {0: kgo.NewOffset().AtStart()}}))
	next := 50
	for next < 100 {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		fs.EachRecord(func(r *kgo.Record) {
			require.Equal(t, int64(next), r.Offset)
			require.Equal(t, fmt.Sprintf("record-%03d", next), string(r.Value))
			next++
		})
	}
}

// TestLeaderRecomputesHWWhenControllerShrinksISR: when the controller takes a fenced follower out
// of the ISR (broker 2 killed), the leader computes its high watermark again on that image: the
// parked acks=all produces complete without waiting for a fetch that may never come (the killed
// follower was the only other ISR member) or running into their timeout.
func TestLeaderRecomputesHWWhenControllerShrinksISR(t *testing.T) {
	l, err := storage.Open(t.TempDir(), storage.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer l.Close()
	b := &Broker{cfg: Config{NodeID: 1}}
	b.metrics = newBrokerMetrics(b, prometheus.NewRegistry())
	p := &partition{b: b, log: l, leader: 1, leaderEpoch: 2, partitionEpoch: 5, replicas: []int32{1, 2}, isr: []int32{1, 2}, isLeader: true}
	r := kmsg.NewRecord()
	r.Value = []byte("v")
	for range 10 {
		_, err := l.Append(record.Build(0, time.Now().UnixMilli(), []kmsg.Record{r}), 2)
		require.NoError(t, err)
	}
	p.followers = map[int32]*followerState{2: {leo: 4}}
	p.maybeAdvanceHW()
	require.Equal(t, int64(4), p.hw.Load())

	role := p.update(metadata.Partition{Replicas: []int32{1, 2}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 2, PartitionEpoch: 6}, 1)
	require.Equal(t, roleReplicasChanged, role, "applyImage computes the high watermark again")
	p.maybeAdvanceHW()
	require.Equal(t, int64(10), p.hw.Load())
}

// TestReplicaFetchBacksOffFailingPartition: a followed partition whose leader refuses it (here
// broker 2 is made to follow b-0 from broker 1, which holds no replica of it, as when a follower's
// image is behind its leader's) is retried after a backoff, like Kafka's replica.fetch.backoff.ms:
// before, a fetcher with nothing else to fetch asked again at once, in a busy loop of hundreds of
// requests a second, and a fetch answered at once with an error made a throttled fetcher pause
// 100ms per round, holding back the replication of the in-sync partitions sharing it.
func TestReplicaFetchBacksOffFailingPartition(t *testing.T) {
	brokers := startTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createTopicOnController(t, ctx, brokers, 10*time.Second, "topic b led by broker 3", "b", [][]int32{{3, 2}})
	waitUntil(t, 10*time.Second, "broker 2 follows b-0", func() bool {
		p := brokers[1].partitionOf("b", 0)
		if p == nil {
			return false
		}
		leader, _, _ := p.state()
		return leader == 3
	})
	brokers[1].fetchers.add(brokers[1].partitionOf("b", 0), 1) // refused by broker 1 every time

	asked := func() float64 {
		return promtestutil.ToFloat64(brokers[0].metrics.requests.WithLabelValues("OffsetForLeaderEpoch", "3"))
	}
	waitUntil(t, 10*time.Second, "broker 1 refused b-0", func() bool { return asked() > 0 })
	before := asked()
	time.Sleep(3 * time.Second) // a measurement window, not a wait for a condition
	n := asked() - before
	t.Logf("%.0f requests for b-0 in 3 s", n)
	// One every 250 ms is 12; a busy loop is hundreds.
	require.Less(t, n, 60.0, "the fetcher asked again at once after every refusal")
}
