package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnProduce runs one transaction of values on topic and ends it.
func txnProduce(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) error {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			return err
		}
	}
	return cl.EndTransaction(ctx, kgo.TransactionEndTry(commit))
}

// endAll commits one transaction writing "end" to each of the partitions of
// topic, so that a read_committed consumer that has seen every "end" has seen
// everything committed before.
func endAll(ctx context.Context, t *testing.T, seeds []string, topic string, partitions int32) {
	t.Helper()
	cl := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.TransactionalID("end-"+topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, cl.BeginTransaction())
	for p := range partitions {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("end")}).FirstErr())
	}
	require.NoError(t, cl.EndTransaction(ctx, kgo.TryCommit))
}

// readCommitted consumes topic from the start with isolation read_committed
// until it has seen endAll's "end" on each of its partitions, and returns
// every other value.
func readCommitted(ctx context.Context, t *testing.T, seeds []string, topic string, partitions int32) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	var seen []string
	ends := map[int32]bool{}
	for int32(len(ends)) < partitions {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "consuming %s; seen %v", topic, seen)
		for _, e := range fs.Errors() {
			t.Logf("fetch error (retried): %v", e.Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == "end" {
				ends[r.Partition] = true
				continue
			}
			seen = append(seen, string(r.Value))
		}
	}
	return seen
}

// counter reads a counter (with labels name=value pairs) from reg.
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestTxnFranzCommitAbort: a franz-go transactional producer commits and
// aborts; a read_committed consumer sees exactly the committed records.
func TestTxnFranzCommitAbort(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "txn-e2e")
	require.NoError(t, err)

	prod := newClient(t, tb.Addr(), kgo.TransactionalID("e2e"), kgo.TransactionTimeout(time.Minute))
	require.NoError(t, txnProduce(ctx, t, prod, "txn-e2e", true, "c-1", "c-2", "c-3"))
	require.NoError(t, txnProduce(ctx, t, prod, "txn-e2e", false, "a-1", "a-2"))
	endAll(ctx, t, []string{tb.Addr()}, "txn-e2e", 2)

	seen := readCommitted(ctx, t, []string{tb.Addr()}, "txn-e2e", 2)
	require.ElementsMatch(t, []string{"c-1", "c-2", "c-3"}, seen, "only committed records")

	waitUntil(t, 60*time.Second, "the last commit completed", func() bool {
		d, err := adm.DescribeTransactions(ctx, "end-txn-e2e")
		return err == nil && d["end-txn-e2e"].State == "CompleteCommit"
	})
	require.Equal(t, 2.0, counter(t, tb.Registry(), "sluice_txn_completed_total", "result", "commit"))
	require.Equal(t, 1.0, counter(t, tb.Registry(), "sluice_txn_completed_total", "result", "abort"))
}

// TestTxnFranzFencing: a second producer with the same transactional id
// fences the first, whose open transaction is aborted and whose commit fails.
func TestTxnFranzFencing(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "txn-fence")
	require.NoError(t, err)

	zombie := newClient(t, tb.Addr(), kgo.TransactionalID("fence"))
	require.NoError(t, zombie.BeginTransaction())
	require.NoError(t, zombie.ProduceSync(ctx, &kgo.Record{Topic: "txn-fence", Value: []byte("zombie")}).FirstErr())

	successor := newClient(t, tb.Addr(), kgo.TransactionalID("fence"))
	require.NoError(t, txnProduce(ctx, t, successor, "txn-fence", true, "successor"))

	err = zombie.EndTransaction(ctx, kgo.TryCommit)
	require.Error(t, err)
	require.True(t, errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch), "got %v", err)

	endAll(ctx, t, []string{tb.Addr()}, "txn-fence", 1)
	seen := readCommitted(ctx, t, []string{tb.Addr()}, "txn-fence", 1)
	require.Equal(t, []string{"successor"}, seen)
	require.Equal(t, 1.0, counter(t, tb.Registry(), "sluice_txn_fenced_total"))
}

// TestTxnFranzTimeout: a transaction left open longer than its timeout is
// aborted by the coordinator, and its producer is fenced.
func TestTxnFranzTimeout(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.TransactionAbortTimedOutTransactionCleanupIntervalMs = 100
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "txn-timeout")
	require.NoError(t, err)

	slow := newClient(t, tb.Addr(), kgo.TransactionalID("slow"), kgo.TransactionTimeout(time.Second))
	require.NoError(t, slow.BeginTransaction())
	require.NoError(t, slow.ProduceSync(ctx, &kgo.Record{Topic: "txn-timeout", Value: []byte("timed-out")}).FirstErr())
	waitUntil(t, 60*time.Second, "the coordinator aborted the transaction", func() bool {
		d, err := adm.DescribeTransactions(ctx, "slow")
		return err == nil && d["slow"].State == "CompleteAbort"
	})
	require.Error(t, slow.EndTransaction(ctx, kgo.TryCommit), "the producer that timed out cannot commit")
	require.Equal(t, 1.0, counter(t, tb.Registry(), "sluice_txn_timed_out_total"))

	endAll(ctx, t, []string{tb.Addr()}, "txn-timeout", 1)
	require.Empty(t, readCommitted(ctx, t, []string{tb.Addr()}, "txn-timeout", 1))
}

