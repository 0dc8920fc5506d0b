package group

import (
	"bytes"
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup serves JoinGroup v0-v9 and blocks until the rebalance it joins
// completes, the member is rejected, or ctx is done (then it answers
// COORDINATOR_NOT_AVAILABLE; the member keeps its place until the rebalance
// times out, as with a dropped connection in Kafka).
//
// v0 has no rebalance timeout, so the session timeout is used; v4+ first
// joins without a member id get MEMBER_ID_REQUIRED and a member id to join
// with (KIP-394); v5+ carries group.instance.id for static membership
// (KIP-345); v7+ answers the protocol type and a nullable protocol name; v8+
// carries a reason, which is logged; v9 answers SkipAssignment to a static
// leader that rejoins a stable group (KIP-814).
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	fail := func(code int16) *kmsg.JoinGroupResponse {
		resp.ErrorCode, resp.MemberID, resp.Generation = code, req.MemberID, -1
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	session := millis(req.SessionTimeoutMillis)
	rebalance := millis(req.RebalanceTimeoutMillis)
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	var instanceID string
	if req.Version >= 5 && req.InstanceID != nil {
		instanceID = *req.InstanceID
	}
	protocols := make([]protocol, 0, len(req.Protocols))
	for _, p := range req.Protocols {
		// Copied: a decoded request may alias the connection's read buffer.
		protocols = append(protocols, protocol{name: p.Name, metadata: bytes.Clone(p.Metadata)})
	}
	if req.Reason != nil && *req.Reason != "" {
		c.logger.Debug("join group", "group", req.Group, "member", req.MemberID, "reason", *req.Reason)
	}

	g, code := c.lockGroup(req.Group, req.MemberID == "")
	if code != 0 {
		return fail(code)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	ci := clientFrom(ctx)
	j := &joinRequest{
		version:      req.Version,
		memberID:     req.MemberID,
		instanceID:   instanceID,
		clientID:     ci.id,
		clientHost:   ci.host,
		session:      session,
		rebalance:    rebalance,
		protocolType: req.ProtocolType,
		protocols:    protocols,
	}
	ch, res := g.join(ctx, j)
	g.mu.Unlock()
	if ch != nil {
		select {
		case res = <-ch:
		case <-ctx.Done():
			return fail(kerr.CoordinatorNotAvailable.Code)
		}
	}
	resp.ErrorCode = res.code
	resp.MemberID = res.memberID
	resp.Generation = res.generation
	resp.LeaderID = res.leader
	resp.SkipAssignment = res.skipAssignment
	resp.Members = res.members
	if res.code != 0 {
		resp.Generation = -1
	}
	if res.protocolType != "" && res.code == 0 {
		resp.ProtocolType = kmsg.StringPtr(res.protocolType)
	}
	if res.protocol != "" {
		resp.Protocol = kmsg.StringPtr(res.protocol)
	}
	return resp
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

type joinRequest struct {
	version      int16
	memberID     string
	instanceID   string
	clientID     string
	clientHost   string
	session      time.Duration
	rebalance    time.Duration
	protocolType string
	protocols    []protocol
}

// join is Kafka's handleJoinGroup under the group lock. It either answers at
// once or returns the channel the answer will arrive on.
func (g *group) join(ctx context.Context, j *joinRequest) (chan joinResult, joinResult) {
	if !g.acceptJoiningMember(j.memberID) {
		if m := g.members[j.memberID]; m != nil {
			g.remove(m)
		}
		if g.state == statePreparingRebalance {
			g.tryCompleteJoin(ctx)
		}
		return nil, joinResult{code: kerr.GroupMaxSizeReached.Code, generation: -1}
	}
	var ch chan joinResult
	var res joinResult
	if j.memberID == "" {
		ch, res = g.joinNew(ctx, j)
	} else {
		ch, res = g.joinExisting(ctx, j)
	}
	if g.state == statePreparingRebalance {
		g.tryCompleteJoin(ctx)
	}
	return ch, res
}

// acceptJoiningMember enforces group.max.size like Kafka: while preparing a
// rebalance only members that already rejoined count, so the last members to
// rejoin are the ones turned away.
func (g *group) acceptJoiningMember(memberID string) bool {
	limit := g.c.cfg.MaxGroupSize
	if limit <= 0 {
		return true
	}
	switch g.state {
	case stateEmpty, stateDead:
		return true
	case statePreparingRebalance:
		if m := g.members[memberID]; m != nil && m.join != nil {
			return true
		}
		n := 0
		for _, m := range g.members {
			if m.join != nil {
				n++
			}
		}
		return n < limit
	default:
		return g.members[memberID] != nil || len(g.members) < limit
	}
}

func (g *group) joinNew(ctx context.Context, j *joinRequest) (chan joinResult, joinResult) {
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		return nil, joinResult{code: kerr.InconsistentGroupProtocol.Code, generation: -1}
	}
	prefix := j.clientID
	if j.instanceID != "" {
		prefix = j.instanceID
	}
	id := newMemberID(prefix)
	if j.instanceID != "" {
		if old, ok := g.static[j.instanceID]; ok && g.members[old] != nil {
			return g.replaceStatic(ctx, j, g.members[old], id)
		}
		return g.addMemberAndRebalance(ctx, j, id)
	}
	if j.version >= 4 {
		at := g.c.now().Add(j.session)
		g.pending[id] = at
		g.arm(at)
		return nil, joinResult{code: kerr.MemberIDRequired.Code, memberID: id, generation: -1}
	}
	return g.addMemberAndRebalance(ctx, j, id)
}

func (g *group) joinExisting(ctx context.Context, j *joinRequest) (chan joinResult, joinResult) {
	fail := func(code int16) (chan joinResult, joinResult) {
		return nil, joinResult{code: code, memberID: j.memberID, generation: -1}
	}
	if !g.supportsProtocols(j.protocolType, j.protocols) {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	if _, ok := g.pending[j.memberID]; ok {
		return g.addMemberAndRebalance(ctx, j, j.memberID)
	}
	if j.instanceID != "" {
		if cur, ok := g.static[j.instanceID]; ok && cur != j.memberID {
			return fail(kerr.FencedInstanceID.Code)
		} else if !ok {
			return fail(kerr.UnknownMemberID.Code)
		}
	}
	m := g.members[j.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	switch g.state {
	case statePreparingRebalance:
		return g.updateMemberAndRebalance(ctx, m, j)
	case stateCompletingRebalance:
		if m.matches(j.protocols) {
			// A retry of a join whose answer was lost: answer it again.
			return nil, g.joinResultFor(m.id)
		}
		return g.updateMemberAndRebalance(ctx, m, j)
	case stateStable:
		if m.id == g.leader || !m.matches(j.protocols) {
			// A leader's join forces a rebalance so that it can react to
			// changes that do not show in metadata, such as new partitions.
			return g.updateMemberAndRebalance(ctx, m, j)
		}
		r := g.joinResultFor(m.id)
		r.members = nil
		return nil, r
	default:
		return fail(kerr.UnknownMemberID.Code)
	}
}

func (g *group) addMemberAndRebalance(ctx context.Context, j *joinRequest, id string) (chan joinResult, joinResult) {
	m := &member{
		id:           id,
		instanceID:   j.instanceID,
		clientID:     j.clientID,
		clientHost:   j.clientHost,
		protocolType: j.protocolType,
		protocols:    j.protocols,
		session:      j.session,
		rebalance:    j.rebalance,
		isNew:        true,
		join:         make(chan joinResult, 1),
	}
	if g.state == statePreparingRebalance && g.generation == 0 {
		g.newMemberAdded = true
	}
	g.addMember(m)
	m.deadline = g.c.now().Add(newMemberJoinTimeout)
	g.arm(m.deadline)
	g.logInfo("member joining", "member", id, "instance", j.instanceID, "client", j.clientID)
	ch := m.join
	g.maybePrepareRebalance(ctx, "new member "+id+" joined")
	return ch, joinResult{}
}

func (g *group) updateMemberAndRebalance(ctx context.Context, m *member, j *joinRequest) (chan joinResult, joinResult) {
	g.updateMember(m, j)
	ch := m.join
	g.maybePrepareRebalance(ctx, "member "+m.id+" rejoined")
	return ch, joinResult{}
}

func (g *group) updateMember(m *member, j *joinRequest) {
	// A second JoinGroup from the same member supersedes the first, most
	// likely abandoned by a client that timed out; answer it so that it
	// never hangs.
	m.replyJoin(joinResult{code: kerr.RebalanceInProgress.Code, memberID: m.id, generation: -1})
	m.protocols = j.protocols
	m.session = j.session
	m.rebalance = j.rebalance
	m.join = make(chan joinResult, 1)
}

// replaceStatic handles a static member that joins again without its member
// id (it restarted): the instance keeps its place under a new member id. A
// stable group does not rebalance when the member's protocols are unchanged;
// Kafka's criterion is only "the selected protocol stays the same", but a
// changed subscription must reach the leader, so any change rebalances here.
func (g *group) replaceStatic(ctx context.Context, j *joinRequest, old *member, newID string) (chan joinResult, joinResult) {
	oldID := old.id
	oldLeader := g.leader
	unchanged := old.matches(j.protocols)
	old.replyJoin(joinResult{code: kerr.FencedInstanceID.Code, memberID: oldID, generation: -1})
	old.replySync(syncResult{code: kerr.FencedInstanceID.Code})

	g.rekey(old, newID)
	old.clientID, old.clientHost = j.clientID, j.clientHost
	old.session, old.rebalance = j.session, j.rebalance
	g.heartbeat(old)

	switch g.state {
	case stateStable:
		if unchanged {
			if err := g.storeMetadata(ctx); err != nil {
				g.rekey(old, oldID)
				g.leader = oldLeader
				return nil, joinResult{code: appendCode(err, false), generation: -1}
			}
			g.logInfo("static member replaced without rebalance", "instance", j.instanceID, "old", oldID, "member", newID)
			r := g.joinResultFor(newID)
			r.members = nil
			if g.leader == newID {
				if j.version >= 9 {
					r.skipAssignment = true
					r.members = g.memberList()
				} else {
					// Older clients would assign again and have the result
					// ignored by a stable group; name the old id as leader so
					// they follow instead, as Kafka does.
					r.leader = oldID
				}
			}
			return nil, r
		}
		g.updateMember(old, j)
		ch := old.join
		g.prepareRebalance(ctx, "static member "+j.instanceID+" rejoined with new protocols")
		return ch, joinResult{}
	case stateCompletingRebalance:
		g.updateMember(old, j)
		ch := old.join
		g.prepareRebalance(ctx, "static member "+j.instanceID+" rejoined during a rebalance")
		return ch, joinResult{}
	default: // PreparingRebalance: the pending join simply counts for the new id.
		g.updateMember(old, j)
		return old.join, joinResult{}
	}
}

// rekey moves m to a new member id, keeping its place, leadership and
// pending sync.
func (g *group) rekey(m *member, id string) {
	oldID := m.id
	delete(g.members, oldID)
	m.id = id
	g.members[id] = m
	if m.static() {
		g.static[m.instanceID] = id
	}
	if g.leader == oldID {
		g.leader = id
	}
	if _, ok := g.pendingSync[oldID]; ok {
		delete(g.pendingSync, oldID)
		g.pendingSync[id] = struct{}{}
	}
}

// SyncGroup serves SyncGroup v0-v5. A follower's call blocks until the
// leader's SyncGroup has stored the assignment (or ctx is done); the leader's
// call stores the group metadata with the assignment through the Store before
// anyone is answered. v3+ carries group.instance.id; v5+ carries the protocol
// type and name, which must match the group's, and echoes them back.
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, code := c.lockGroup(req.Group, false)
	if code == 0 && g == nil {
		code = kerr.UnknownMemberID.Code
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	ch, res := g.syncGroup(ctx, req)
	g.mu.Unlock()
	if ch != nil {
		select {
		case res = <-ch:
		case <-ctx.Done():
			res = syncResult{code: kerr.CoordinatorNotAvailable.Code}
		}
	}
	resp.ErrorCode = res.code
	resp.MemberAssignment = res.assignment
	if res.code == 0 && req.Version >= 5 {
		resp.ProtocolType = kmsg.StringPtr(res.protocolType)
		resp.Protocol = kmsg.StringPtr(res.protocol)
	}
	return resp
}

func (g *group) syncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) (chan syncResult, syncResult) {
	fail := func(code int16) (chan syncResult, syncResult) { return nil, syncResult{code: code} }
	instanceID := ""
	if req.Version >= 3 && req.InstanceID != nil {
		instanceID = *req.InstanceID
	}
	if code := g.fencedCode(req.MemberID, instanceID); code != 0 {
		return fail(code)
	}
	if req.Generation != g.generation {
		return fail(kerr.IllegalGeneration.Code)
	}
	if req.Version >= 5 {
		if req.ProtocolType != nil && *req.ProtocolType != g.protocolType ||
			req.Protocol != nil && *req.Protocol != g.protocol {
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
	}
	m := g.members[req.MemberID]
	switch g.state {
	case stateEmpty:
		return fail(kerr.UnknownMemberID.Code)
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress.Code)
	case stateStable:
		delete(g.pendingSync, m.id)
		g.heartbeat(m)
		return nil, syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: nonNil(m.assignment)}
	}
	// CompletingRebalance.
	m.replySync(syncResult{code: kerr.RebalanceInProgress.Code}) // a superseded SyncGroup
	m.sync = make(chan syncResult, 1)
	ch := m.sync
	delete(g.pendingSync, m.id)
	if m.id != g.leader {
		return ch, syncResult{}
	}
	assignments := make(map[string][]byte, len(g.members))
	for _, a := range req.GroupAssignment {
		if g.members[a.MemberID] != nil {
			assignments[a.MemberID] = bytes.Clone(a.MemberAssignment)
		}
	}
	for id := range g.members {
		if assignments[id] == nil {
			assignments[id] = []byte{}
		}
	}
	if err := g.c.store.Append(ctx, g.partition, []Record{g.metadataRecord(assignments)}); err != nil {
		g.logWarn("failed to store group assignment", "generation", g.generation, "err", err)
		g.resetAssignments(appendCode(err, false))
		g.maybePrepareRebalance(ctx, "failed to store the group assignment")
		return ch, syncResult{}
	}
	g.propagateAssignments(assignments)
	g.transition(stateStable)
	g.logInfo("group stable", "generation", g.generation, "members", len(g.members))
	return ch, syncResult{}
}

// Heartbeat serves Heartbeat v0-v4 (v3+ carries group.instance.id). It
// extends the member's session; during a rebalance it answers
// REBALANCE_IN_PROGRESS so that the member rejoins.
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, code := c.lockGroup(req.Group, false)
	if code == 0 && g == nil {
		code = kerr.UnknownMemberID.Code
	}
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	defer g.mu.Unlock()
	instanceID := ""
	if req.Version >= 3 && req.InstanceID != nil {
		instanceID = *req.InstanceID
	}
	if code := g.fencedCode(req.MemberID, instanceID); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if req.Generation != g.generation {
		resp.ErrorCode = kerr.IllegalGeneration.Code
		return resp
	}
	switch g.state {
	case stateEmpty:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	case statePreparingRebalance:
		g.heartbeat(g.members[req.MemberID])
		resp.ErrorCode = kerr.RebalanceInProgress.Code
	default:
		g.heartbeat(g.members[req.MemberID])
	}
	return resp
}

// LeaveGroup serves LeaveGroup v0-v5: v0-v2 remove one member and report its
// error at the top level; v3+ remove a batch of members, each by member id or
// by group.instance.id (the admin form leaves the member id empty), with an
// error per member. Removing members of a stable group starts a rebalance.
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	leaving := req.Members
	if req.Version < 3 {
		leaving = []kmsg.LeaveGroupRequestMember{{MemberID: req.MemberID}}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, code := c.lockGroup(req.Group, false)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	for _, l := range leaving {
		lm := kmsg.NewLeaveGroupResponseMember()
		lm.MemberID, lm.InstanceID = l.MemberID, l.InstanceID
		if g == nil {
			lm.ErrorCode = kerr.UnknownMemberID.Code
		} else {
			lm.ErrorCode = g.leave(ctx, l)
		}
		resp.Members = append(resp.Members, lm)
	}
	if g != nil {
		g.mu.Unlock()
	}
	if req.Version < 3 {
		for _, lm := range resp.Members {
			if lm.ErrorCode != 0 {
				resp.ErrorCode = lm.ErrorCode
				break
			}
		}
		resp.Members = nil
	}
	return resp
}

func (g *group) leave(ctx context.Context, l kmsg.LeaveGroupRequestMember) int16 {
	instanceID := ""
	if l.InstanceID != nil {
		instanceID = *l.InstanceID
	}
	if l.MemberID != "" && instanceID != "" {
		if cur, ok := g.static[instanceID]; ok && cur != l.MemberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if _, ok := g.pending[l.MemberID]; ok && l.MemberID != "" {
		delete(g.pending, l.MemberID)
		g.tryCompleteJoin(ctx)
		return 0
	}
	id := l.MemberID
	if instanceID != "" {
		id = g.static[instanceID]
	}
	m := g.members[id]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	reason := "left the group"
	if l.Reason != nil && *l.Reason != "" {
		reason += ": " + *l.Reason
	}
	g.removeMember(ctx, m, reason)
	return 0
}
