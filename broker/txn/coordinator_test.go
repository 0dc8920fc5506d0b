package txn

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

var ctx = context.Background()

func initPID(t *testing.T, e *env, id string, expected *ProducerIDAndEpoch) ProducerIDAndEpoch {
	t.Helper()
	pe, code := e.c.InitProducerID(ctx, id, time.Minute, expected)
	require.Zero(t, code, "InitProducerId: %v", kerr.ErrorForCode(code))
	return pe
}

func TestCommitAndAbort(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	p := e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	require.Equal(t, int64(1001), pe.ProducerID)
	require.Equal(t, int16(0), pe.Epoch)
	require.Equal(t, Empty, e.state(t, "tx"))

	parts := []TopicPartition{{"a", 0}, {"b", 3}}
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, parts))
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, parts[:1]), "adding again")
	d, _ := e.c.Describe("tx")
	require.Equal(t, Ongoing, d.State)
	require.Equal(t, parts, d.Partitions)
	require.Equal(t, 1, testutil.CollectAndCount(e.reg, "sluice_txn_ongoing"))
	require.Equal(t, 1.0, gauge(t, e, "sluice_txn_ongoing"))

	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
	e.waitState(t, "tx", CompleteCommit)
	mk := e.markers.all()
	require.Len(t, mk, 1)
	require.Equal(t, Markers{ProducerID: pe.ProducerID, ProducerEpoch: 0, Commit: true, CoordinatorEpoch: 1, Partitions: parts}, mk[0])
	require.Equal(t, CompleteCommit, e.store.last(t, p, "tx").state, "the completion is in the log")
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true), "a retried commit succeeds")
	require.Equal(t, kerr.InvalidTxnState.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, false))

	// The next transaction of the same producer aborts.
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, parts[1:]))
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, false))
	e.waitState(t, "tx", CompleteAbort)
	mk = e.markers.all()
	require.Len(t, mk, 2)
	require.False(t, mk[1].Commit)
	require.Equal(t, parts[1:], mk[1].Partitions)
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.metrics.completed.WithLabelValues("commit")))
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.metrics.completed.WithLabelValues("abort")))
	require.Equal(t, 0.0, gauge(t, e, "sluice_txn_ongoing"))
	require.Equal(t, kerr.InvalidTxnState.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
}

func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestErrors(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{MaxTimeout: time.Minute})
	_, code := e.c.InitProducerID(ctx, "tx", time.Second, nil)
	require.Equal(t, kerr.NotCoordinator.Code, code, "partition not loaded")
	e.load(t, "tx")
	_, code = e.c.InitProducerID(ctx, "tx", time.Minute+time.Millisecond, nil)
	require.Equal(t, kerr.InvalidTransactionTimeout.Code, code)
	_, code = e.c.InitProducerID(ctx, "tx", 0, nil)
	require.Equal(t, kerr.InvalidTransactionTimeout.Code, code)
	_, code = e.c.Describe("tx")
	require.Equal(t, kerr.TransactionalIDNotFound.Code, code, "a refused InitProducerId creates nothing")

	tp := []TopicPartition{{"a", 0}}
	require.Equal(t, kerr.InvalidProducerIDMapping.Code, e.c.AddPartitions(ctx, "tx", 1, 0, tp), "unknown id")
	pe := initPID(t, e, "tx", nil)
	require.Equal(t, kerr.InvalidProducerIDMapping.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID+1, 0, tp))
	require.Equal(t, kerr.ProducerFenced.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch+1, tp))
	require.Equal(t, kerr.InvalidTxnState.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true), "nothing to end")

	// A failed state write changes nothing.
	e.store.setFail(errBoom)
	require.Equal(t, kerr.CoordinatorNotAvailable.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))
	e.store.setFail(kerr.NotLeaderForPartition)
	require.Equal(t, kerr.NotCoordinator.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))
	require.Equal(t, Empty, e.state(t, "tx"))
	e.store.setFail(nil)
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))

	// A commit in flight: requests wait (CONCURRENT_TRANSACTIONS), the other decision is refused.
	block := make(chan struct{})
	e.markers.mu.Lock()
	e.markers.block = block
	e.markers.mu.Unlock()
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
	require.Equal(t, kerr.ConcurrentTransactions.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
	require.Equal(t, kerr.InvalidTxnState.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, false))
	require.Equal(t, kerr.ConcurrentTransactions.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))
	_, code = e.c.InitProducerID(ctx, "tx", time.Second, nil)
	require.Equal(t, kerr.ConcurrentTransactions.Code, code)
	close(block)
	e.waitState(t, "tx", CompleteCommit)

	e.c.UnloadPartition(e.c.PartitionFor("tx"))
	require.Equal(t, kerr.NotCoordinator.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
}

