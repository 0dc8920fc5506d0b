package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// FirstAllocatedNodeID is the first node id the controller allocates to a node started without
// `node.id`: ids up to 1000 are left to configured nodes, as with Kafka's
// `reserved.broker.max.id` (default 1000) and its generated broker ids.
const FirstAllocatedNodeID = 1001

// MaxAllocatedNodeIDs bounds how many node ids a cluster hands out over its life, so that a
// misbehaving or compromised broker principal cannot grow the metadata image without end.
const MaxAllocatedNodeIDs = 10000

// allocateNodeIDRecord hands out a node id, recording the principal that asked for it: only that
// principal may later join or register with it.
type allocateNodeIDRecord struct {
	ID        int32  `json:"id"`
	Principal string `json:"principal,omitempty"`
}

// quorumChangeRecord records a change of the Raft configuration, which lives in Raft's own log, as a
// cluster event: a node that joined as an observer, a controller added or removed.
type quorumChangeRecord struct {
	NodeID int32  `json:"node_id"`
	Addr   string `json:"addr"`
	Change string `json:"change"` // observer_joined, controller_added, controller_removed
	// Controller is set when an observer that joined has the controller role (process.roles), so
	// that it may be made a voter; a broker-only node may not.
	Controller bool `json:"controller,omitempty"`
}

// registerControllerRecord records the Kafka endpoints of a controller-only node, written by the
// node itself when it becomes the active controller (like KRaft's RegisterControllerRecord).
type registerControllerRecord struct {
	ID        int32      `json:"id"`
	Listeners []Endpoint `json:"listeners"`
}

func (registerControllerRecord) recordType() string { return "register_controller" }
func (allocateNodeIDRecord) recordType() string     { return "allocate_node_id" }
func (quorumChangeRecord) recordType() string       { return "quorum_change" }

func (b *builder) applyNodes(t time.Time, rec record) error {
	switch r := rec.(type) {
	case allocateNodeIDRecord:
		next := b.next.NextNodeID
		if next == 0 {
			next = FirstAllocatedNodeID
		}
		if r.ID < next {
			return fmt.Errorf("node id %d was allocated before (next is %d)", r.ID, next)
		}
		if len(b.next.AllocatedNodeIDs) >= MaxAllocatedNodeIDs {
			return fmt.Errorf("%d node ids allocated already", len(b.next.AllocatedNodeIDs))
		}
		ids := maps.Clone(b.next.AllocatedNodeIDs)
		if ids == nil {
			ids = map[int32]string{}
		}
		ids[r.ID] = r.Principal
		b.next.AllocatedNodeIDs, b.next.NextNodeID = ids, r.ID+1
		b.event(t, EventNodeIDAllocated, r.ID, "", -1, "principal="+r.Principal)
	case registerControllerRecord:
		if r.ID < 0 || len(r.Listeners) == 0 {
			return fmt.Errorf("controller %d without endpoints", r.ID)
		}
		cs := maps.Clone(b.next.Controllers)
		if cs == nil {
			cs = map[int32][]Endpoint{}
		}
		cs[r.ID] = slices.Clone(r.Listeners)
		b.next.Controllers = cs
	case quorumChangeRecord:
		typ, ok := map[string]EventType{
			"observer_joined":    EventObserverJoined,
			"controller_added":   EventControllerAdded,
			"controller_removed": EventControllerRemoved,
		}[r.Change]
		if !ok {
			return fmt.Errorf("unknown quorum change %q", r.Change)
		}
		capable := maps.Clone(b.next.ControllerCapable)
		if capable == nil {
			capable = map[int32]bool{}
		}
		if r.Change == "observer_joined" && !r.Controller {
			delete(capable, r.NodeID)
		} else {
			capable[r.NodeID] = true
		}
		b.next.ControllerCapable = capable
		b.event(t, typ, r.NodeID, "", -1, "raft address "+r.Addr)
	}
	return nil
}

// AllocateNodeID hands out a new node id, never handed out before and not used by a configured
// node, recording principal as its owner. Only the active controller allocates.
func (q *Quorum) AllocateNodeID(ctx context.Context, principal string) (int32, error) {
	if _, err := q.lockController(); err != nil {
		return -1, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	id := max(img.NextNodeID, FirstAllocatedNodeID)
	cfg, err := q.configuration()
	if err != nil {
		return -1, err
	}
	inUse := func(id int32) bool {
		_, reg := img.Brokers[id]
		return reg || slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool { return s.ID == serverID(id) })
	}
	for inUse(id) {
		id++
	}
	if _, err := q.proposeLocked(ctx, []record{allocateNodeIDRecord{ID: id, Principal: principal}}); err != nil {
		return -1, err
	}
	q.log.Info("node id allocated", "node", id, "principal", principal)
	return id, nil
}

