package group

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newMemberJoinTimeout bounds how long a brand-new member may wait in a
// JoinGroup: its session cannot run yet because it does not know its member
// id. Kafka's GroupCoordinator.NewMemberJoinTimeoutMs.
const newMemberJoinTimeout = 5 * time.Minute

// state is a classic group state; String returns Kafka's names, which
// DescribeGroups and ListGroups report.
type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

type protocol struct {
	name     string
	metadata []byte
}

// joinResult is what a blocked JoinGroup receives; the handler turns it into
// a response of the request's version.
type joinResult struct {
	code           int16
	memberID       string
	generation     int32
	protocolType   string
	protocol       string // "" when none was selected
	leader         string
	skipAssignment bool
	members        []kmsg.JoinGroupResponseMember
}

type syncResult struct {
	code         int16
	protocolType string
	protocol     string
	assignment   []byte
}

type member struct {
	id           string
	instanceID   string // "" for dynamic members
	clientID     string
	clientHost   string
	protocolType string
	protocols    []protocol
	session      time.Duration
	rebalance    time.Duration
	assignment   []byte
	deadline     time.Time // session expiry
	seq          uint64    // join order, for stable listings and leader choice
	isNew        bool      // joined but never completed a join

	// join and sync are set while the member awaits a JoinGroup or SyncGroup
	// response; a member awaiting either is not expired by its session, as in
	// Kafka. Both are buffered so that delivery never blocks under the lock.
	join chan joinResult
	sync chan syncResult
}

func (m *member) static() bool { return m.instanceID != "" }

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) matches(ps []protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b protocol) bool {
		return a.name == b.name && string(a.metadata) == string(b.metadata)
	})
}

func (m *member) replyJoin(r joinResult) {
	if m.join != nil {
		m.join <- r
		m.join = nil
	}
}

func (m *member) replySync(r syncResult) {
	if m.sync != nil {
		m.sync <- r
		m.sync = nil
	}
}

type offsetCommit struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  time.Time
	expireTime  time.Time // set only by v1-v4 commits with an explicit retention
	// order is when the commit's record was appended, among the
	// coordinator's commits (Coordinator.commitOrder): a transaction's
	// offsets replace on commit only offsets appended before them, as Kafka
	// compares the records' log offsets.
	order uint64
}

// group is one classic group. Every field except id, partition, c, dead and
// timerAt is guarded by mu.
type group struct {
	c         *Coordinator
	id        string
	partition int32
	dead      atomic.Bool // mirrors state == stateDead, readable without mu

	timerAt time.Time // guarded by c.timers.mu

	mu           sync.Mutex
	state        state
	stateTime    time.Time
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string    // instance id -> member id
	pending      map[string]time.Time // KIP-394 member ids handed out -> expiry
	pendingSync  map[string]struct{}  // members yet to SyncGroup this generation
	syncDeadline time.Time
	joinDeadline time.Time
	seq          uint64

	// The initial rebalance delay of an empty group (Kafka's InitialDelayedJoin).
	initialDelay     bool
	newMemberAdded   bool
	initialRemaining time.Duration

	subscribed map[string]bool // topics of "consumer" members; nil if unknown
	// staleTopics are deleted topics with the generation current at their
	// deletion: members of that generation or older may not commit them.
	staleTopics map[string]int32
	offsets     map[string]map[int32]offsetCommit
	// pendingTxn holds transactional offset commits by producer id until
	// the transaction's marker commits or aborts them (txn.go).
	pendingTxn map[int64]map[topicPartition]offsetCommit
}

func newGroup(c *Coordinator, id string, partition int32) *group {
	return &group{
		c:         c,
		id:        id,
		partition: partition,
		stateTime: c.now(),
		members:   make(map[string]*member),
		static:    make(map[string]string),
		pending:   make(map[string]time.Time),
		offsets:   make(map[string]map[int32]offsetCommit),
	}
}

func (g *group) transition(s state) {
	g.state = s
	g.stateTime = g.c.now()
	if s == stateDead {
		g.dead.Store(true)
	}
}

func (g *group) logInfo(msg string, args ...any) {
	g.c.logger.Info(msg, append([]any{"group", g.id}, args...)...)
}