func TestVerifyPartitions(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	in, out := TopicPartition{"a", 0}, TopicPartition{"a", 1}
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, []TopicPartition{in}))
	got := e.c.VerifyPartitions("tx", pe.ProducerID, pe.Epoch, []TopicPartition{in, out})
	require.Equal(t, map[TopicPartition]int16{in: 0, out: kerr.InvalidTxnState.Code}, got)
	got = e.c.VerifyPartitions("tx", pe.ProducerID, pe.Epoch+1, []TopicPartition{in})
	require.Equal(t, kerr.ProducerFenced.Code, got[in])
	got = e.c.VerifyPartitions("tx", pe.ProducerID+1, pe.Epoch, []TopicPartition{in})
	require.Equal(t, kerr.InvalidProducerIDMapping.Code, got[in])
	got = e.c.VerifyPartitions("other", pe.ProducerID, pe.Epoch, []TopicPartition{in})
	if e.c.PartitionFor("other") != e.c.PartitionFor("tx") {
		require.Equal(t, kerr.NotCoordinator.Code, got[in])
	}
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, false))
	e.waitState(t, "tx", CompleteAbort)
	got = e.c.VerifyPartitions("tx", pe.ProducerID, pe.Epoch, []TopicPartition{in})
	require.Equal(t, kerr.InvalidTxnState.Code, got[in], "after the abort the partition is in no transaction")
}

func TestFencing(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	old := initPID(t, e, "tx", nil)
	tp := []TopicPartition{{"a", 0}}
	require.Zero(t, e.c.AddPartitions(ctx, "tx", old.ProducerID, old.Epoch, tp))

	// A second instance: the ongoing transaction is aborted with a bumped epoch first.
	_, code := e.c.InitProducerID(ctx, "tx", time.Minute, nil)
	require.Equal(t, kerr.ConcurrentTransactions.Code, code)
	e.waitState(t, "tx", CompleteAbort)
	mk := e.markers.all()
	require.Len(t, mk, 1)
	require.False(t, mk[0].Commit)
	require.Equal(t, old.Epoch+1, mk[0].ProducerEpoch, "markers carry the fencing epoch")
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.metrics.fenced))

	cur := initPID(t, e, "tx", nil)
	require.Equal(t, old.ProducerID, cur.ProducerID)
	require.Equal(t, old.Epoch+2, cur.Epoch)
	require.Equal(t, kerr.ProducerFenced.Code, e.c.EndTxn(ctx, "tx", old.ProducerID, old.Epoch, true), "the zombie is fenced")
	require.Equal(t, kerr.ProducerFenced.Code, e.c.AddPartitions(ctx, "tx", old.ProducerID, old.Epoch, tp))

	// KIP-360: the current producer bumps its own epoch; a retry of that bump
	// gets the same answer; an old epoch is fenced.
	bumped := initPID(t, e, "tx", &cur)
	require.Equal(t, cur.Epoch+1, bumped.Epoch)
	again := initPID(t, e, "tx", &cur)
	require.Equal(t, bumped, again)
	_, code = e.c.InitProducerID(ctx, "tx", time.Minute, &old)
	require.Equal(t, kerr.ProducerFenced.Code, code)
	_, code = e.c.InitProducerID(ctx, "tx", time.Minute, &ProducerIDAndEpoch{ProducerID: 77, Epoch: 0})
	require.Equal(t, kerr.ProducerFenced.Code, code, "someone else's producer id")
}

func TestProducerIDRotation(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	// Exhaust the epoch by hand, as 32,766 restarts would.
	e.c.mu.Lock()
	e.c.txns["tx"].epoch = 32766
	e.c.mu.Unlock()
	exhausted := ProducerIDAndEpoch{ProducerID: pe.ProducerID, Epoch: 32766}
	rotated := initPID(t, e, "tx", &exhausted)
	require.NotEqual(t, pe.ProducerID, rotated.ProducerID)
	require.Equal(t, int16(0), rotated.Epoch)
	require.Equal(t, rotated, initPID(t, e, "tx", &exhausted), "a retry of the rotation gets the new id")
	require.Equal(t, pe.ProducerID, e.store.last(t, e.c.PartitionFor("tx"), "tx").lastProducerID,
		"the previous producer id is in the log (value v1)")
}

