package group

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type topicPartition struct {
	topic     string
	partition int32
}

// OffsetCommit serves OffsetCommit v0-v9. The commit is durable in the Store
// before the response is returned.
//
// v0 carries no generation and is treated as a simple commit (generation -1,
// no member id); v1 may carry a commit timestamp per partition; v2-v4 may
// carry a retention time, which gives the offsets their own expiry as in
// Kafka before KIP-211; v6+ carries leader epochs; v7+ carries
// group.instance.id. Generation -1 with no member id commits for a group
// without members (an admin tool or a consumer without group management),
// creating the group if needed; a group with members only accepts commits
// from its members in the current generation.
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	gen, memberID, instanceID := req.Generation, req.MemberID, ""
	if req.Version == 0 {
		gen, memberID = -1, ""
	}
	if req.Version >= 7 && req.InstanceID != nil {
		instanceID = *req.InstanceID
	}

	// Per-partition validation first, as Kafka's request layer does; the
	// remaining partitions get the group's verdict.
	var valid []*int16
	var reqParts []*kmsg.OffsetCommitRequestTopicPartition
	var tps []topicPartition
	for i := range req.Topics {
		t := &req.Topics[i]
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(t.Partitions))
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
	setAll := func(code int16) *kmsg.OffsetCommitResponse {
		for _, ec := range valid {
			*ec = code
		}
		return resp
	}
	if len(valid) == 0 {
		return resp
	}

	g, code := c.lockGroup(req.Group, gen < 0)
	if code != 0 {
		return setAll(code)
	}
	if g == nil {
		// Not a simple commit, so it comes from an old generation.
		return setAll(kerr.IllegalGeneration.Code)
	}
	defer g.mu.Unlock()
	if code := g.validateCommit(gen, memberID, instanceID); code != 0 {
		return setAll(code)
	}
	switch g.state {
	case stateCompletingRebalance:
		// The member has its new generation but not yet its assignment.
		return setAll(kerr.RebalanceInProgress.Code)
	case stateStable, statePreparingRebalance:
		// Still allowed while preparing: the heartbeat tells the member to rejoin.
		if m := g.members[memberID]; m != nil {
			g.heartbeat(m)
		}
	}

	if len(g.staleTopics) > 0 && gen >= 0 {
		// Positions of a deleted topic, held by members of a generation
		// from before the deletion, are not offsets of a topic created
		// again under the name: refused until the group rejoins.
		keep := 0
		for i, tp := range tps {
			if staleGen, ok := g.staleTopics[tp.topic]; ok && gen <= staleGen {
				*valid[i] = kerr.RebalanceInProgress.Code
				continue
			}
			valid[keep], reqParts[keep], tps[keep] = valid[i], reqParts[i], tps[i]
			keep++
		}
		valid, reqParts, tps = valid[:keep], reqParts[:keep], tps[:keep]
		if keep == 0 {
			return resp
		}
	}
	now := c.now()
	commits := make([]offsetCommit, len(reqParts))
	recs := make([]Record, len(reqParts))
	for i, p := range reqParts {
		oc := offsetCommit{offset: p.Offset, leaderEpoch: -1, commitTime: now}
		if p.Metadata != nil {
			oc.metadata = *p.Metadata
		}
		if req.Version >= 6 {
			oc.leaderEpoch = p.LeaderEpoch
		}
		if req.Version == 1 && p.Timestamp != -1 {
			oc.commitTime = time.UnixMilli(p.Timestamp)
		}
		if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis != -1 {
			oc.expireTime = now.Add(time.Duration(req.RetentionTimeMillis) * time.Millisecond)
		}
		commits[i] = oc
		recs[i] = Record{Key: offsetKey(g.id, tps[i].topic, tps[i].partition), Value: offsetValue(oc)}
	}
	if err := c.store.Append(ctx, g.partition, recs); err != nil {
		g.logWarn("failed to store offset commit", "err", err)
		return setAll(appendCode(err, true))
	}
	for i, tp := range tps {
		commits[i].order = c.commitOrder.Add(1)
		g.setOffset(tp, commits[i])
	}
	return resp
}

// validateCommit is Kafka's validateOffsetCommit for non-transactional commits.
func (g *group) validateCommit(gen int32, memberID, instanceID string) int16 {
	if gen >= 0 || memberID != "" || instanceID != "" {
		if code := g.fencedCode(memberID, instanceID); code != 0 {
			return code
		}
		if gen != g.generation {
			return kerr.IllegalGeneration.Code
		}
		return 0
	}
	if g.state != stateEmpty {
		// Once a group has members, only they may commit.
		return kerr.UnknownMemberID.Code
	}
	return 0
}

