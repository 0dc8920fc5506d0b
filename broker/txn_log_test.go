package broker

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/record"
)

// txnFake plays a transactional producer and its coordinator with raw requests,
// so the partition side is tested on its own: Produce with transactional
// batches, then WriteTxnMarkers as the coordinator sends them.
type txnFake struct {
	t     *testing.T
	tb    *testBroker
	pid   int64
	epoch int16
	seq   int32
	txnID string
	topic string
}

// withoutTxnVerification turns KIP-890's verification off, for tests that play
// the coordinator with raw requests.
func withoutTxnVerification(c *Config) { c.TransactionPartitionVerificationEnable = ptr(false) }

func newTxnFake(t *testing.T, tb *testBroker, topic string) *txnFake {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.TransactionTimeoutMillis = 60000
	resp := request[*kmsg.InitProducerIDResponse](t, tb.Addr(), req)
	require.Zero(t, resp.ErrorCode)
	return &txnFake{t: t, tb: tb, pid: resp.ProducerID, epoch: resp.ProducerEpoch, txnID: "tx-" + topic, topic: topic}
}

// produce sends values as one batch, transactional or not, and returns the
// partition's answer.
func (f *txnFake) produce(transactional bool, values ...string) kmsg.ProduceResponseTopicPartition {
	var recs []kmsg.Record
	for _, v := range values {
		r := kmsg.NewRecord()
		r.Value = []byte(v)
		recs = append(recs, r)
	}
	b := record.Build(0, time.Now().UnixMilli(), recs)
	h, err := record.ParseHeader(b)
	require.NoError(f.t, err)
	h.ProducerID, h.ProducerEpoch, h.BaseSequence = f.pid, f.epoch, f.seq
	if transactional {
		h.Attributes |= 0x10
	}
	b = record.Encode(nil, h, recs)
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, -1, 10000
	if transactional && f.txnID != "" {
		req.TransactionID = &f.txnID
	}
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = f.topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = b
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.ProduceResponse](f.t, f.tb.Addr(), req)
	sp := resp.Topics[0].Partitions[0]
	if sp.ErrorCode == 0 {
		f.seq += int32(len(values))
	}
	return sp
}

// marker sends WriteTxnMarkers for the fake's producer to addr and returns
// the partition's error code.
func (f *txnFake) marker(addr, topic string, partition int32, commit bool, coordEpoch int32) int16 {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = f.pid, f.epoch, commit, coordEpoch
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp := request[*kmsg.WriteTxnMarkersResponse](f.t, addr, req)
	require.Len(f.t, resp.Markers, 1)
	require.Equal(f.t, f.pid, resp.Markers[0].ProducerID)
	return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
}