func (g *group) logWarn(msg string, args ...any) {
	g.c.logger.Warn(msg, append([]any{"group", g.id}, args...)...)
}

// arm makes Run look at this group no later than t.
func (g *group) arm(t time.Time) { g.c.timers.schedule(g, t) }

// armAll re-arms every deadline of the group; used after loading.
func (g *group) armAll() {
	if next, ok := g.nextDeadline(); ok {
		g.arm(next)
	}
}

func (g *group) heartbeat(m *member) {
	m.deadline = g.c.now().Add(m.session)
	g.arm(m.deadline)
}

func (g *group) orderedMembers() []*member {
	ms := make([]*member, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int { return int(a.seq) - int(b.seq) })
	return ms
}

func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalance)
	}
	return d
}

// fencedCode validates a (member id, instance id) pair the way Kafka's
// validateCurrentMember does; 0 means the member is current.
func (g *group) fencedCode(memberID, instanceID string) int16 {
	if instanceID != "" {
		cur, ok := g.static[instanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if cur != memberID {
			return kerr.FencedInstanceID.Code
		}
	}
	if g.members[memberID] == nil {
		return kerr.UnknownMemberID.Code
	}
	return 0
}

// supportsProtocols is Kafka's GroupMetadata.supportsProtocols: an empty group
// accepts any non-empty protocol list; otherwise the type must match and at
// least one protocol must be supported by every current member.
func (g *group) supportsProtocols(ptype string, ps []protocol) bool {
	if len(g.members) == 0 {
		return ptype != "" && len(ps) > 0
	}
	if ptype != g.protocolType {
		return false
	}
	for _, p := range ps {
		if g.supportCount(p.name) == len(g.members) {
			return true
		}
	}
	return false
}

func (g *group) supportCount(name string) int {
	n := 0
	for _, m := range g.members {
		if slices.ContainsFunc(m.protocols, func(p protocol) bool { return p.name == name }) {
			n++
		}
	}
	return n
}

// selectProtocol picks, among the protocols every member supports, the one
// most members list first among those candidates, like Kafka's selectProtocol.
// Ties go to the candidate the earliest member prefers.
func (g *group) selectProtocol() string {
	ms := g.orderedMembers()
	if len(ms) == 0 {
		return ""
	}
	var candidates []string
	for _, p := range ms[0].protocols {
		if g.supportCount(p.name) == len(ms) && !slices.Contains(candidates, p.name) {
			candidates = append(candidates, p.name)
		}
	}
	votes := make(map[string]int, len(candidates))
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// computeSubscribed decodes the consumer-protocol subscriptions of every
// member, so offset expiry and OffsetDelete know which topics are in use. It
// returns nil when the group is not a "consumer" group or a subscription does
// not decode, meaning "unknown", as Kafka does.
func (g *group) computeSubscribed() map[string]bool {
	if g.protocolType != "consumer" || g.protocol == "" {
		return nil
	}
	topics := make(map[string]bool)
	for _, m := range g.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			return nil
		}
		for _, t := range meta.Topics {
			topics[t] = true
		}
	}
	return topics
}

func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%s-%x-%x-%x-%x-%x", prefix, b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// addMember adds a joining member, Kafka's GroupMetadata.add.
func (g *group) addMember(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	if g.leader == "" {
		g.leader = m.id
	}
	g.seq++
	m.seq = g.seq
	g.members[m.id] = m
	if m.static() {
		g.static[m.instanceID] = m.id
	}
	delete(g.pending, m.id)
}

// remove drops m without any rebalance decision, Kafka's GroupMetadata.remove.
func (g *group) remove(m *member) {
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.static() && g.static[m.instanceID] == m.id {
		delete(g.static, m.instanceID)
	}
	if g.leader == m.id {
		g.leader = ""
		if ms := g.orderedMembers(); len(ms) > 0 {
			g.leader = ms[0].id
		}
	}
}

// removeMember removes m and reacts like Kafka's removeMemberAndUpdateGroup:
// a stable group rebalances, a rebalancing group may now complete its join.
func (g *group) removeMember(ctx context.Context, m *member, reason string) {
	m.replyJoin(joinResult{code: kerr.UnknownMemberID.Code, generation: -1})
	m.replySync(syncResult{code: kerr.UnknownMemberID.Code})
	g.remove(m)
	g.logInfo("member removed", "member", m.id, "reason", reason)
	switch g.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalance(ctx, reason)
	case statePreparingRebalance:
		g.tryCompleteJoin(ctx)
	}
}

