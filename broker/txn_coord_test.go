package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/txn"
)

// waitTxnCoordinator waits until FindCoordinator (key type 1) names a
// coordinator for id, and returns its node id.
func waitTxnCoordinator(t *testing.T, addr, id string) int32 {
	t.Helper()
	var node int32
	waitUntil(t, 60*time.Second, "a transaction coordinator for "+id, func() bool {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKeys = 4, 1, []string{id}
		resp := request[*kmsg.FindCoordinatorResponse](t, addr, req)
		c := resp.Coordinators[0]
		node = c.NodeID
		return c.ErrorCode == 0
	})
	return node
}

func initTxnProducer(t *testing.T, addr, id string, version int16, timeoutMs int32, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version, req.TransactionalID, req.TransactionTimeoutMillis = version, kmsg.StringPtr(id), timeoutMs
	req.ProducerID, req.ProducerEpoch = pid, epoch
	var resp *kmsg.InitProducerIDResponse
	waitUntil(t, 60*time.Second, "InitProducerId of "+id, func() bool {
		resp = request[*kmsg.InitProducerIDResponse](t, addr, req)
		return resp.ErrorCode != kerr.ConcurrentTransactions.Code && resp.ErrorCode != kerr.CoordinatorLoadInProgress.Code
	})
	return resp
}

func addPartitionsToTxn(t *testing.T, addr string, version int16, id string, pid int64, epoch int16, topic string, partitions ...int32) map[string]map[int32]int16 {
	t.Helper()
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = version, id, pid, epoch
	rt := kmsg.NewAddPartitionsToTxnRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	req.Topics = append(req.Topics, rt)
	resp := request[*kmsg.AddPartitionsToTxnResponse](t, addr, req)
	out := map[string]map[int32]int16{}
	for _, st := range resp.Topics {
		out[st.Topic] = map[int32]int16{}
		for _, sp := range st.Partitions {
			out[st.Topic][sp.Partition] = sp.ErrorCode
		}
	}
	return out
}