func consumeValues(t *testing.T, addr, topic string, isolation kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "got %v, want %d records", got, want)
		fs.EachError(func(_ string, _ int32, err error) { require.NoError(t, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Nothing more arrives.
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	fs := cl.PollFetches(short)
	fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	return got
}

// TestReadCommittedSeesOnlyCommittedTransactions produces transactions with raw
// requests, ends them with WriteTxnMarkers as a coordinator does, and checks
// franz-go consumers: read_committed sees committed and non-transactional
// records only, read_uncommitted everything; the LSO holds read_committed
// consumers and ListOffsets back while a transaction is open.
func TestReadCommittedSeesOnlyCommittedTransactions(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withoutTxnVerification)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "txn")
	require.NoError(t, err)
	brokerAddr := tb.ListenerAddr("BROKER")
	require.NotEmpty(t, brokerAddr)

	f := newTxnFake(t, tb, "txn")
	plain := newTxnFake(t, tb, "txn")
	require.Zero(t, plain.produce(false, "p1").ErrorCode)
	require.Zero(t, f.produce(true, "aborted1", "aborted2").ErrorCode)
	require.Zero(t, plain.produce(false, "p2").ErrorCode)

	// While the transaction is open, read_committed stops at its first offset.
	lso := func() (committed, uncommitted int64) {
		for _, level := range []int8{1, 0} {
			req := kmsg.NewPtrListOffsetsRequest()
			req.Version, req.IsolationLevel = 5, level
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "txn"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := request[*kmsg.ListOffsetsResponse](t, tb.Addr(), req)
			require.Zero(t, resp.Topics[0].Partitions[0].ErrorCode)
			if level == 1 {
				committed = resp.Topics[0].Partitions[0].Offset
			} else {
				uncommitted = resp.Topics[0].Partitions[0].Offset
			}
		}
		return
	}
	c, u := lso()
	require.Equal(t, int64(1), c, "LSO at the open transaction's first offset")
	require.Equal(t, int64(4), u)
	require.Equal(t, []string{"p1"}, consumeValues(t, tb.Addr(), "txn", kgo.ReadCommitted(), 1))

	// Markers come only from brokers, on the inter-broker listener.
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, f.marker(tb.Addr(), "txn", 0, false, 1))
	require.Equal(t, kerr.UnknownTopicOrPartition.Code, f.marker(brokerAddr, "nope", 0, false, 1))
	require.Zero(t, f.marker(brokerAddr, "txn", 0, false, 1))

	// The next transaction commits.
	require.Zero(t, f.produce(true, "committed1").ErrorCode)
	require.Zero(t, plain.produce(false, "p3").ErrorCode)
	require.Zero(t, f.produce(true, "committed2").ErrorCode)
	c, _ = lso()
	require.Equal(t, int64(5), c)
	require.Equal(t, kerr.TransactionCoordinatorFenced.Code, f.marker(brokerAddr, "txn", 0, true, 0), "an older coordinator")
	require.Zero(t, f.marker(brokerAddr, "txn", 0, true, 1))
	c, u = lso()
	require.Equal(t, u, c, "no transaction open")

	require.Equal(t, []string{"p1", "p2", "committed1", "p3", "committed2"},
		consumeValues(t, tb.Addr(), "txn", kgo.ReadCommitted(), 5))
	require.Equal(t, []string{"p1", "aborted1", "aborted2", "p2", "committed1", "p3", "committed2"},
		consumeValues(t, tb.Addr(), "txn", kgo.ReadUncommitted(), 7))

	// Fencing and bad input on the produce path change nothing.
	require.Equal(t, kerr.InvalidTxnState.Code, func() int16 {
		require.Zero(t, f.produce(true, "open").ErrorCode)
		return f.produce(false, "not transactional inside a transaction").ErrorCode
	}())
	old := *f
	old.epoch--
	old.seq = 0
	require.Equal(t, kerr.InvalidProducerEpoch.Code, old.produce(true, "zombie").ErrorCode)
	noID := *f
	noID.txnID = ""
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, noID.produce(true, "no transactional id").ErrorCode)
	_, u2 := lso()

	// DescribeProducers shows the open transaction.
	dreq := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "txn", []int32{0}
	dreq.Topics = append(dreq.Topics, dt)
	dresp := request[*kmsg.DescribeProducersResponse](t, tb.Addr(), dreq)
	sp := dresp.Topics[0].Partitions[0]
	require.Zero(t, sp.ErrorCode)
	var found bool
	for _, ap := range sp.ActiveProducers {
		if ap.ProducerID == f.pid {
			found = true
			require.Equal(t, u2-1, ap.CurrentTxnStartOffset)
			require.Equal(t, int32(1), ap.CoordinatorEpoch)
			require.Equal(t, f.seq-1, ap.LastSequence)
		}
	}
	require.True(t, found, "producer %d in %+v", f.pid, sp.ActiveProducers)
}