// TestTxnFranzCoordinatorFailover: the broker coordinating an open
// transaction stops (RF 3); the next leader of its __transaction_state
// partition loads it and the producer commits.
func TestTxnFranzCoordinatorFailover(t *testing.T) {
	brokers := startTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var seeds []string
	for _, tb := range brokers {
		seeds = append(seeds, tb.Addr())
	}
	adm := kadm.NewClient(newClient(t, seeds[0]))
	_, err := adm.CreateTopic(ctx, 1, 3, nil, "txn-failover")
	require.NoError(t, err)

	prod := newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.TransactionalID("failover"))
	require.NoError(t, prod.BeginTransaction())
	for _, v := range []string{"f-1", "f-2"} {
		require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: "txn-failover", Value: []byte(v)}).FirstErr())
	}
	coords := adm.FindTxnCoordinators(ctx, "failover")
	coord := coords["failover"]
	require.NoError(t, coord.Err)
	var rest []string
	for _, tb := range brokers {
		if tb.cfg.NodeID == coord.NodeID {
			tb.stop(t)
		} else {
			rest = append(rest, tb.Addr())
		}
	}
	require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Topic: "txn-failover", Value: []byte("f-3")}).FirstErr())
	require.NoError(t, prod.EndTransaction(ctx, kgo.TryCommit))
	endAll(ctx, t, rest, "txn-failover", 1)
	seen := readCommitted(ctx, t, rest, "txn-failover", 1)
	require.Equal(t, []string{"f-1", "f-2", "f-3"}, seen)
}

// TestTxnFranzConcurrentProducers: several transactional producers commit and
// abort at the same time (their markers share requests to the leader); the
// committed records, and only those, are visible.
func TestTxnFranzConcurrentProducers(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 3, 1, nil, "txn-conc")
	require.NoError(t, err)
	const producers, txns = 4, 5
	errs := make(chan error, producers)
	var want []string
	for p := range producers {
		for i := 0; i < txns; i += 2 {
			for r := range 3 {
				want = append(want, fmt.Sprintf("p%d-t%d-r%d", p, i, r))
			}
		}
		cl := newClient(t, tb.Addr(), kgo.TransactionalID(fmt.Sprintf("conc-%d", p)))
		go func() {
			for i := range txns {
				vals := []string{fmt.Sprintf("p%d-t%d-r0", p, i), fmt.Sprintf("p%d-t%d-r1", p, i), fmt.Sprintf("p%d-t%d-r2", p, i)}
				if err := txnProduce(ctx, t, cl, "txn-conc", i%2 == 0, vals...); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range producers {
		require.NoError(t, <-errs)
	}
	endAll(ctx, t, []string{tb.Addr()}, "txn-conc", 3)
	require.ElementsMatch(t, want, readCommitted(ctx, t, []string{tb.Addr()}, "txn-conc", 3))
	waitUntil(t, 60*time.Second, "every completion counted", func() bool {
		return counter(t, tb.Registry(), "sluice_txn_completed_total", "result", "commit") == producers*3+1 &&
			counter(t, tb.Registry(), "sluice_txn_completed_total", "result", "abort") == producers*2
	})
}

// TestTxnFranzGroupTransactSession: franz-go's exactly-once consume-transform-
// produce (GroupTransactSession: AddOffsetsToTxn, TxnOffsetCommit, EndTxn):
// every input record is in the output once, and the group's committed offsets
// match what was produced.
func TestTxnFranzGroupTransactSession(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "eos-in")
	require.NoError(t, err)
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "eos-out")
	require.NoError(t, err)
	in := newClient(t, tb.Addr())
	const n = 40
	var want []string
	for i := range n {
		v := fmt.Sprintf("in-%d", i)
		want = append(want, "out-"+v)
		require.NoError(t, in.ProduceSync(ctx, &kgo.Record{Topic: "eos-in", Value: []byte(v)}).FirstErr())
	}

	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(tb.Addr()), kgo.TransactionalID("eos"),
		kgo.ConsumerGroup("eos-group"), kgo.ConsumeTopics("eos-in"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer sess.Close()
	done := 0
	for done < n {
		fs := sess.PollFetches(ctx)
		require.NoError(t, ctx.Err())
		if fs.Empty() {
			continue
		}
		require.NoError(t, sess.Begin())
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: "eos-out", Value: append([]byte("out-"), r.Value...)}, nil)
			done++
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		require.NoError(t, err)
		require.True(t, committed)
	}
	endAll(ctx, t, []string{tb.Addr()}, "eos-out", 1)
	require.ElementsMatch(t, want, readCommitted(ctx, t, []string{tb.Addr()}, "eos-out", 1))
	offsets, err := adm.FetchOffsets(ctx, "eos-group")
	require.NoError(t, err)
	var total int64
	offsets.Each(func(o kadm.OffsetResponse) { total += o.At })
	require.Equal(t, int64(n), total, "the committed offsets cover exactly the input")
}