func TestMarkerRetry(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	parts := []TopicPartition{{"a", 0}, {"a", 1}}
	e.markers.mu.Lock()
	e.markers.failLeft[parts[1]] = 3
	e.markers.mu.Unlock()
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, parts))
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
	e.waitState(t, "tx", CompleteCommit)
	var got []TopicPartition
	for _, m := range e.markers.all() {
		got = append(got, m.Partitions...)
	}
	require.ElementsMatch(t, parts, got, "each partition got its marker once")
	require.Equal(t, int32(4), e.markers.calls.Load())
}

func TestTimeoutAbort(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe, code := e.c.InitProducerID(ctx, "tx", 10*time.Second, nil)
	require.Zero(t, code)
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, []TopicPartition{{"a", 0}}))
	e.advance(5 * time.Second)
	require.Equal(t, 5.0, gauge(t, e, "sluice_txn_oldest_age_seconds"))
	e.c.AbortTimedOut(ctx)
	require.Equal(t, Ongoing, e.state(t, "tx"), "not yet timed out")
	e.advance(6 * time.Second)
	e.c.AbortTimedOut(ctx)
	e.waitState(t, "tx", CompleteAbort)
	require.Equal(t, 1.0, testutil.ToFloat64(e.c.metrics.timedOut))
	mk := e.markers.all()
	require.Len(t, mk, 1)
	require.Equal(t, pe.Epoch+1, mk[0].ProducerEpoch)
	require.Equal(t, kerr.ProducerFenced.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true),
		"the producer that timed out is fenced")
}

func TestExpireIDs(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{IDExpiration: time.Hour})
	p := e.load(t, "tx")
	initPID(t, e, "tx", nil)
	e.advance(59 * time.Minute)
	e.c.ExpireIDs(ctx)
	require.Equal(t, Empty, e.state(t, "tx"))
	e.advance(2 * time.Minute)
	e.c.ExpireIDs(ctx)
	_, code := e.c.Describe("tx")
	require.Equal(t, kerr.TransactionalIDNotFound.Code, code)

	// The tombstone keeps it expired after a reload.
	e.c.UnloadPartition(p)
	require.NoError(t, e.c.LoadPartition(p, 2))
	_, code = e.c.Describe("tx")
	require.Equal(t, kerr.TransactionalIDNotFound.Code, code)
}

func TestLoadResumesCompletion(t *testing.T) {
	store := newMemStore()
	first := newEnv(t, store, Config{})
	p := first.load(t, "tx")
	pe := initPID(t, first, "tx", nil)
	parts := []TopicPartition{{"a", 0}}
	require.Zero(t, first.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, parts))
	first.load(t, "idle")
	pe2 := initPID(t, first, "idle", nil)

	// The coordinator decides to commit, then dies before any marker is written.
	block := make(chan struct{})
	first.markers.mu.Lock()
	first.markers.block = block
	first.markers.mu.Unlock()
	require.Zero(t, first.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))
	first.c.Close()
	require.Empty(t, first.markers.all())

	// The next leader of the partition loads it and finishes the commit.
	second := newEnv(t, store, Config{})
	require.NoError(t, second.c.LoadPartition(p, 2))
	if q := second.c.PartitionFor("idle"); q != p {
		require.NoError(t, second.c.LoadPartition(q, 2))
	}
	second.waitState(t, "tx", CompleteCommit)
	mk := second.markers.all()
	require.Len(t, mk, 1)
	require.Equal(t, Markers{ProducerID: pe.ProducerID, ProducerEpoch: pe.Epoch, Commit: true, CoordinatorEpoch: 2, Partitions: parts}, mk[0])
	d, code := second.c.Describe("idle")
	require.Zero(t, code)
	require.Equal(t, pe2.ProducerID, d.ProducerID)
	require.Equal(t, Empty, d.State)
	require.Zero(t, second.c.AddPartitions(ctx, "idle", pe2.ProducerID, pe2.Epoch, parts), "the producer goes on after failover")
}

