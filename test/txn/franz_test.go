package txn

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

// txnProducer returns a franz-go transactional producer with the given transactional id that writes
// to explicit partitions.
func (d *deployment) txnProducer(t *testing.T, txnID string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return d.client(t, append([]kgo.Opt{
		kgo.TransactionalID(txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
}

// spread returns one record per value, round-robin over partitions 0..n-1.
func spread(topic string, n int, values []string) []*kgo.Record {
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = &kgo.Record{Topic: topic, Partition: int32(i % n), Value: []byte(v)}
	}
	return rs
}

// inTxn runs one transaction of p that writes values round-robin over n partitions of topic and ends
// it with commit or abort.
func inTxn(ctx context.Context, t *testing.T, p *kgo.Client, topic string, n int, values []string, end kgo.TransactionEndTry) {
	t.Helper()
	require.NoError(t, p.BeginTransaction())
	require.NoError(t, p.ProduceSync(ctx, spread(topic, n, values)...).FirstErr())
	require.NoError(t, p.EndTransaction(ctx, end))
}

// waitStable waits until the last stable offset of every partition of topic equals its high
// watermark: no transaction is open on it any more.
func (d *deployment) waitStable(t *testing.T, topic string, timeout time.Duration) {
	t.Helper()
	adm := d.admin(t)
	testutil.WaitForErr(t, timeout, "last stable offset = high watermark on "+topic, func() (bool, error) {
		hw, lso, err := d.stableOffsets(t, adm, topic)
		if err != nil {
			return false, err
		}
		for p, h := range hw {
			if lso[p] != h {
				return false, fmt.Errorf("partition %d: last stable offset %d, high watermark %d", p, lso[p], h)
			}
		}
		return true, nil
	})
}

// TestFranzCommitAbortVisibility commits, aborts and commits a transaction over three partitions and
// leaves a fourth open: read_committed sees exactly the committed records, read_uncommitted sees the
// aborted ones too, the last stable offset stops at the first offset of the open transaction until it
// commits, and a read_committed reader sees nothing written after it until then.
func TestFranzCommitAbortVisibility(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const parts = 3
		topic := uniqueName("txn-visibility")
		d.createTopic(t, topic, parts)
		p := d.txnProducer(t, uniqueName("visibility"))
		ctx := testCtx(t, 3*time.Minute)

		inTxn(ctx, t, p, topic, parts, numbered("c1-", 30), kgo.TryCommit)
		inTxn(ctx, t, p, topic, parts, numbered("ABORTED-", 30), kgo.TryAbort)
		inTxn(ctx, t, p, topic, parts, numbered("c2-", 30), kgo.TryCommit)
		d.waitStable(t, topic, time.Minute)

		adm := d.admin(t)
		before, _, err := d.stableOffsets(t, adm, topic)
		require.NoError(t, err)
		require.NoError(t, p.BeginTransaction())
		require.NoError(t, p.ProduceSync(ctx, spread(topic, parts, numbered("open-", 30))...).FirstErr())
		// The last stable offset is the first offset of the open transaction, and stays there while
		// other producers write after it.
		hw, lso, err := d.stableOffsets(t, adm, topic)
		require.NoError(t, err)
		for part := range int32(parts) {
			require.Equal(t, before[part], lso[part], "partition %d: last stable offset with a transaction open from %d", part, before[part])
			require.Equal(t, before[part]+10, hw[part], "partition %d: high watermark", part)
		}
		s := d.writeSentinels(t, topic)
		_, lso, err = d.stableOffsets(t, adm, topic)
		require.NoError(t, err)
		require.Equal(t, before, lso, "a plain write after an open transaction does not move the last stable offset")

		uncommitted, err := d.readTo(t, topic, kgo.ReadUncommitted(), s, time.Minute)
		require.NoError(t, err)
		require.ElementsMatch(t, concat(numbered("c1-", 30), numbered("ABORTED-", 30), numbered("c2-", 30), numbered("open-", 30)),
			all(uncommitted), "read_uncommitted sees every record, open and aborted ones included")

		require.NoError(t, p.EndTransaction(ctx, kgo.TryCommit))
		d.waitStable(t, topic, time.Minute)
		committed, err := d.readTo(t, topic, kgo.ReadCommitted(), s, time.Minute)
		require.NoError(t, err)
		for part, vs := range committed {
			require.Empty(t, withPrefix(vs, "ABORTED-"), "partition %d: read_committed shows aborted records", part)
		}
		require.ElementsMatch(t, concat(numbered("c1-", 30), numbered("c2-", 30), numbered("open-", 30)), all(committed))
		// Order within a partition is the produce order.
		for part, vs := range committed {
			require.Equal(t, "c1-"+strconv.Itoa(int(part)), vs[0], "partition %d starts with the first committed record", part)
		}
	})
}

// concat joins lists.
func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// TestFranzFencing starts a transaction with one producer and then initializes a second producer with
// the same transactional id: the first one's open transaction is aborted, its commit is refused as
// fenced, and only the second one's records are committed.
func TestFranzFencing(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const parts = 2
		topic := uniqueName("txn-fencing")
		d.createTopic(t, topic, parts)
		id := uniqueName("fencing")
		ctx := testCtx(t, 3*time.Minute)

		zombie := d.txnProducer(t, id)
		require.NoError(t, zombie.BeginTransaction())
		require.NoError(t, zombie.ProduceSync(ctx, spread(topic, parts, numbered("zombie-", 10))...).FirstErr())

		fresh := d.txnProducer(t, id)
		inTxn(ctx, t, fresh, topic, parts, numbered("fresh-", 10), kgo.TryCommit)

		err := zombie.EndTransaction(ctx, kgo.TryCommit)
		require.Error(t, err, "the fenced producer's commit must fail")
		require.True(t, isFenced(err), "want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, got %v", err)

		committed := d.readBack(t, topic, kgo.ReadCommitted())
		require.ElementsMatch(t, numbered("fresh-", 10), all(committed))
		uncommitted := d.readBack(t, topic, kgo.ReadUncommitted())
		require.ElementsMatch(t, concat(numbered("zombie-", 10), numbered("fresh-", 10)), all(uncommitted))
	})
}

