package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactional offset commits (KIP-98, KIP-447).
//
// TxnOffsetCommit writes the offsets as a transactional batch of the producer to
// the group's __consumer_offsets partition and keeps them pending, per producer, in
// the group. They become the group's committed offsets only when the transaction
// coordinator's commit marker reaches that partition (CompleteTxnOffsets, called by
// the partition leader after the marker is replicated, and the same on replay), and
// are dropped by an abort marker. OffsetFetch with RequireStable answers
// UNSTABLE_OFFSET_COMMIT for a partition with pending offsets, so a consumer of an
// exactly-once pipeline does not start from offsets that may still be rolled back.

// TxnOffsetCommit serves TxnOffsetCommit v0-v3. v3 carries the member id,
// generation and group.instance.id (KIP-447), checked as Kafka's
// doTxnCommitOffsets does: a member id the group does not know gets
// UNKNOWN_MEMBER_ID, a static member replaced by another FENCED_INSTANCE_ID,
// a generation (>= 0) other than the group's ILLEGAL_GENERATION; without a
// member id and generation the commit is accepted (v0-v2 and simple
// producers). A missing
// group is created. Producer epoch fencing is the log's: an older epoch than
// the producer's on the partition gets INVALID_PRODUCER_EPOCH.
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	var valid []*int16
	var reqParts []*kmsg.TxnOffsetCommitRequestTopicPartition
	var tps []topicPartition
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.TxnOffsetCommitResponseTopicPartition, len(t.Partitions))
		resp.Topics = append(resp.Topics, rt)
		rparts := resp.Topics[len(resp.Topics)-1].Partitions
		for j := range t.Partitions {
			p := &t.Partitions[j]
			rp := &rparts[j]
			rp.Default()
			rp.Partition = p.Partition
			switch {
			case !c.topicExists(t.Topic, p.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p.Metadata != nil && len(*p.Metadata) > c.cfg.OffsetMetadataMaxBytes:
				rp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				valid = append(valid, &rp.ErrorCode)
				reqParts = append(reqParts, p)
				tps = append(tps, topicPartition{t.Topic, p.Partition})
			}
		}
	}
	setAll := func(code int16) *kmsg.TxnOffsetCommitResponse {
		for _, ec := range valid {
			*ec = code
		}
		return resp
	}
	if len(valid) == 0 {
		return resp
	}
	g, code := c.lockGroup(req.Group, true)
	if code != 0 {
		return setAll(code)
	}
	if g == nil {
		return setAll(kerr.CoordinatorNotAvailable.Code)
	}
	defer g.mu.Unlock()
	gen, memberID, instanceID := int32(-1), "", ""
	if req.Version >= 3 {
		gen, memberID = req.Generation, req.MemberID
		if req.InstanceID != nil {
			instanceID = *req.InstanceID
		}
	}
	if code := g.validateTxnCommit(gen, memberID, instanceID); code != 0 {
		return setAll(code)
	}

	now := c.now()
	txn := &TxnRecord{ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch}
	commits := make([]offsetCommit, len(reqParts))
	recs := make([]Record, len(reqParts))
	for i, p := range reqParts {
		oc := offsetCommit{offset: p.Offset, leaderEpoch: -1, commitTime: now}
		if p.Metadata != nil {
			oc.metadata = *p.Metadata
		}
		if req.Version >= 2 {
			oc.leaderEpoch = p.LeaderEpoch
		}
		commits[i] = oc
		recs[i] = Record{Key: offsetKey(g.id, tps[i].topic, tps[i].partition), Value: offsetValue(oc), Txn: txn}
	}
	if err := c.store.Append(ctx, g.partition, recs); err != nil {
		g.logWarn("failed to store transactional offset commit", "producer_id", req.ProducerID, "err", err)
		return setAll(appendCode(err, true))
	}
	for i, tp := range tps {
		commits[i].order = c.commitOrder.Add(1)
		g.setPendingTxnOffset(req.ProducerID, tp, commits[i])
	}
	return resp
}

// validateTxnCommit is Kafka's check of a transactional commit's member and
// generation.
func (g *group) validateTxnCommit(gen int32, memberID, instanceID string) int16 {
	if memberID != "" && g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	if cur, ok := g.static[instanceID]; instanceID != "" && ok && cur != memberID {
		return kerr.FencedInstanceID.Code
	}
	if gen >= 0 && gen != g.generation {
		return kerr.IllegalGeneration.Code
	}
	return 0
}

func (g *group) setPendingTxnOffset(pid int64, tp topicPartition, oc offsetCommit) {
	if g.pendingTxn == nil {
		g.pendingTxn = make(map[int64]map[topicPartition]offsetCommit)
	}
	if g.pendingTxn[pid] == nil {
		g.pendingTxn[pid] = make(map[topicPartition]offsetCommit)
	}
	g.pendingTxn[pid][tp] = oc
}

// completeTxn applies (commit) or drops (abort) the producer's pending
// offsets; the caller holds g.mu.
func (g *group) completeTxn(pid int64, commit bool) {
	pending := g.pendingTxn[pid]
	if pending == nil {
		return
	}
	delete(g.pendingTxn, pid)
	if !commit {
		return
	}
	for tp, oc := range pending {
		// A plain commit appended after the transaction's wins, as in Kafka.
		if cur, ok := g.offsets[tp.topic][tp.partition]; !ok || cur.order < oc.order {
			g.setOffset(tp, oc)
		}
	}
}

// hasPendingTxnOffset reports whether a transaction holds an uncommitted
// offset for tp; the caller holds g.mu.
func (g *group) hasPendingTxnOffset(tp topicPartition) bool {
	for _, ps := range g.pendingTxn {
		if _, ok := ps[tp]; ok {
			return true
		}
	}
	return false
}

// txnCompletion is a transaction marker's effect on pending offsets.
type txnCompletion struct {
	pid    int64
	commit bool
}

// CompleteTxnOffsets ends producer pid's transaction for the groups of
// __consumer_offsets partition p: the partition leader calls it once the
// transaction marker written there is replicated. A commit makes the
// producer's pending offsets the groups' committed offsets; an abort drops
// them.
func (c *Coordinator) CompleteTxnOffsets(p int32, pid int64, commit bool) {
	c.mu.Lock()
	if e, ok := c.partitions[p]; ok && e.state == partitionLoading {
		// The replay may have read the log before this marker: apply it
		// again once the partition's groups are installed (a completion
		// of a producer without pending offsets changes nothing).
		if c.loadingTxns == nil {
			c.loadingTxns = make(map[int32][]txnCompletion)
		}
		c.loadingTxns[p] = append(c.loadingTxns[p], txnCompletion{pid: pid, commit: commit})
	}
	c.mu.Unlock()
	groups, _ := c.snapshotGroups()
	for _, g := range groups {
		if g.partition != p {
			continue
		}
		g.mu.Lock()
		g.completeTxn(pid, commit)
		g.mu.Unlock()
	}
}