// TestTxnOffsetCommitPendingUntilMarker commits offsets in a transaction: they
// stay pending (OffsetFetch with RequireStable answers UNSTABLE_OFFSET_COMMIT),
// an abort marker drops them and a commit marker makes them the group's offsets,
// also after a restart replays __consumer_offsets.
func TestTxnOffsetCommitPendingUntilMarker(t *testing.T) {
	dir := t.TempDir()
	tb := startTestBroker(t, dir, withoutTxnVerification)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "in")
	require.NoError(t, err)
	f := newTxnFake(t, tb, "in")
	const group = "eos-group"
	part := tb.groups.PartitionFor(group)

	commit := func(offset int64) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version = 3
		req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = f.txnID, group, f.pid, f.epoch
		req.Generation = -1
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = "in"
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Offset = offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		var resp *kmsg.TxnOffsetCommitResponse
		waitUntil(t, 20*time.Second, "group coordinator loaded", func() bool {
			resp = request[*kmsg.TxnOffsetCommitResponse](t, tb.Addr(), req)
			c := resp.Topics[0].Partitions[0].ErrorCode
			return c != kerr.CoordinatorLoadInProgress.Code && c != kerr.NotCoordinator.Code
		})
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	fetch := func(addr string) (int64, int16) {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Version, req.RequireStable = 7, true
		req.Group = group
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = "in", []int32{0}
		req.Topics = append(req.Topics, rt)
		var resp *kmsg.OffsetFetchResponse
		waitUntil(t, 20*time.Second, "group coordinator loaded", func() bool {
			resp = request[*kmsg.OffsetFetchResponse](t, addr, req)
			return resp.ErrorCode == 0
		})
		p := resp.Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}

	require.Zero(t, commit(10))
	off, code := fetch(tb.Addr())
	require.Equal(t, kerr.UnstableOffsetCommit.Code, code)
	require.Equal(t, int64(-1), off)
	require.Zero(t, f.marker(tb.ListenerAddr("BROKER"), offsetsTopic, part, false, 0))
	off, code = fetch(tb.Addr())
	require.Zero(t, code)
	require.Equal(t, int64(-1), off, "the aborted commit is dropped")

	require.Zero(t, commit(20))
	require.Zero(t, f.marker(tb.ListenerAddr("BROKER"), offsetsTopic, part, true, 0))
	off, code = fetch(tb.Addr())
	require.Zero(t, code)
	require.Equal(t, int64(20), off)

	// One more left pending over a restart stays pending, then commits.
	require.Zero(t, commit(30))
	tb.stop(t)
	tb = startTestBroker(t, dir, withoutTxnVerification)
	off, code = fetch(tb.Addr())
	require.Equal(t, kerr.UnstableOffsetCommit.Code, code, "offset %d", off)
	require.Zero(t, f.marker(tb.ListenerAddr("BROKER"), offsetsTopic, part, true, 0))
	off, code = fetch(tb.Addr())
	require.Zero(t, code)
	require.Equal(t, int64(30), off)
}

// TestTransactionalProduceNeedsVerification: with KIP-890's verification on, a
// transactional batch that would open a transaction its coordinator does not
// know (no InitProducerId for this producer) is refused with the coordinator's
// INVALID_PRODUCER_ID_MAPPING and writes nothing.
func TestTransactionalProduceNeedsVerification(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "verified")
	require.NoError(t, err)
	f := newTxnFake(t, tb, "verified")
	waitTxnCoordinator(t, tb.Addr(), f.txnID)
	sp := f.produce(true, "unverified")
	require.Equal(t, kerr.InvalidProducerIDMapping.Code, sp.ErrorCode, "%v", sp.ErrorMessage)
	ends, err := adm.ListEndOffsets(ctx, "verified")
	require.NoError(t, err)
	o, _ := ends.Lookup("verified", 0)
	require.Zero(t, o.Offset)
}

// readCommittedFetch sends one read_committed Fetch of partition 0 from offset.
func readCommittedFetch(t *testing.T, addr, topic string, offset int64, maxWait int32) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 12, -1, maxWait, 1, 1<<20
	req.IsolationLevel = 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.FetchResponse](t, addr, req)
	require.Zero(t, resp.ErrorCode)
	return resp.Topics[0].Partitions[0]
}

// TestReadCommittedFetchWakesWhenLSOAdvances: a read_committed fetch waiting at
// the LSO behind an open transaction returns as soon as the commit marker moves
// the LSO, long before its max wait.
func TestReadCommittedFetchWakesWhenLSOAdvances(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withoutTxnVerification)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "wake")
	require.NoError(t, err)
	f := newTxnFake(t, tb, "wake")
	require.Zero(t, f.produce(true, "held").ErrorCode)

	done := make(chan kmsg.FetchResponseTopicPartition, 1)
	start := time.Now()
	go func() { done <- readCommittedFetch(t, tb.Addr(), "wake", 0, 60000) }()
	// The fetch is parked in purgatory before the marker goes out.
	waitUntil(t, 20*time.Second, "the fetch waits", func() bool {
		return purgatorySize(tb, "fetch") >= 1
	})
	require.Zero(t, f.marker(tb.ListenerAddr("BROKER"), "wake", 0, true, 0))
	select {
	case sp := <-done:
		require.Zero(t, sp.ErrorCode)
		require.Equal(t, int64(2), sp.LastStableOffset)
		require.NotEmpty(t, sp.RecordBatches)
		require.Less(t, time.Since(start), 50*time.Second, "woken by the LSO, not the max wait")
	case <-time.After(55 * time.Second):
		t.Fatal("the read_committed fetch was not woken by the commit")
	}
}