// TestFranzTransactionTimeout leaves a transaction open past its transaction.timeout.ms: the
// coordinator aborts it (the last stable offset reaches the high watermark), the producer is fenced,
// and read_committed never shows its records.
func TestFranzTransactionTimeout(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const parts = 2
		topic := uniqueName("txn-timeout")
		d.createTopic(t, topic, parts)
		id := uniqueName("timeout")
		ctx := testCtx(t, 4*time.Minute)

		p := d.txnProducer(t, id, kgo.TransactionTimeout(3*time.Second))
		require.NoError(t, p.BeginTransaction())
		require.NoError(t, p.ProduceSync(ctx, spread(topic, parts, numbered("expired-", 10))...).FirstErr())
		started := time.Now()
		// Kafka's coordinator looks for expired transactions every 10 s
		// (transaction.abort.timed.out.transaction.cleanup.interval.ms), so allow for several rounds
		// on a busy machine.
		d.waitStable(t, topic, 2*time.Minute)
		t.Logf("coordinator aborted the expired transaction %v after the produce", time.Since(started).Round(time.Millisecond))

		err := p.EndTransaction(ctx, kgo.TryCommit)
		require.Error(t, err, "committing a transaction the coordinator aborted must fail")
		require.True(t, isFenced(err), "want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, got %v", err)

		committed := d.readBack(t, topic, kgo.ReadCommitted())
		require.Empty(t, all(committed))
		uncommitted := d.readBack(t, topic, kgo.ReadUncommitted())
		require.ElementsMatch(t, numbered("expired-", 10), all(uncommitted))

		// The transactional id is usable again by a new producer.
		next := d.txnProducer(t, id)
		inTxn(ctx, t, next, topic, parts, numbered("next-", 4), kgo.TryCommit)
		committed = d.readBack(t, topic, kgo.ReadCommitted())
		require.ElementsMatch(t, numbered("next-", 4), all(committed))
	})
}

// TestFranzGroupTransactSession is a consume-transform-produce pipeline with franz-go's
// GroupTransactSession: every input record is written once to the output topic and its offset is
// committed in the same transaction; every third transaction is aborted, which rewinds the session
// to the committed offsets. read_committed must show each input record exactly once, and the group's
// committed offsets must match the output.
func TestFranzGroupTransactSession(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const (
			parts = 3
			n     = 600
		)
		in, out := uniqueName("txn-etl-in"), uniqueName("txn-etl-out")
		d.createTopic(t, in, parts)
		d.createTopic(t, out, parts)
		d.producePlain(t, in, -1, numbered("in-", n)...)
		group := uniqueName("etl")

		s, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(d.cl.Bootstrap()...),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.TransactionalID(uniqueName("etl")),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DefaultProduceTopic(out),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.FetchMaxWait(200*time.Millisecond),
		)
		require.NoError(t, err)
		defer s.Close()
		adm := d.admin(t)
		ctx := testCtx(t, 4*time.Minute)

		txns, aborted := 0, 0
		testutil.WaitForErr(t, 3*time.Minute, "the group to commit every input offset", func() (bool, error) {
			pollCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			fs := s.PollRecords(pollCtx, 40) // small transactions: many of them
			idle := pollCtx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if errs := fs.Errors(); len(errs) > 0 && !idle {
				t.Logf("poll: %v", errs)
			}
			if fs.NumRecords() > 0 {
				require.NoError(t, s.Begin())
				fs.EachRecord(func(r *kgo.Record) {
					s.Produce(ctx, &kgo.Record{Partition: r.Partition,
						Value: fmt.Appendf(nil, "%d:%d:%s", r.Partition, r.Offset, r.Value)}, func(_ *kgo.Record, err error) {
						if err != nil {
							t.Errorf("transactional produce: %v", err) // the transaction must not commit then
						}
					})
				})
				// Every promise has run once the records are flushed; a failed one fails the test
				// before the commit below could hide it.
				require.NoError(t, s.Client().Flush(ctx))
				if t.Failed() {
					_, _ = s.End(ctx, kgo.TryAbort)
					require.FailNow(t, "a transactional produce failed")
				}
				txns++
				end := kgo.TryCommit
				if txns%3 == 0 {
					// Send the records first, so that the aborted transaction has data in the
					// log (TryAbort alone drops what is still buffered).
					require.NoError(t, s.Client().Flush(ctx))
					end = kgo.TryAbort
				}
				committed, err := s.End(ctx, end)
				if err != nil {
					return false, err
				}
				if !committed {
					aborted++
				}
			}
			offs, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return false, err
			}
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
			return sum == n, fmt.Errorf("group committed %d of %d offsets after %d transactions", sum, n, txns)
		})
		require.NotZero(t, aborted, "some transactions were aborted")
		t.Logf("%d transactions, %d aborted", txns, aborted)
		s.Close()

		committed := d.readBack(t, out, kgo.ReadCommitted())
		seen := map[string]int{}
		perPartition := map[int32]int64{}
		for part, vs := range committed {
			for _, v := range vs {
				fields := strings.SplitN(v, ":", 3)
				require.Len(t, fields, 3, "output value %q", v)
				require.Equal(t, strconv.Itoa(int(part)), fields[0], "record %q is in output partition %d", v, part)
				seen[fields[2]]++
				perPartition[part]++
			}
		}
		for _, v := range numbered("in-", n) {
			require.Equal(t, 1, seen[v], "input record %s in read_committed output", v)
		}
		require.Len(t, seen, n, "nothing else in the output")

		offs, err := adm.FetchOffsets(ctx, group)
		require.NoError(t, err)
		offs.Each(func(o kadm.OffsetResponse) {
			require.Equal(t, perPartition[o.Partition], o.At, "committed offset of input partition %d = its records in the output", o.Partition)
		})
		uncommitted := d.readBack(t, out, kgo.ReadUncommitted())
		require.Greater(t, len(all(uncommitted)), n, "read_uncommitted also shows the aborted transactions' copies")
	})
}