func TestList(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{NumPartitions: 1})
	e.load(t, "a")
	pa := initPID(t, e, "a", nil)
	pb := initPID(t, e, "b", nil)
	require.Zero(t, e.c.AddPartitions(ctx, "a", pa.ProducerID, pa.Epoch, []TopicPartition{{"t", 0}}))
	e.advance(time.Minute)
	all, code := e.c.List(ListFilter{})
	require.Zero(t, code)
	require.Equal(t, []Listing{{"a", pa.ProducerID, Ongoing}, {"b", pb.ProducerID, Empty}}, all)
	ongoing, _ := e.c.List(ListFilter{States: []State{Ongoing}})
	require.Equal(t, all[:1], ongoing)
	byPID, _ := e.c.List(ListFilter{ProducerIDs: []int64{pb.ProducerID}})
	require.Equal(t, all[1:], byPID)
	long, _ := e.c.List(ListFilter{MinDuration: 30 * time.Second})
	require.Equal(t, all, long, "b has no transaction: it passes, as in Kafka")
	long, _ = e.c.List(ListFilter{MinDuration: 2 * time.Minute})
	require.Equal(t, all[1:], long)
}

func TestRunStopsAndConcurrentUse(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{NumPartitions: 3, AbortTimedOutInterval: time.Millisecond, RemoveExpiredInterval: time.Millisecond})
	for p := range int32(3) {
		require.NoError(t, e.c.LoadPartition(p, 1))
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- e.c.Run(rctx) }()
	ids := []string{"x", "y", "z", "w"}
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			pe, code := e.c.InitProducerID(ctx, id, time.Minute, nil)
			for range 20 {
				if code == 0 {
					code = e.c.AddPartitions(ctx, id, pe.ProducerID, pe.Epoch, []TopicPartition{{id, 0}})
				}
				if code == 0 {
					code = e.c.EndTxn(ctx, id, pe.ProducerID, pe.Epoch, true)
				}
				for code == kerr.ConcurrentTransactions.Code {
					code = e.c.AddPartitions(ctx, id, pe.ProducerID, pe.Epoch, []TopicPartition{{id, 0}})
					if code == 0 {
						code = e.c.EndTxn(ctx, id, pe.ProducerID, pe.Epoch, true)
					}
				}
				if code != 0 {
					break
				}
			}
			errs <- kerr.ErrorForCode(code)
		}()
	}
	for range ids {
		require.NoError(t, <-errs)
	}
	cancel()
	require.NoError(t, <-done)
}

func TestFenceAtTheLastEpochRotates(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	e.c.mu.Lock()
	e.c.txns["tx"].epoch = 32766
	e.c.mu.Unlock()
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, 32766, []TopicPartition{{"a", 0}}))
	_, code := e.c.InitProducerID(ctx, "tx", time.Minute, nil)
	require.Equal(t, kerr.ConcurrentTransactions.Code, code)
	e.waitState(t, "tx", CompleteAbort)
	require.Equal(t, int16(32767), e.markers.all()[0].ProducerEpoch, "the fence takes the last epoch")
	next := initPID(t, e, "tx", nil)
	require.NotEqual(t, pe.ProducerID, next.ProducerID, "then the producer id rotates")
	require.Equal(t, int16(0), next.Epoch)
	require.Equal(t, kerr.InvalidProducerIDMapping.Code, e.c.EndTxn(ctx, "tx", pe.ProducerID, 32766, true), "the old producer id is gone")
}

func TestNextTransactionWaitsForTheCompletion(t *testing.T) {
	e := newEnv(t, newMemStore(), Config{})
	e.load(t, "tx")
	pe := initPID(t, e, "tx", nil)
	tp := []TopicPartition{{"a", 0}}
	require.Zero(t, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))
	block := make(chan struct{})
	e.markers.mu.Lock()
	e.markers.block = block
	e.markers.mu.Unlock()
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, true))

	// The next transaction's AddPartitions waits for the markers, then starts it.
	added := make(chan int16)
	go func() { added <- e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp) }()
	select {
	case code := <-added:
		t.Fatalf("AddPartitions answered %d before the markers were written", code)
	case <-time.After(50 * time.Millisecond):
	}
	close(block)
	require.Zero(t, <-added)
	require.Equal(t, Ongoing, e.state(t, "tx"))
	require.Len(t, e.markers.all(), 1)

	// A completion that takes longer than the wait: CONCURRENT_TRANSACTIONS, as in Kafka.
	e.c.completionWait = 10 * time.Millisecond
	block = make(chan struct{})
	e.markers.mu.Lock()
	e.markers.block = block
	e.markers.mu.Unlock()
	require.Zero(t, e.c.EndTxn(ctx, "tx", pe.ProducerID, pe.Epoch, false))
	require.Equal(t, kerr.ConcurrentTransactions.Code, e.c.AddPartitions(ctx, "tx", pe.ProducerID, pe.Epoch, tp))
	close(block)
	e.waitState(t, "tx", CompleteAbort)
}