// NodePrincipal returns the principal a node id was allocated to, and whether it was allocated by
// the controller at all.
func (img *Image) NodePrincipal(id int32) (string, bool) {
	p, ok := img.AllocatedNodeIDs[id]
	return p, ok
}

func (q *Quorum) configuration() (raft.Configuration, error) {
	f := q.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, fmt.Errorf("metadata: raft configuration: %w", err)
	}
	return f.Configuration(), nil
}

// AddObserver makes node id, whose Raft listener is addr, follow the metadata log as a Raft
// non-voter (an observer, in KRaft's words); controller says whether it has the controller role
// and may later be made a voter. principal is who asked; it must own the id (see joinAllowed). A
// voter may not join. Only the active controller does it.
func (q *Quorum) AddObserver(ctx context.Context, id int32, addr, principal string, controller bool) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	if err := q.joinAllowed(id, principal); err != nil {
		return err
	}
	cfg, err := q.configuration()
	if err != nil {
		return err
	}
	for _, s := range cfg.Servers {
		if s.ID != serverID(id) {
			continue
		}
		if s.Suffrage == raft.Voter {
			return kafkaErrf(kerr.InvalidRequest, "node %d is a controller (a voter); it does not join as an observer", id)
		}
		if string(s.Address) == addr && q.Image().ControllerCapable[id] == controller {
			return nil
		}
	}
	if err := q.raft.AddNonvoter(serverID(id), raft.ServerAddress(addr), 0, q.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("metadata: add observer %d: %w", id, err)
	}
	if _, err := q.proposeLocked(ctx, []record{quorumChangeRecord{NodeID: id, Addr: addr, Change: "observer_joined", Controller: controller}}); err != nil {
		return err
	}
	q.log.Info("node joined the metadata quorum as an observer", "node", id, "addr", addr)
	return nil
}

// RemoveObserver takes node id, an observer, out of the Raft configuration: the controller stops
// replicating the metadata log to it. It is for brokers that left the cluster for good (drained and
// unregistered); a node that starts again joins again. Voters are removed with RemoveController.
func (q *Quorum) RemoveObserver(ctx context.Context, id int32) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	return q.forgetObserver(id)
}

// forgetObserver is RemoveObserver with ctlMu held (UnregisterBroker calls it too).
func (q *Quorum) forgetObserver(id int32) error {
	cfg, err := q.configuration()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cfg.Servers, func(s raft.Server) bool { return s.ID == serverID(id) })
	if i < 0 {
		return nil
	}
	if cfg.Servers[i].Suffrage == raft.Voter {
		return kafkaErrf(kerr.InvalidRequest, "node %d is a controller; remove it with RemoveRaftVoter first", id)
	}
	if err := q.raft.RemoveServer(serverID(id), 0, q.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("metadata: remove observer %d: %w", id, err)
	}
	q.log.Info("observer removed from the metadata quorum", "node", id)
	return nil
}

// joinAllowed reports why principal may not act as node id in the quorum, or nil. A configured id
// (broker.principals) must be joined by its principal; an allocated one by the principal it was
// allocated to; without authentication ("" principal, a loopback controller listener) only ids
// that exist in one of those ways may join.
func (q *Quorum) joinAllowed(id int32, principal string) error {
	if want, ok := q.cfg.NodePrincipals[id]; ok {
		if principal != "" && want != principal {
			return kafkaErrf(kerr.ClusterAuthorizationFailed, "principal %s is not bound to node id %d", principal, id)
		}
		return nil
	}
	if owner, ok := q.Image().NodePrincipal(id); ok {
		if owner != principal {
			return kafkaErrf(kerr.ClusterAuthorizationFailed, "node id %d was allocated to another principal", id)
		}
		return nil
	}
	if principal != "" {
		return kafkaErrf(kerr.ClusterAuthorizationFailed, "node id %d is neither in broker.principals nor allocated to %s", id, principal)
	}
	if id < 0 {
		return kafkaErrf(kerr.InvalidRequest, "node id %d is negative", id)
	}
	return nil
}

// maxVoterLag is how far behind the commit index an observer may be when it is made a voter.
const maxVoterLag = 100

// MinVoters is the least number of controllers RemoveController leaves: three voters survive the
// loss of one, and a quorum that started smaller cannot shrink at all.
const MinVoters = 3