// TestTxnCoordinatorOverTheWire drives the coordinator with Kafka requests as
// clients send them, at the versions where their answers differ, and checks
// that its state survives a restart of the broker.
func TestTxnCoordinatorOverTheWire(t *testing.T) {
	dir := t.TempDir()
	tb := startTestBroker(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 2, 1, nil, "txn-wire")
	require.NoError(t, err)
	require.Equal(t, int32(1), waitTxnCoordinator(t, tb.Addr(), "wire"))

	resp := initTxnProducer(t, tb.Addr(), "wire", 4, 900001, -1, -1)
	require.Equal(t, kerr.InvalidTransactionTimeout.Code, resp.ErrorCode, "above transaction.max.timeout.ms")
	resp = initTxnProducer(t, tb.Addr(), "", 4, 60000, -1, -1)
	require.Equal(t, kerr.InvalidRequest.Code, resp.ErrorCode, "empty transactional id")
	resp = initTxnProducer(t, tb.Addr(), "wire", 4, 60000, 5, -1)
	require.Equal(t, kerr.InvalidRequest.Code, resp.ErrorCode, "producer id without epoch")

	first := initTxnProducer(t, tb.Addr(), "wire", 4, 60000, -1, -1)
	require.Zero(t, first.ErrorCode)
	require.Equal(t, int16(0), first.ProducerEpoch)
	// A second instance fences the first.
	second := initTxnProducer(t, tb.Addr(), "wire", 4, 60000, -1, -1)
	require.Zero(t, second.ErrorCode)
	require.Equal(t, first.ProducerID, second.ProducerID)
	require.Equal(t, int16(1), second.ProducerEpoch)

	// The fenced producer's error depends on the version.
	codes := addPartitionsToTxn(t, tb.Addr(), 1, "wire", first.ProducerID, first.ProducerEpoch, "txn-wire", 0)
	require.Equal(t, kerr.InvalidProducerEpoch.Code, codes["txn-wire"][0], "v1 predates PRODUCER_FENCED")
	codes = addPartitionsToTxn(t, tb.Addr(), 3, "wire", first.ProducerID, first.ProducerEpoch, "txn-wire", 0)
	require.Equal(t, kerr.ProducerFenced.Code, codes["txn-wire"][0])
	fenced := initTxnProducer(t, tb.Addr(), "wire", 3, 60000, first.ProducerID, first.ProducerEpoch)
	require.Equal(t, kerr.InvalidProducerEpoch.Code, fenced.ErrorCode, "InitProducerId v3 predates PRODUCER_FENCED")
	fenced = initTxnProducer(t, tb.Addr(), "wire", 4, 60000, first.ProducerID, first.ProducerEpoch)
	require.Equal(t, kerr.ProducerFenced.Code, fenced.ErrorCode)

	// No partitions, or bad ones: nothing is added, no transaction starts.
	require.Empty(t, addPartitionsToTxn(t, tb.Addr(), 3, "wire", second.ProducerID, second.ProducerEpoch, "txn-wire"))
	codes = addPartitionsToTxn(t, tb.Addr(), 3, "wire", second.ProducerID, second.ProducerEpoch, "txn-wire", 0, 7)
	require.Equal(t, map[int32]int16{0: kerr.OperationNotAttempted.Code, 7: kerr.UnknownTopicOrPartition.Code}, codes["txn-wire"])
	codes = addPartitionsToTxn(t, tb.Addr(), 3, "wire", second.ProducerID, second.ProducerEpoch, txnTopic, 0)
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, codes[txnTopic][0], "internal topics are not a client's to write")
	desc, err := adm.DescribeTransactions(ctx, "wire")
	require.NoError(t, err)
	require.Equal(t, "Empty", desc["wire"].State)

	codes = addPartitionsToTxn(t, tb.Addr(), 3, "wire", second.ProducerID, second.ProducerEpoch, "txn-wire", 0, 1)
	require.Equal(t, map[int32]int16{0: 0, 1: 0}, codes["txn-wire"])

	// The broker-to-broker form (v4+) is not served on a client listener.
	v4 := kmsg.NewPtrAddPartitionsToTxnRequest()
	v4.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = "wire", second.ProducerID, second.ProducerEpoch, true
	v4.Transactions = append(v4.Transactions, tx)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, request[*kmsg.AddPartitionsToTxnResponse](t, tb.Addr(), v4).ErrorCode)

	desc, err = adm.DescribeTransactions(ctx, "wire")
	require.NoError(t, err)
	d := desc["wire"]
	require.Equal(t, "Ongoing", d.State)
	require.Equal(t, second.ProducerID, d.ProducerID)
	require.Equal(t, int32(60000), d.TimeoutMillis)
	require.Len(t, d.Topics["txn-wire"], 2)
	listed, err := adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	require.NoError(t, err)
	require.Contains(t, listed, "wire")
	listed, err = adm.ListTransactions(ctx, nil, []string{"CompleteCommit"})
	require.NoError(t, err)
	require.NotContains(t, listed, "wire")

	// The state is in __transaction_state: it survives a restart, also one with
	// another transaction.state.log.num.partitions (ids keep hashing over the
	// topic's 4 partitions, as in Kafka).
	tb.stop(t)
	tb = startTestBroker(t, dir, func(c *Config) { c.TransactionStateLogNumPartitions = 7 })
	adm = kadm.NewClient(newClient(t, tb.Addr()))
	waitTxnCoordinator(t, tb.Addr(), "wire")
	waitUntil(t, 60*time.Second, "the transaction loaded after the restart", func() bool {
		desc, err := adm.DescribeTransactions(ctx, "wire")
		return err == nil && desc["wire"].State == "Ongoing" && desc["wire"].ProducerEpoch == second.ProducerEpoch &&
			len(desc["wire"].Topics["txn-wire"]) == 2
	})
	codes = addPartitionsToTxn(t, tb.Addr(), 3, "wire", first.ProducerID, first.ProducerEpoch, "txn-wire", 0)
	require.Equal(t, kerr.ProducerFenced.Code, codes["txn-wire"][0], "still fenced after the restart")
}

