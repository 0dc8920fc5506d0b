package gateway

import (
	"hash/crc32"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The splitter's tests run the gateway in front of franz-go's kfake: a
// three-broker cluster in the test process whose partition leaders can be moved
// at will, so that a stale leader is met deterministically.

func kfakeCluster() (*kfake.Cluster, error) {
	return kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "a", "b"))
}

func startFake(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfakeCluster()
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// rawClient sends hand-built requests to the gateway at Kafka 3.0's versions
// (topics by name; kgo sets every request's version itself).
func rawClient(t *testing.T, addr string) *kgo.Client {
	return newClient(t, addr, kgo.MaxVersions(kversion.V3_0_0()))
}

func batch(t *testing.T, value string) []byte {
	t.Helper()
	rb := kmsg.RecordBatch{Magic: 2, NumRecords: 1, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli()}
	rec := kmsg.Record{Value: []byte(value)}
	rb.Records = rec.AppendTo(nil)
	raw := rb.AppendTo(nil)
	rb.Length = int32(len(raw) - 12) // after baseOffset and length
	raw = rb.AppendTo(nil)
	rb.CRC = int32(crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return rb.AppendTo(nil)
}

// TestSplitMergeKeepsOrder sends one Produce for two topics and six partitions
// each, led by three brokers, and one Fetch for the same partitions: the answers
// list every topic and partition in the request's order, each with its own
// broker's result.
func TestSplitMergeKeepsOrder(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	cl := rawClient(t, g.Addr())
	ctx := testCtx(t, time.Minute)

	order := []int32{5, 0, 3, 1, 4, 2}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 10000
	for _, topic := range []string{"b", "a"} {
		rt := kmsg.ProduceRequestTopic{Topic: topic}
		for _, p := range order {
			rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: batch(t, topic)})
		}
		req.Topics = append(req.Topics, rt)
	}
	for _, p := range order {
		require.NoError(t, c.MoveTopicPartition("a", p, p%3))
		require.NoError(t, c.MoveTopicPartition("b", p, (p+1)%3))
	}
	leaders := map[int32]bool{}
	for _, p := range order {
		leaders[c.LeaderFor("a", p)] = true
	}
	require.Len(t, leaders, 3, "the partitions are spread over three brokers")

	resp, err := req.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, resp.Topics, 2)
	for i, topic := range []string{"b", "a"} {
		rt := resp.Topics[i]
		require.Equal(t, topic, rt.Topic)
		require.Len(t, rt.Partitions, len(order))
		for j, p := range order {
			require.Equal(t, p, rt.Partitions[j].Partition)
			require.Zero(t, rt.Partitions[j].ErrorCode)
			require.Equal(t, int64(0), rt.Partitions[j].BaseOffset)
		}
	}

	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(12)
	fetch.ReplicaID, fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = -1, 100, 1, 1<<20
	fetch.SessionID, fetch.SessionEpoch = 0, 0 // asks for a session
	for _, topic := range []string{"a", "b"} {
		ft := kmsg.FetchRequestTopic{Topic: topic}
		for _, p := range order {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = p, 0, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
		}
		fetch.Topics = append(fetch.Topics, ft)
	}
	fr, err := fetch.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Zero(t, fr.SessionID, "no fetch session ties the client to this instance")
	require.Len(t, fr.Topics, 2)
	for i, topic := range []string{"a", "b"} {
		require.Equal(t, topic, fr.Topics[i].Topic)
		for j, p := range order {
			fp := fr.Topics[i].Partitions[j]
			require.Equal(t, p, fp.Partition)
			require.Zero(t, fp.ErrorCode)
			require.Equal(t, int64(1), fp.HighWatermark)
			require.NotEmpty(t, fp.RecordBatches)
		}
	}
}

// TestStaleLeaderIsRetried moves a partition's leader behind the gateway's
// back: the broker it still believes is the leader answers
// NOT_LEADER_OR_FOLLOWER, and the gateway refreshes its metadata and sends the
// batch to the new leader, so the client's produce succeeds at the first try.
func TestStaleLeaderIsRetried(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs(), func(cfg *Config) { cfg.MetadataMaxAge = time.Hour })
	cl := newClient(t, g.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(1))
	ctx := testCtx(t, time.Minute)
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Partition: 2, Value: []byte("before")}).FirstErr())

	old := c.LeaderFor("a", 2)
	require.NoError(t, c.MoveTopicPartition("a", 2, (old+1)%3))
	require.NotEqual(t, old, c.LeaderFor("a", 2))

	retriesBefore := testutil.ToFloat64(g.metrics.retries.WithLabelValues("Produce"))
	r := cl.ProduceSync(ctx, &kgo.Record{Topic: "a", Partition: 2, Value: []byte("after")})
	require.NoError(t, r.FirstErr())
	require.Equal(t, int64(1), r[0].Record.Offset)
	require.Greater(t, testutil.ToFloat64(g.metrics.retries.WithLabelValues("Produce")), retriesBefore)
}