// AddController promotes node id, which must follow the log as an observer already (started with
// controller.quorum.bootstrap.servers), to a voter of the metadata quorum, like Kafka's
// AddRaftVoter (KIP-853). Adding a voter that is one already is DUPLICATE_VOTER.
func (q *Quorum) AddController(ctx context.Context, id int32) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	cfg, err := q.configuration()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cfg.Servers, func(s raft.Server) bool { return s.ID == serverID(id) })
	if i < 0 {
		return kafkaErrf(kerr.InvalidRequest, "node %d does not follow the metadata log: start it with controller.quorum.bootstrap.servers first", id)
	}
	s := cfg.Servers[i]
	if s.Suffrage == raft.Voter {
		return kafkaErrf(kerr.DuplicateVoter, "node %d is a controller already", id)
	}
	if !q.Image().ControllerCapable[id] {
		return kafkaErrf(kerr.InvalidRequest, "node %d is a broker-only node (process.roles=broker): start a node with the controller role to add a controller", id)
	}
	// The new voter must be up and have caught up, or adding it could leave the quorum without a
	// majority that has the log. It is asked directly, at the address it will be replicated to.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	got, applied, err := q.nodeStatus(sctx, string(s.Address))
	cancel()
	switch {
	case err != nil:
		return kafkaErrf(kerr.RequestTimedOut, "node %d does not answer at %s: %v", id, s.Address, err)
	case got != id:
		return kafkaErrf(kerr.InvalidRequest, "the node at %s is node %d, not %d", s.Address, got, id)
	case applied+maxVoterLag < q.raft.CommitIndex():
		return kafkaErrf(kerr.RequestTimedOut, "node %d has applied the metadata log up to %d of %d; retry when it has caught up", id, applied, q.raft.CommitIndex())
	}
	if err := q.raft.AddVoter(s.ID, s.Address, 0, q.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("metadata: add controller %d: %w", id, err)
	}
	if _, err := q.proposeLocked(ctx, []record{quorumChangeRecord{NodeID: id, Addr: string(s.Address), Change: "controller_added"}}); err != nil {
		return err
	}
	q.log.Info("controller added to the metadata quorum", "node", id, "addr", s.Address)
	return nil
}

// RemoveController makes voter id an observer: it keeps following the metadata log (and serving as
// a broker if it is one) but no longer votes, like Kafka's RemoveRaftVoter (KIP-853). It refuses to
// leave fewer than MinVoters voters. Removing the active controller itself makes it step down.
func (q *Quorum) RemoveController(ctx context.Context, id int32) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	cfg, err := q.configuration()
	if err != nil {
		q.ctlMu.Unlock()
		return err
	}
	var voters []int32
	var addr raft.ServerAddress
	found := false
	for _, s := range cfg.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters = append(voters, nodeIDOf(s.ID))
		if s.ID == serverID(id) {
			found, addr = true, s.Address
		}
	}
	if !found {
		q.ctlMu.Unlock()
		return kafkaErrf(kerr.VoterNotFound, "node %d is not a controller (voters %v)", id, voters)
	}
	if len(voters)-1 < MinVoters {
		q.ctlMu.Unlock()
		return kafkaErrf(kerr.InvalidRequest, "removing controller %d would leave %d voters, fewer than %d: add a controller first", id, len(voters)-1, MinVoters)
	}
	// The event first: once the leader removes itself it can no longer propose.
	if _, err := q.proposeLocked(ctx, []record{quorumChangeRecord{NodeID: id, Addr: string(addr), Change: "controller_removed"}}); err != nil {
		q.ctlMu.Unlock()
		return err
	}
	// Unlocked: a leader demoting itself steps down, and its controller loop needs ctlMu to stop.
	q.ctlMu.Unlock()
	if err := q.raft.DemoteVoter(serverID(id), 0, q.cfg.ApplyTimeout).Error(); err != nil &&
		!(id == q.cfg.NodeID && errors.Is(err, raft.ErrLeadershipLost)) {
		return fmt.Errorf("metadata: remove controller %d: %w", id, err)
	}
	q.log.Info("controller removed from the metadata quorum", "node", id)
	return nil
}

func nodeIDOf(id raft.ServerID) int32 {
	var n int32 = -1
	fmt.Sscan(string(id), &n)
	return n
}

// QuorumMember is one voter or observer of the metadata quorum as the active controller sees it,
// the fields of Kafka's DescribeQuorum (API 55) replica state.
type QuorumMember struct {
	NodeID int32
	// Addr is the member's Raft address.
	Addr string
	// LogEndOffset is the metadata log index the member last reported applied (-1: unknown).
	LogEndOffset int64
	// LastFetch is when the member last reported; LastCaughtUp when it last reported having applied
	// everything committed at that time. Zero: never.
	LastFetch, LastCaughtUp time.Time
}

// QuorumState is the metadata quorum as the active controller sees it, Kafka's DescribeQuorum.
type QuorumState struct {
	LeaderID      int32
	LeaderEpoch   int64 // the Raft term
	HighWatermark int64 // the Raft commit index
	Voters        []QuorumMember
	Observers     []QuorumMember
}

