package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFranzTransactionsReadCommitted runs franz-go's transactional producer
// against the broker's transaction coordinator and partition side together:
// an aborted and a committed transaction across two partitions, read back by
// read_committed and read_uncommitted consumers.
func TestFranzTransactionsReadCommitted(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "franz-txn")
	require.NoError(t, err)

	cl := newClient(t, tb.Addr(), kgo.TransactionalID("franz-txn-producer"), kgo.DefaultProduceTopic("franz-txn"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	run := func(commit bool, values ...string) {
		require.NoError(t, cl.BeginTransaction())
		for i, v := range values {
			r := kgo.StringRecord(v)
			r.Partition = int32(i % 2)
			require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())
		}
		require.NoError(t, cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)))
	}
	run(false, "aborted-0", "aborted-1")
	run(true, "committed-0", "committed-1", "committed-2")

	got := consumeValues(t, tb.Addr(), "franz-txn", kgo.ReadCommitted(), 3)
	require.ElementsMatch(t, []string{"committed-0", "committed-1", "committed-2"}, got)
	got = consumeValues(t, tb.Addr(), "franz-txn", kgo.ReadUncommitted(), 5)
	require.ElementsMatch(t, []string{"aborted-0", "aborted-1", "committed-0", "committed-1", "committed-2"}, got)

	// The producers of both partitions have no open transaction left.
	ps, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"franz-txn": {0: {}, 1: {}}})
	require.NoError(t, err)
	n := 0
	ps.EachProducer(func(p kadm.DescribedProducer) {
		n++
		require.Equal(t, int64(-1), p.CurrentTxnStartOffset)
		require.GreaterOrEqual(t, p.CoordinatorEpoch, int32(0))
	})
	require.Equal(t, 2, n, "one producer per partition")
}

// TestUnaddedPartitionIsRefused is KIP-890 part 1 with the real coordinator: a
// transactional batch to a partition its transaction never added is refused
// with INVALID_TXN_STATE and writes nothing, so it cannot hang the partition.
func TestUnaddedPartitionIsRefused(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "unadded")
	require.NoError(t, err)

	f := &txnFake{t: t, tb: tb, txnID: "unadded-txn", topic: "unadded"}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version, init.TransactionalID, init.TransactionTimeoutMillis = 4, &f.txnID, 60000
	var iresp *kmsg.InitProducerIDResponse
	waitUntil(t, 30*time.Second, "the transaction coordinator answers", func() bool {
		iresp = request[*kmsg.InitProducerIDResponse](t, tb.Addr(), init)
		return iresp.ErrorCode == 0
	})
	f.pid, f.epoch = iresp.ProducerID, iresp.ProducerEpoch
	sp := f.produce(true, "never added")
	require.Equal(t, kerr.InvalidTxnState.Code, sp.ErrorCode, "%v", sp.ErrorMessage)
	ends, err := adm.ListEndOffsets(ctx, "unadded")
	require.NoError(t, err)
	o, _ := ends.Lookup("unadded", 0)
	require.Zero(t, o.Offset, "nothing written")
}
