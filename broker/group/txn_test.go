package group

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func txnCommitReq(group string, pid int64, gen int32, member string, offsets map[string]map[int32]int64) *kmsg.TxnOffsetCommitRequest {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version, req.TransactionalID, req.Group, req.ProducerID = 3, "tx", group, pid
	req.Generation, req.MemberID = gen, member
	for topic, ps := range offsets {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		for p, off := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, off
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func txnCommitCode(t *testing.T, c *Coordinator, req *kmsg.TxnOffsetCommitRequest) int16 {
	t.Helper()
	resp := c.TxnOffsetCommit(testCtx(t), req)
	require.Len(t, resp.Topics, 1)
	return resp.Topics[0].Partitions[0].ErrorCode
}

// stableFetch is OffsetFetch v7 with RequireStable of one partition.
func stableFetch(c *Coordinator, group, topic string, p int32) kmsg.OffsetFetchResponseTopicPartition {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.RequireStable = 7, group, true
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	return c.OffsetFetch(context.Background(), req).Topics[0].Partitions[0]
}

// TestTxnOffsetCommit: transactional offsets are pending until the marker
// (RequireStable sees UNSTABLE_OFFSET_COMMIT, a plain fetch the old offset),
// an abort drops them, a commit applies them, and replaying the store gives
// the same result, an open transaction staying pending.
func TestTxnOffsetCommit(t *testing.T) {
	store := newMemStore()
	c := startCoordinator(t, testConfig(), store)
	requireCommit(t, c, "eos", commitOpts{version: 8, gen: -1}, map[string]map[int32]int64{"in": {0: 5}}, 0)

	require.Zero(t, txnCommitCode(t, c, txnCommitReq("eos", 1, -1, "", map[string]map[int32]int64{"in": {0: 10}})))
	require.Equal(t, kerr.UnstableOffsetCommit.Code, stableFetch(c, "eos", "in", 0).ErrorCode)
	require.Equal(t, map[string]map[int32]int64{"in": {0: 5}}, c.CommittedOffsets("eos"), "not visible yet")
	c.CompleteTxnOffsets(c.PartitionFor("eos"), 1, false)
	require.Equal(t, int64(5), stableFetch(c, "eos", "in", 0).Offset, "aborted")

	require.Zero(t, txnCommitCode(t, c, txnCommitReq("eos", 1, -1, "", map[string]map[int32]int64{"in": {0: 20}})))
	c.CompleteTxnOffsets(c.PartitionFor("eos")+1, 1, true) // another partition's marker
	require.Equal(t, kerr.UnstableOffsetCommit.Code, stableFetch(c, "eos", "in", 0).ErrorCode)
	c.CompleteTxnOffsets(c.PartitionFor("eos"), 1, true)
	require.Equal(t, int64(20), stableFetch(c, "eos", "in", 0).Offset)

	// Replay: the store holds the records and the markers as the broker
	// writes them, plus a transaction still open.
	require.Zero(t, txnCommitCode(t, c, txnCommitReq("eos", 2, -1, "", map[string]map[int32]int64{"in": {1: 7}})))
	p := c.PartitionFor("eos")
	store.mu.Lock()
	// The markers the broker would have appended after each transaction.
	log := store.logs[p]
	var replay []Record
	txns := 0
	for _, r := range log {
		replay = append(replay, r)
		if r.Txn != nil && r.Txn.ProducerID == 1 {
			txns++
			replay = append(replay, Record{Txn: &TxnRecord{ProducerID: 1, Marker: true, Commit: txns == 2}})
		}
	}
	store.logs[p] = replay
	store.mu.Unlock()
	c2 := startCoordinator(t, testConfig(), store)
	require.Equal(t, int64(20), stableFetch(c2, "eos", "in", 0).Offset)
	require.Equal(t, kerr.UnstableOffsetCommit.Code, stableFetch(c2, "eos", "in", 1).ErrorCode, "producer 2 still open")
	c2.CompleteTxnOffsets(p, 2, true)
	require.Equal(t, int64(7), stableFetch(c2, "eos", "in", 1).Offset)
}

// TestTxnOffsetCommitChecksMembers: v3 carries member and generation, checked
// like Kafka's doTxnCommitOffsets; nothing is stored on refusal.
func TestTxnOffsetCommitChecksMembers(t *testing.T) {
	store := newMemStore()
	c := startCoordinator(t, testConfig(), store)
	before := len(store.logs[c.PartitionFor("grp")])
	require.Equal(t, kerr.UnknownMemberID.Code, txnCommitCode(t, c, txnCommitReq("grp", 1, 0, "ghost", map[string]map[int32]int64{"in": {0: 1}})))
	require.Equal(t, kerr.IllegalGeneration.Code, txnCommitCode(t, c, txnCommitReq("grp", 1, 3, "", map[string]map[int32]int64{"in": {0: 1}})))
	require.Len(t, store.logs[c.PartitionFor("grp")], before, "nothing stored")
	require.Zero(t, txnCommitCode(t, c, txnCommitReq("grp", 1, -1, "", map[string]map[int32]int64{"in": {0: 1}})))
}

// TestPlainCommitAfterTransactionalWins: a plain commit appended after a
// transactional one but before its commit marker is kept, as Kafka compares
// the records' log offsets.
func TestPlainCommitAfterTransactionalWins(t *testing.T) {
	c := startCoordinator(t, testConfig(), newMemStore())
	require.Zero(t, txnCommitCode(t, c, txnCommitReq("mix", 1, -1, "", map[string]map[int32]int64{"in": {0: 10, 1: 10}})))
	requireCommit(t, c, "mix", commitOpts{version: 8, gen: -1}, map[string]map[int32]int64{"in": {0: 30}}, 0)
	c.CompleteTxnOffsets(c.PartitionFor("mix"), 1, true)
	require.Equal(t, map[string]map[int32]int64{"in": {0: 30, 1: 10}}, c.CommittedOffsets("mix"))
}