// maybePrepareRebalance starts a rebalance unless one is already preparing.
func (g *group) maybePrepareRebalance(ctx context.Context, reason string) {
	switch g.state {
	case stateStable, stateCompletingRebalance, stateEmpty:
		g.prepareRebalance(ctx, reason)
	}
}

func (g *group) prepareRebalance(ctx context.Context, reason string) {
	if g.state == stateCompletingRebalance {
		g.resetAssignments(kerr.RebalanceInProgress.Code)
	}
	g.pendingSync = nil
	g.syncDeadline = time.Time{}
	now := g.c.now()
	delay := g.c.cfg.InitialRebalanceDelay
	if g.state == stateEmpty && delay > 0 {
		g.initialDelay = true
		g.newMemberAdded = false
		g.initialRemaining = max(g.rebalanceTimeout()-delay, 0)
		g.joinDeadline = now.Add(delay)
	} else {
		g.initialDelay = false
		g.joinDeadline = now.Add(g.rebalanceTimeout())
	}
	g.transition(statePreparingRebalance)
	g.c.rebalances.Add(1)
	g.arm(g.joinDeadline)
	g.logInfo("preparing rebalance", "generation", g.generation, "reason", reason)
	g.tryCompleteJoin(ctx)
}

func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.join == nil {
			return false
		}
	}
	return true
}

// tryCompleteJoin completes the join phase once every member has rejoined,
// except during the initial delay, which only its timer ends.
func (g *group) tryCompleteJoin(ctx context.Context) {
	if g.state == statePreparingRebalance && !g.initialDelay && g.allJoined() {
		g.completeJoin(ctx)
	}
}

// completeJoin is Kafka's onCompleteJoin: drop dynamic members that did not
// rejoin, elect a leader among those that did, and start the next generation.
func (g *group) completeJoin(ctx context.Context) {
	for _, m := range g.orderedMembers() {
		if m.join == nil && !m.static() {
			g.remove(m)
			g.logInfo("member removed", "member", m.id, "reason", "did not rejoin within the rebalance timeout")
		}
	}
	if !g.electJoinedLeader() && len(g.members) > 0 {
		// Only static members that have not rejoined are left: wait another
		// rebalance timeout for them or for their sessions to expire.
		g.initialDelay = false
		g.joinDeadline = g.c.now().Add(g.rebalanceTimeout())
		g.arm(g.joinDeadline)
		return
	}
	g.generation++
	g.initialDelay = false
	g.joinDeadline = time.Time{}
	if len(g.members) == 0 {
		g.protocol = ""
		g.subscribed = nil
		g.transition(stateEmpty)
		g.logInfo("group is empty", "generation", g.generation)
		if err := g.storeMetadata(ctx); err != nil {
			// Safe to only warn: an empty generation has no members to confuse.
			g.logWarn("failed to store empty group metadata", "err", err)
		}
		return
	}
	g.protocol = g.selectProtocol()
	g.subscribed = g.computeSubscribed()
	maps.DeleteFunc(g.staleTopics, func(_ string, gen int32) bool { return gen < g.generation })
	g.transition(stateCompletingRebalance)
	now := g.c.now()
	g.pendingSync = make(map[string]struct{}, len(g.members))
	g.syncDeadline = now.Add(g.rebalanceTimeout())
	g.arm(g.syncDeadline)
	for _, m := range g.orderedMembers() {
		r := g.joinResultFor(m.id)
		m.replyJoin(r)
		m.isNew = false
		g.pendingSync[m.id] = struct{}{}
		g.heartbeat(m)
	}
	g.logInfo("rebalance joined", "generation", g.generation, "protocol", g.protocol,
		"leader", g.leader, "members", len(g.members))
}

// joinResultFor builds the successful join answer for memberID in the current
// generation; the leader also receives every member's metadata.
func (g *group) joinResultFor(memberID string) joinResult {
	r := joinResult{
		memberID:     memberID,
		generation:   g.generation,
		protocolType: g.protocolType,
		protocol:     g.protocol,
		leader:       g.leader,
	}
	if memberID == g.leader {
		r.members = g.memberList()
	}
	return r
}