// DescribeQuorum returns the quorum state; only the active controller knows it. A member's log end
// offset and fetch times come from its broker heartbeats (the metadata offset it reports having
// applied); the controller itself reports its own log.
func (q *Quorum) DescribeQuorum() (QuorumState, error) {
	s := q.sess.Load()
	if s == nil || !q.IsController() {
		return QuorumState{}, ErrNotController
	}
	cfg, err := q.configuration()
	if err != nil {
		return QuorumState{}, err
	}
	now := time.Now()
	st := QuorumState{LeaderID: q.cfg.NodeID, LeaderEpoch: int64(q.raft.CurrentTerm()), HighWatermark: int64(q.raft.CommitIndex())}
	for _, sv := range cfg.Servers {
		m := QuorumMember{NodeID: nodeIDOf(sv.ID), Addr: string(sv.Address), LogEndOffset: -1}
		if m.NodeID == q.cfg.NodeID {
			m.LogEndOffset, m.LastFetch, m.LastCaughtUp = int64(q.raft.LastIndex()), now, now
		} else if p, ok := s.progress(m.NodeID); ok {
			m.LogEndOffset, m.LastFetch, m.LastCaughtUp = int64(p.applied), p.heard, p.caughtUp
		}
		if sv.Suffrage == raft.Voter {
			st.Voters = append(st.Voters, m)
		} else {
			st.Observers = append(st.Observers, m)
		}
	}
	// Live brokers that heartbeat but are not in the Raft configuration (taken out with
	// RemoveObserver while running) are observers too; unregistered and fenced ones are not.
	img := q.Image()
	for _, id := range s.reported() {
		if !img.Live(id) || slices.ContainsFunc(cfg.Servers, func(sv raft.Server) bool { return sv.ID == serverID(id) }) {
			continue
		}
		p, _ := s.progress(id)
		st.Observers = append(st.Observers, QuorumMember{NodeID: id, LogEndOffset: int64(p.applied), LastFetch: p.heard, LastCaughtUp: p.caughtUp})
	}
	sort.Slice(st.Voters, func(i, j int) bool { return st.Voters[i].NodeID < st.Voters[j].NodeID })
	sort.Slice(st.Observers, func(i, j int) bool { return st.Observers[i].NodeID < st.Observers[j].NodeID })
	return st, nil
}

// Members returns the node ids of the voters and the observers in this node's copy of the Raft
// configuration (any node knows it, not only the controller).
func (q *Quorum) Members() (voters, observers []int32, err error) {
	cfg, err := q.configuration()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range cfg.Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, nodeIDOf(s.ID))
		} else {
			observers = append(observers, nodeIDOf(s.ID))
		}
	}
	slices.Sort(voters)
	slices.Sort(observers)
	return voters, observers, nil
}

// memberProgress is what the controller knows of a broker's metadata log from its heartbeats.
type memberProgress struct {
	applied         uint64
	heard, caughtUp time.Time
}

// heardFrom records a heartbeat of broker id that reported applied while the controller's image was
// at committed.
func (s *sessions) heardFrom(id int32, applied, committed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	p := s.progressOf[id]
	p.applied, p.heard = max(p.applied, applied), now
	if applied >= committed {
		p.caughtUp = now
	}
	s.progressOf[id] = p
}

func (s *sessions) progress(id int32) (memberProgress, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.progressOf[id]
	return p, ok
}

// reported returns the ids of the brokers that heartbeat to this controller, sorted.
func (s *sessions) reported() []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Collect(maps.Keys(s.progressOf))
	slices.Sort(ids)
	return ids
}

// ControllerEndpoint returns the address of node id's listener called name: its broker
// registration's, else its controller registration's (a controller-only node).
func (img *Image) ControllerEndpoint(id int32, name string) string {
	if br, ok := img.Brokers[id]; ok {
		return br.Addr(name)
	}
	for _, e := range img.Controllers[id] {
		if e.Name == name {
			return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))
		}
	}
	return ""
}

// registerSelf records this controller-only node's endpoints when it becomes the active
// controller and the image does not have them yet, so brokers can reach it.
func (q *Quorum) registerSelf(ctx context.Context) {
	if len(q.cfg.ControllerEndpoints) == 0 || slices.Equal(q.Image().Controllers[q.cfg.NodeID], q.cfg.ControllerEndpoints) {
		return
	}
	if _, err := q.lockController(); err != nil {
		return
	}
	defer q.ctlMu.Unlock()
	if _, err := q.proposeLocked(ctx, []record{registerControllerRecord{ID: q.cfg.NodeID, Listeners: q.cfg.ControllerEndpoints}}); err != nil {
		q.log.Warn("registering this controller's endpoints", "err", err)
	}
}