// TestTxnAuthorization: with ACLs, the anonymous principal may use the
// transactional id "mine" (WRITE, which implies DESCRIBE) and write topic
// "allowed" only; everything else is refused with Kafka's codes, and listings
// leave out what it may not describe.
func TestTxnAuthorization(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:admin"))
	createTopics(t, tb, "allowed", "secret")
	lit := kmsg.ACLResourcePatternTypeLiteral
	allow := kmsg.ACLPermissionTypeAllow
	grant(t, tb,
		anon(kmsg.ACLResourceTypeTransactionalId, lit, "mine", kmsg.ACLOperationWrite, allow),
		anon(kmsg.ACLResourceTypeTopic, lit, "allowed", kmsg.ACLOperationWrite, allow),
		anon(kmsg.ACLResourceTypeTopic, lit, "allowed", kmsg.ACLOperationDescribe, allow),
	)
	// "theirs" gets a transaction through the broker itself, as its owner would.
	var theirs txn.ProducerIDAndEpoch
	waitUntil(t, 60*time.Second, "a producer id for theirs", func() bool {
		var code int16
		theirs, code = tb.txns.InitProducerID(context.Background(), "theirs", time.Minute, nil)
		return code == 0
	})

	waitTxnCoordinator(t, tb.Addr(), "mine")
	find := kmsg.NewPtrFindCoordinatorRequest()
	find.Version, find.CoordinatorType, find.CoordinatorKeys = 4, 1, []string{"theirs"}
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code,
		request[*kmsg.FindCoordinatorResponse](t, tb.Addr(), find).Coordinators[0].ErrorCode)

	denied := initTxnProducer(t, tb.Addr(), "theirs", 4, 60000, -1, -1)
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, denied.ErrorCode)
	mine := initTxnProducer(t, tb.Addr(), "mine", 4, 60000, -1, -1)
	require.Zero(t, mine.ErrorCode)

	codes := addPartitionsToTxn(t, tb.Addr(), 3, "theirs", theirs.ProducerID, theirs.Epoch, "allowed", 0)
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, codes["allowed"][0])
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = 3, "mine", mine.ProducerID, mine.ProducerEpoch
	for _, topic := range []string{"allowed", "secret"} {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, []int32{0}
		req.Topics = append(req.Topics, rt)
	}
	resp := request[*kmsg.AddPartitionsToTxnResponse](t, tb.Addr(), req)
	got := map[string]int16{}
	for _, st := range resp.Topics {
		got[st.Topic] = st.Partitions[0].ErrorCode
	}
	require.Equal(t, map[string]int16{"allowed": kerr.OperationNotAttempted.Code, "secret": kerr.TopicAuthorizationFailed.Code}, got)

	offsets := kmsg.NewPtrAddOffsetsToTxnRequest()
	offsets.Version, offsets.TransactionalID, offsets.ProducerID, offsets.ProducerEpoch, offsets.Group = 3, "mine", mine.ProducerID, mine.ProducerEpoch, "g"
	require.Equal(t, kerr.GroupAuthorizationFailed.Code, request[*kmsg.AddOffsetsToTxnResponse](t, tb.Addr(), offsets).ErrorCode)
	end := kmsg.NewPtrEndTxnRequest()
	end.Version, end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = 3, "theirs", theirs.ProducerID, theirs.Epoch, true
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, request[*kmsg.EndTxnResponse](t, tb.Addr(), end).ErrorCode)

	describe := kmsg.NewPtrDescribeTransactionsRequest()
	describe.TransactionalIDs = []string{"mine", "theirs"}
	states := request[*kmsg.DescribeTransactionsResponse](t, tb.Addr(), describe).TransactionStates
	require.Len(t, states, 2)
	require.Zero(t, states[0].ErrorCode)
	require.Equal(t, "Empty", states[0].State)
	require.Equal(t, kerr.TransactionalIDAuthorizationFailed.Code, states[1].ErrorCode)
	list := request[*kmsg.ListTransactionsResponse](t, tb.Addr(), kmsg.NewPtrListTransactionsRequest())
	require.Zero(t, list.ErrorCode)
	require.Len(t, list.TransactionStates, 1)
	require.Equal(t, "mine", list.TransactionStates[0].TransactionalID)
}