func (g *group) setOffset(tp topicPartition, oc offsetCommit) {
	ps := g.offsets[tp.topic]
	if ps == nil {
		ps = make(map[int32]offsetCommit)
		g.offsets[tp.topic] = ps
	}
	ps[tp.partition] = oc
}

func (g *group) deleteOffset(tp topicPartition) {
	if ps := g.offsets[tp.topic]; ps != nil {
		delete(ps, tp.partition)
		if len(ps) == 0 {
			delete(g.offsets, tp.topic)
		}
	}
}

// OffsetFetch serves OffsetFetch v0-v9. Partitions without a commit answer
// offset -1. A nil topic list (v2+) returns every committed offset of the
// group. v0-v1 report group-level errors on every requested partition, v2-v7
// at the top level, and v8+ per group of the multi-group form. With
// RequireStable (v7+, KIP-447) a partition with a transactional commit still
// pending answers UNSTABLE_OFFSET_COMMIT (offset -1), so the consumer retries
// once the transaction ends.
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group = rg.Group
			var want map[string][]int32
			if rg.Topics != nil {
				want = make(map[string][]int32, len(rg.Topics))
				for _, t := range rg.Topics {
					want[t.Topic] = append(want[t.Topic], t.Partitions...)
				}
			}
			topics, code := c.fetchOffsets(rg.Group, rg.Topics != nil, topicsInOrder(rg.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) string { return t.Topic }), want, req.RequireStable)
			sg.ErrorCode = code
			for _, t := range topics {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}
	listed := req.Version < 2 || req.Topics != nil
	want := make(map[string][]int32, len(req.Topics))
	for _, t := range req.Topics {
		want[t.Topic] = append(want[t.Topic], t.Partitions...)
	}
	order := topicsInOrder(req.Topics, func(t kmsg.OffsetFetchRequestTopic) string { return t.Topic })
	topics, code := c.fetchOffsets(req.Group, listed, order, want, req.Version >= 7 && req.RequireStable)
	if code != 0 {
		if req.Version >= 2 {
			resp.ErrorCode = code
			return resp
		}
		// v0-v1 have no top-level error: repeat it on every partition.
		topics = topics[:0]
		for _, name := range order {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = name
			for _, p := range want[name] {
				rt.Partitions = append(rt.Partitions, missingOffset(p, code))
			}
			topics = append(topics, rt)
		}
	}
	resp.Topics = topics
	return resp
}

func topicsInOrder[T any](ts []T, name func(T) string) []string {
	var out []string
	for _, t := range ts {
		if n := name(t); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func missingOffset(p int32, code int16) kmsg.OffsetFetchResponseTopicPartition {
	rp := kmsg.NewOffsetFetchResponseTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = p, -1, -1
	rp.Metadata = kmsg.StringPtr("")
	rp.ErrorCode = code
	return rp
}

// fetchOffsets answers the requested partitions of group (all committed ones
// when listed is false), or a group-level error code. requireStable reports
// partitions with pending transactional offsets as UNSTABLE_OFFSET_COMMIT.
func (c *Coordinator) fetchOffsets(name string, listed bool, order []string, want map[string][]int32, requireStable bool) ([]kmsg.OffsetFetchResponseTopic, int16) {
	g, code := c.lockGroup(name, false)
	if code != 0 {
		return nil, code
	}
	var offsets map[string]map[int32]offsetCommit
	if g != nil {
		defer g.mu.Unlock()
		offsets = g.offsets
	}
	var out []kmsg.OffsetFetchResponseTopic
	answer := func(topic string, p int32) kmsg.OffsetFetchResponseTopicPartition {
		if requireStable && g != nil && g.hasPendingTxnOffset(topicPartition{topic, p}) {
			return missingOffset(p, kerr.UnstableOffsetCommit.Code)
		}
		oc, ok := offsets[topic][p]
		if !ok {
			return missingOffset(p, 0)
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = p, oc.offset, oc.leaderEpoch
		rp.Metadata = kmsg.StringPtr(oc.metadata)
		return rp
	}
	if listed {
		for _, topic := range order {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = topic
			for _, p := range want[topic] {
				rt.Partitions = append(rt.Partitions, answer(topic, p))
			}
			out = append(out, rt)
		}
		return out, 0
	}
	topics := make([]string, 0, len(offsets))
	for t := range offsets {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, topic := range topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = topic
		ps := make([]int32, 0, len(offsets[topic]))
		for p := range offsets[topic] {
			ps = append(ps, p)
		}
		slices.Sort(ps)
		for _, p := range ps {
			rt.Partitions = append(rt.Partitions, answer(topic, p))
		}
		out = append(out, rt)
	}
	return out, 0
}

// OffsetDelete serves OffsetDelete v0: it deletes committed offsets of an
// empty group, or of topics that no member of a consumer group subscribes to
// (GROUP_SUBSCRIBED_TO_TOPIC otherwise), writing tombstones to the Store. A
// group left empty without offsets is deleted, as in Kafka.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g, code := c.lockGroup(req.Group, false)
	if code == 0 && g == nil {
		code = kerr.GroupIDNotFound.Code
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	var del []topicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.OffsetDeleteResponseTopicPartition, len(t.Partitions))
		for j, p := range t.Partitions {
			rt.Partitions[j].Partition = p.Partition
		}
		resp.Topics = append(resp.Topics, rt)
	}
	switch {
	case g.state == stateEmpty:
	case g.protocolType == "consumer":
	default:
		g.mu.Unlock()
		resp.Topics = nil
		resp.ErrorCode = kerr.NonEmptyGroup.Code
		return resp
	}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			switch {
			case !c.topicExists(rt.Topic, rp.Partition):
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case g.state != stateEmpty && g.subscribed[rt.Topic]:
				rp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				del = append(del, topicPartition{rt.Topic, rp.Partition})
			}
		}
	}
	err := g.deleteOffsets(ctx, del)
	dead := g.state == stateDead
	g.mu.Unlock()
	if dead {
		c.forget(g)
	}
	if err != nil {
		resp.ErrorCode = appendCode(err, true)
		resp.Topics = nil
		return resp
	}
	return resp
}