// TestFranzCoordinatorRestart kills (SIGKILL) the broker of the transaction's coordinator while a
// transaction is open: on one broker it is restarted at once, in the cluster the coordinator moves to
// another broker and the victim restarts afterwards. The commit either succeeds or fails (and the
// transaction is aborted); read_committed sees all of the transaction or none of it, the last stable
// offset is not stuck, and the transactional id works again.
func TestFranzCoordinatorRestart(t *testing.T) {
	for _, brokers := range []int{1, 3} {
		t.Run(fmt.Sprintf("brokers=%d", brokers), func(t *testing.T) {
			d := ownDeployment(t, brokers)
			const parts = 3
			topic := uniqueName("txn-restart")
			d.createTopic(t, topic, parts)
			id := uniqueName("restart")
			ctx := testCtx(t, 5*time.Minute)
			p := d.txnProducer(t, id, kgo.TransactionTimeout(time.Minute))
			inTxn(ctx, t, p, topic, parts, numbered("before-", 9), kgo.TryCommit)

			require.NoError(t, p.BeginTransaction())
			require.NoError(t, p.ProduceSync(ctx, spread(topic, parts, numbered("mid-", 30))...).FirstErr())
			coords := d.admin(t).FindTxnCoordinators(ctx, id)
			c, ok := coords[id]
			require.True(t, ok, "FindCoordinator answered for %s", id)
			require.NoError(t, c.Err)
			victim := c.NodeID
			t.Logf("coordinator of %s is broker %d; killing it", id, victim)
			require.NoError(t, d.cl.Kill(victim))
			if brokers == 1 {
				require.NoError(t, d.cl.Restart(ctx, victim))
			}

			commitErr := p.EndTransaction(ctx, kgo.TryCommit)
			if commitErr != nil {
				t.Logf("commit after the coordinator's restart failed (%v); aborting", commitErr)
				if err := p.EndTransaction(ctx, kgo.TryAbort); err != nil {
					t.Logf("abort failed too (%v); a new producer with the same id will abort it", err)
				}
			}
			if brokers > 1 {
				require.NoError(t, d.cl.Restart(ctx, victim))
			}
			require.NoError(t, d.cl.WaitHealthy(ctx, 2*time.Minute, topic))

			next := d.txnProducer(t, id)
			inTxn(ctx, t, next, topic, parts, numbered("after-", 6), kgo.TryCommit)
			d.waitStable(t, topic, 2*time.Minute)

			got := all(d.readBack(t, topic, kgo.ReadCommitted()))
			mids := withPrefix(got, "mid-")
			if commitErr == nil {
				require.ElementsMatch(t, numbered("mid-", 30), mids, "the committed transaction is complete")
			} else if len(mids) > 0 {
				// An EndTxn whose answer was lost may still have committed: then all of it.
				require.ElementsMatch(t, numbered("mid-", 30), mids, "all of the transaction or nothing")
			}
			require.ElementsMatch(t, numbered("before-", 9), withPrefix(got, "before-"))
			require.ElementsMatch(t, numbered("after-", 6), withPrefix(got, "after-"))
			t.Logf("commit error %v; %d of 30 records of the interrupted transaction visible", commitErr, len(mids))
		})
	}
}