// TestCoordinatorMovedIsRetried rehashes the group coordinators: the gateway's
// cached coordinator answers NOT_COORDINATOR and the gateway finds the new one.
func TestCoordinatorMovedIsRetried(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	ctx := testCtx(t, time.Minute)
	cl := rawClient(t, g.Addr())
	commit := func() *kmsg.OffsetCommitResponse {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.SetVersion(8) // names topics by name
		req.Group, req.Generation = "g1", -1
		req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "a", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 7}}}}
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		return resp
	}
	require.Zero(t, commit().Topics[0].Partitions[0].ErrorCode)
	before := c.CoordinatorFor("g1")
	for i := 0; i < 20 && c.CoordinatorFor("g1") == before; i++ {
		c.RehashCoordinators()
	}
	require.NotEqual(t, before, c.CoordinatorFor("g1"))
	require.Zero(t, commit().Topics[0].Partitions[0].ErrorCode)
	require.Greater(t, testutil.ToFloat64(g.metrics.retries.WithLabelValues("OffsetCommit")), 0.0)
}

// TestFetchShare: each broker of a merged fetch may return the client's whole
// fetch.max.bytes while the sum stays within the budget; past it the budget is
// shared.
func TestFetchShare(t *testing.T) {
	for _, tc := range []struct {
		max  int32
		n    int
		want int32
	}{
		{4 << 20, 1, 4 << 20},
		{4 << 20, 3, 4 << 20},
		{50 << 20, 1, 50 << 20},
		{50 << 20, 2, 25 << 20},
		{30 << 20, 3, (50 << 20) / 3},
		{90 << 20, 3, 30 << 20}, // a client asking for more than the budget keeps its own total
		{1, 5, 1},
		{0, 3, 1},
	} {
		require.Equal(t, tc.want, fetchShare(tc.max, tc.n), "max %d over %d brokers", tc.max, tc.n)
	}
}

// TestIdempotentBatches tells batches with a producer id (safe to send again)
// from those without.
func TestIdempotentBatches(t *testing.T) {
	plain := batch(t, "x")
	idem := kmsg.RecordBatch{}
	require.NoError(t, idem.ReadFrom(plain))
	idem.ProducerID, idem.ProducerEpoch, idem.FirstSequence = 7, 0, 0
	req := func(b ...[]byte) *kmsg.ProduceRequest {
		r := kmsg.NewPtrProduceRequest()
		rt := kmsg.ProduceRequestTopic{Topic: "a"}
		for i, x := range b {
			rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: int32(i), Records: x})
		}
		r.Topics = []kmsg.ProduceRequestTopic{rt}
		return r
	}
	require.False(t, idempotentBatches(req(plain)))
	require.True(t, idempotentBatches(req(idem.AppendTo(nil))))
	require.False(t, idempotentBatches(req(idem.AppendTo(nil), plain)))
	require.False(t, idempotentBatches(req([]byte{1, 2, 3})))
}

// TestNextOffset reads the offset after the last complete batch of a fetch
// answer.
func TestNextOffset(t *testing.T) {
	one := batch(t, "x") // base offset 0, one record
	rb := kmsg.RecordBatch{}
	require.NoError(t, rb.ReadFrom(one))
	rb.FirstOffset, rb.LastOffsetDelta = 10, 4
	second := rb.AppendTo(nil)
	next, ok := nextOffset(append(append([]byte{}, one...), second...))
	require.True(t, ok)
	require.Equal(t, int64(15), next)
	next, ok = nextOffset(append(append([]byte{}, one...), second[:30]...)) // a partial batch at the end
	require.True(t, ok)
	require.Equal(t, int64(1), next)
	_, ok = nextOffset(nil)
	require.False(t, ok)
}

// TestBufPool: a pooled buffer always has the capacity asked for, whatever
// sizes were put back before.
func TestBufPool(t *testing.T) {
	for _, n := range []int{0, 1, 100, 4095, 4096, 4097, 70000, 1 << 20, 1<<20 + 1, 8 << 20, 9 << 20} {
		for i := 0; i < 3; i++ {
			b := getBuf(n)
			require.Zero(t, len(b))
			require.GreaterOrEqual(t, cap(b), n)
			putBuf(append(b, make([]byte, n)...))
			putBuf(make([]byte, 5000)) // a small one put back must not be handed out for n
		}
	}
}