// purgatorySize reads the broker's purgatory gauge for operation.
func purgatorySize(tb *testBroker, operation string) float64 {
	var m dto.Metric
	if err := tb.metrics.purgatory.WithLabelValues(operation).Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

// TestTransactionStateSurvivesFailover: followers build the producer state and
// aborted transaction index from the replicated batches, so after the leader
// stops, the new leader answers read_committed fetches with the same aborted
// transactions and LSO, and ends the open transaction when its marker comes.
func TestTransactionStateSurvivesFailover(t *testing.T) {
	cluster := startTestCluster(t, 3, withoutTxnVerification)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, cluster[0].Addr()))
	_, err := adm.CreateTopic(ctx, 1, 3, nil, "rep")
	require.NoError(t, err)
	byID := func(id int32) *testBroker {
		for _, tb := range cluster {
			if tb.cfg.NodeID == id {
				return tb
			}
		}
		return nil
	}
	var leader *testBroker
	waitUntil(t, 30*time.Second, "rep-0 has a leader with a full ISR", func() bool {
		p, ok := cluster[0].quorum.Image().Partition("rep", 0)
		if !ok || p.Leader < 0 || len(p.ISR) != 3 {
			return false
		}
		leader = byID(p.Leader)
		lp := leader.partitionOf("rep", 0)
		return lp != nil && func() bool { _, _, l := lp.state(); return l }()
	})

	a := newTxnFake(t, leader, "rep")
	require.Zero(t, a.produce(true, "aborted").ErrorCode)
	abortFirst := int64(0)
	require.Zero(t, a.marker(leader.ListenerAddr("BROKER"), "rep", 0, false, 3))
	require.Zero(t, a.produce(true, "committed").ErrorCode)
	require.Zero(t, a.marker(leader.ListenerAddr("BROKER"), "rep", 0, true, 3))
	open := newTxnFake(t, leader, "rep")
	require.Zero(t, open.produce(true, "open").ErrorCode) // offset 4
	leo := leader.partitionOf("rep", 0).log.LogEndOffset()
	waitUntil(t, 30*time.Second, "followers caught up", func() bool {
		for _, tb := range cluster {
			if tb.partitionOf("rep", 0).log.LogEndOffset() != leo {
				return false
			}
		}
		return true
	})

	old := leader.cfg.NodeID
	leader.stop(t)
	var next *testBroker
	waitUntil(t, 60*time.Second, "a new leader", func() bool {
		for _, tb := range cluster {
			if tb.cfg.NodeID == old {
				continue
			}
			if p := tb.partitionOf("rep", 0); p != nil {
				if _, _, l := p.state(); l {
					next = tb
					return true
				}
			}
		}
		return false
	})
	sp := readCommittedFetch(t, next.Addr(), "rep", 0, 0)
	require.Zero(t, sp.ErrorCode)
	require.Equal(t, int64(4), sp.LastStableOffset, "the open transaction's first offset")
	require.Len(t, sp.AbortedTransactions, 1)
	require.Equal(t, a.pid, sp.AbortedTransactions[0].ProducerID)
	require.Equal(t, abortFirst, sp.AbortedTransactions[0].FirstOffset)

	require.Zero(t, open.marker(next.ListenerAddr("BROKER"), "rep", 0, true, 3))
	require.Equal(t, []string{"committed", "open"}, consumeValues(t, next.Addr(), "rep", kgo.ReadCommitted(), 2))
}