// deleteOffsets tombstones the committed offsets tps (ignoring those never
// committed) and, when that leaves an empty group without offsets, the group
// itself, which becomes Dead: Kafka's cleanupGroupMetadata. The caller
// removes a dead group from the map after unlocking it.
func (g *group) deleteOffsets(ctx context.Context, tps []topicPartition) error {
	var recs []Record
	var gone []topicPartition
	for _, tp := range tps {
		if _, ok := g.offsets[tp.topic][tp.partition]; ok {
			recs = append(recs, Record{Key: offsetKey(g.id, tp.topic, tp.partition)})
			gone = append(gone, tp)
		}
	}
	remaining := 0
	for _, ps := range g.offsets {
		remaining += len(ps)
	}
	dies := g.state == stateEmpty && remaining == len(gone) && len(g.pendingTxn) == 0
	if dies && g.generation > 0 {
		// Groups that only ever stored offsets never wrote metadata.
		recs = append(recs, Record{Key: groupKey(g.id)})
	}
	if len(recs) > 0 {
		if err := g.c.store.Append(ctx, g.partition, recs); err != nil {
			g.logWarn("failed to store offset tombstones", "err", err)
			return err
		}
	}
	for _, tp := range gone {
		g.deleteOffset(tp)
	}
	if dies {
		g.transition(stateDead)
		g.logInfo("group removed", "reason", "empty without offsets")
	}
	return nil
}

// expiredOffsets lists the offsets Kafka's removeExpiredOffsets would drop
// at now: all old ones of an empty group (counted from when it became empty,
// if known), or old ones of topics a stable consumer group no longer
// subscribes to. Offsets committed with their own retention (v1-v4) expire
// at their own time.
func (g *group) expiredOffsets(now time.Time) []topicPartition {
	retention := g.c.cfg.OffsetsRetention
	var base func(oc offsetCommit) time.Time
	var skip map[string]bool
	switch {
	case g.state == stateEmpty:
		base = func(oc offsetCommit) time.Time {
			if g.stateTime.IsZero() {
				return oc.commitTime
			}
			return g.stateTime
		}
	case g.state == stateStable && g.protocolType == "consumer" && g.subscribed != nil:
		base = func(oc offsetCommit) time.Time { return oc.commitTime }
		skip = g.subscribed
	default:
		return nil
	}
	var out []topicPartition
	for topic, ps := range g.offsets {
		if skip[topic] {
			continue
		}
		for p, oc := range ps {
			expired := now.Sub(base(oc)) >= retention
			if !oc.expireTime.IsZero() {
				expired = !now.Before(oc.expireTime)
			}
			if expired {
				out = append(out, topicPartition{topic, p})
			}
		}
	}
	slices.SortFunc(out, func(a, b topicPartition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return out
}

// expireOffsets is the periodic offset cleanup run by Run.
func (c *Coordinator) expireOffsets(ctx context.Context) {
	groups, _ := c.snapshotGroups()
	now := c.now()
	for _, g := range groups {
		g.mu.Lock()
		if g.state == stateDead {
			g.mu.Unlock()
			continue
		}
		expired := g.expiredOffsets(now)
		if len(expired) > 0 || (g.state == stateEmpty && len(g.offsets) == 0) {
			if err := g.deleteOffsets(ctx, expired); err == nil && len(expired) > 0 {
				g.logInfo("expired offsets", "partitions", len(expired))
			}
		}
		dead := g.state == stateDead
		g.mu.Unlock()
		if dead {
			c.forget(g)
		}
	}
}