func (g *group) memberList() []kmsg.JoinGroupResponseMember {
	ms := g.orderedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, m := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = m.id
		if m.static() {
			jm.InstanceID = kmsg.StringPtr(m.instanceID)
		}
		jm.ProtocolMetadata = m.metadataFor(g.protocol)
		out = append(out, jm)
	}
	return out
}

// electJoinedLeader keeps the leader if it rejoined, or else promotes any
// member that did, like Kafka's maybeElectNewJoinedLeader.
func (g *group) electJoinedLeader() bool {
	if l := g.members[g.leader]; l != nil && l.join != nil {
		return true
	}
	for _, m := range g.orderedMembers() {
		if m.join != nil {
			g.leader = m.id
			return true
		}
	}
	return false
}

// resetAssignments clears assignments and answers blocked SyncGroups with code.
func (g *group) resetAssignments(code int16) {
	for _, m := range g.members {
		m.assignment = nil
		m.replySync(syncResult{code: code})
	}
}

// propagateAssignments installs the leader's assignment and releases every
// member blocked in SyncGroup.
func (g *group) propagateAssignments(assignments map[string][]byte) {
	for _, m := range g.members {
		m.assignment = assignments[m.id]
		if m.assignment == nil {
			m.assignment = []byte{}
		}
		m.replySync(syncResult{protocolType: g.protocolType, protocol: g.protocol, assignment: m.assignment})
		g.heartbeat(m)
	}
}

// unload fails everything waiting on the group because this coordinator no
// longer owns it, like Kafka's onGroupUnloaded.
func (g *group) unload() {
	for _, m := range g.members {
		m.replyJoin(joinResult{code: kerr.NotCoordinator.Code, memberID: m.id, generation: -1})
		m.replySync(syncResult{code: kerr.NotCoordinator.Code})
	}
	g.transition(stateDead)
}

// expire handles every deadline of the group that has passed at now. It is
// Run's only entry into a group.
func (g *group) expire(ctx context.Context, now time.Time) {
	if g.state == stateDead {
		return
	}
	for id, at := range g.pending {
		if !now.Before(at) {
			delete(g.pending, id)
			g.logInfo("pending member expired", "member", id)
		}
	}
	for _, m := range g.orderedMembers() {
		if g.members[m.id] != m {
			continue // removed by an earlier step of this loop
		}
		awaiting := !m.isNew && (m.join != nil || m.sync != nil)
		if !awaiting && !now.Before(m.deadline) {
			g.removeMember(ctx, m, "session timeout expired")
		}
	}
	if len(g.pendingSync) > 0 && !g.syncDeadline.IsZero() && !now.Before(g.syncDeadline) &&
		(g.state == stateCompletingRebalance || g.state == stateStable) {
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				m.replySync(syncResult{code: kerr.UnknownMemberID.Code})
				g.remove(m)
				g.logInfo("member removed", "member", id, "reason", "did not sync within the rebalance timeout")
			}
		}
		g.prepareRebalance(ctx, "members did not sync within the rebalance timeout")
	}
	if g.state == statePreparingRebalance && !now.Before(g.joinDeadline) {
		if g.initialDelay && g.newMemberAdded && g.initialRemaining > 0 {
			d := min(g.c.cfg.InitialRebalanceDelay, g.initialRemaining)
			g.initialRemaining -= d
			g.newMemberAdded = false
			g.joinDeadline = now.Add(d)
		} else {
			g.initialDelay = false
			g.completeJoin(ctx)
		}
	}
	if g.state == statePreparingRebalance {
		g.tryCompleteJoin(ctx) // pending ids may have expired
	}
	g.armAll()
}

// nextDeadline is the earliest time expire has something to do.
func (g *group) nextDeadline() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if g.state == stateDead {
		return next, false
	}
	for _, at := range g.pending {
		consider(at)
	}
	for _, m := range g.members {
		if m.isNew || (m.join == nil && m.sync == nil) {
			consider(m.deadline)
		}
	}
	if len(g.pendingSync) > 0 {
		consider(g.syncDeadline)
	}
	if g.state == statePreparingRebalance {
		consider(g.joinDeadline)
	}
	return next, !next.IsZero()
}