// bobACL is an ALLOW binding for User:bob from any host.
func bobACL(rt kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Binding {
	b := anon(rt, pt, name, op, perm)
	b.Principal = "User:bob"
	return b
}

// TestTransactionAPIsAuthorization: WriteTxnMarkers needs CLUSTER_ACTION on the
// cluster (and a broker-only listener), TxnOffsetCommit WRITE on the
// transactional id and READ on the group and topic, DescribeProducers READ on
// the topic; refusals change nothing. A producer forging a marker through
// Produce is refused too.
func TestTransactionAPIsAuthorization(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:broker"), withoutTxnVerification)
	createTopics(t, tb, "secured")
	grant(t, tb,
		bobACL(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "secured", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow),
		bobACL(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "secured", kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow),
		bobACL(kmsg.ACLResourceTypeCluster, kmsg.ACLResourcePatternTypeLiteral, "kafka-cluster", kmsg.ACLOperationIdempotentWrite, kmsg.ACLPermissionTypeAllow),
	)
	ctx := context.Background()
	bob := &conn{b: tb.Broker, ctx: ctx, principal: "User:bob", remote: "10.1.2.3:5000"}
	broker := &conn{b: tb.Broker, ctx: ctx, principal: "User:broker", remote: "127.0.0.1:1"}

	markers := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.Committed = 7, true
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "secured", []int32{0}
	m.Topics = append(m.Topics, mt)
	markers.Markers = append(markers.Markers, m)
	resp, err := tb.handleWriteTxnMarkers(bob, markers)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, resp.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode)
	require.Zero(t, tb.partitionOf("secured", 0).log.LogEndOffset(), "nothing written")
	resp, err = tb.handleWriteTxnMarkers(broker, markers)
	require.NoError(t, err)
	require.Zero(t, resp.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode)
	require.Equal(t, int64(1), tb.partitionOf("secured", 0).log.LogEndOffset())

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.Version, commit.TransactionalID, commit.Group, commit.ProducerID = 3, "tx", "g", 7
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = "secured"
	ct.Partitions = append(ct.Partitions, kmsg.NewTxnOffsetCommitRequestTopicPartition())
	commit.Topics = append(commit.Topics, ct)
	txnCode := func() int16 {
		req := *commit
		req.Topics = append([]kmsg.TxnOffsetCommitRequestTopic(nil), commit.Topics...)
		resp, err := tb.handleTxnOffsetCommit(bob, &req)
		require.NoError(t, err)
		return resp.(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, txnCode())
	grant(t, tb, bobACL(kmsg.ACLResourceTypeTransactionalId, kmsg.ACLResourcePatternTypeLiteral, "tx", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow))
	require.Equal(t, kerr.GroupAuthorizationFailed.Code, txnCode())
	grant(t, tb, bobACL(kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeLiteral, "g", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow))
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, txnCode())

	describe := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "secured", []int32{0}
	describe.Topics = append(describe.Topics, dt)
	dresp, err := tb.handleDescribeProducers(bob, describe)
	require.NoError(t, err)
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, dresp.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0].ErrorCode)
	dresp, err = tb.handleDescribeProducers(broker, describe)
	require.NoError(t, err)
	dp := dresp.(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
	require.Zero(t, dp.ErrorCode)
	require.Len(t, dp.ActiveProducers, 1)
	require.Equal(t, int64(7), dp.ActiveProducers[0].ProducerID)

	// A client cannot forge a commit marker through Produce.
	forged := kmsg.NewPtrProduceRequest()
	forged.Version, forged.Acks, forged.TimeoutMillis = 9, 1, 5000
	txnID := "tx"
	forged.TransactionID = &txnID
	ft := kmsg.NewProduceRequestTopic()
	ft.Topic = "secured"
	fp := kmsg.NewProduceRequestTopicPartition()
	fp.Records = record.BuildMarker(0, time.Now().UnixMilli(), record.Marker{ProducerID: 7, Commit: true})
	ft.Partitions = append(ft.Partitions, fp)
	forged.Topics = append(forged.Topics, ft)
	presp, err := tb.handleProduce(bob, forged)
	require.NoError(t, err)
	fpr := presp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	require.Equal(t, kerr.InvalidRecord.Code, fpr.ErrorCode, "%v", fpr.ErrorMessage)
	require.Equal(t, int64(1), tb.partitionOf("secured", 0).log.LogEndOffset(), "nothing written")
}
