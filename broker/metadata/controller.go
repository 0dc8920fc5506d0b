package metadata

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"
)

// controller is the state of an active controller that is not in the log. It lives for one
// leadership term; a new controller gives every unfenced broker a fresh session.
type controller struct {
	sessions     *sessions
	preferredDue time.Time
	rng          *rand.Rand
}

// runController is the controller loop of one leadership term; it returns when ctx is done.
func (q *Quorum) runController(ctx context.Context) {
	// Decide nothing before every entry of earlier terms is applied to the image.
	for {
		err := q.raft.Barrier(q.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		if errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return
		}
		q.log.Warn("controller barrier failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	now := time.Now()
	c := &controller{sessions: newSessions(), preferredDue: now.Add(q.cfg.PreferredLeaderInterval), rng: rand.New(rand.NewPCG(uint64(now.UnixNano()), uint64(q.cfg.NodeID)))}
	img := q.Image()
	// A new controller has no heartbeat history, so it gives every broker a fresh
	// session. Half a session is enough: brokers heartbeat several times per
	// session and learn of the new controller from Raft at once. The previous
	// controller (usually the one that died) has been silent for a Raft heartbeat
	// timeout already when this node wins the election, so it gets a quarter
	// session. A broker at whose address nothing listens any more (a killed
	// process closed its listener) is fenced at once.
	prev := q.prevLeader.Load()
	for id, b := range img.Brokers {
		if b.Fenced {
			continue
		}
		grace := q.cfg.SessionTimeout / 2
		if id == prev {
			grace = q.cfg.SessionTimeout / 4
		}
		c.sessions.start(id, now.Add(grace))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); q.watchStalls(ctx, c.sessions) }()
	wg.Add(1)
	go func() { defer wg.Done(); q.runBalancer(ctx) }() // autobalance.go
	// Every broker this controller has not heard from yet is probed: the previous controller
	// (usually the one that died), and after a restart of the whole cluster, the old incarnations
	// of brokers that are starting again and cannot register while an old session lasts.
	for _, b := range img.Brokers {
		if b.Fenced || q.cfg.BrokerGone == nil || b.ID == q.cfg.NodeID {
			continue
		}
		reason := "not listening"
		if b.ID == prev {
			reason = "previous controller not listening"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, q.cfg.SessionTimeout/4)
			defer cancel()
			if q.cfg.BrokerGone(pctx, b) && c.sessions.gone(b.ID, reason) {
				q.log.Info("broker is gone; fencing it", "broker", b.ID, "reason", reason)
			}
		}()
	}
	q.ctlMu.Lock()
	q.ctl = c
	q.ctlMu.Unlock()
	q.sess.Store(c.sessions)
	q.isCtl.Store(true)
	q.log.Info("active controller", "node", q.cfg.NodeID, "term", q.raft.CurrentTerm(), "index", img.Index)
	defer func() {
		q.isCtl.Store(false)
		q.sess.Store(nil)
		q.ctlMu.Lock()
		q.ctl = nil
		q.ctlMu.Unlock()
		q.log.Info("no longer the active controller", "node", q.cfg.NodeID)
	}()

	q.registerSelf(ctx)
	q.bootstrapScram(ctx)
	tick := time.NewTicker(min(max(q.cfg.SessionTimeout/10, 10*time.Millisecond), 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			q.reconcile(ctx, false)
		case <-q.kickCh:
			q.reconcile(ctx, true)
		}
	}
}

// reconcile fences brokers whose sessions expired and proposes the partition changes the live brokers
// call for, as one entry.
func (q *Quorum) reconcile(ctx context.Context, forcePreferred bool) {
	q.ctlMu.Lock()
	defer q.ctlMu.Unlock()
	c := q.ctl
	if c == nil {
		return
	}
	img, now := q.Image(), time.Now()
	ids := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var recs []record
	dead := map[int32]bool{}
	for _, id := range ids {
		b := img.Brokers[id]
		if b.Fenced {
			c.sessions.end(id)
			continue
		}
		if reason, late := c.sessions.expired(id, now, q.cfg.SessionTimeout); reason != "" {
			recs = append(recs, fenceBrokerRecord{ID: id, Epoch: b.Epoch, Reason: reason})
			dead[id] = true
			q.log.Warn("broker session ended; fencing it", "broker", id, "reason", reason, "late", late)
		}
	}
	preferred := false
	if q.cfg.PreferredLeaderInterval > 0 && (forcePreferred || !now.Before(c.preferredDue)) {
		preferred, c.preferredDue = true, now.Add(q.cfg.PreferredLeaderInterval)
	}
	recs = append(recs, planPartitions(img, dead, preferred)...)
	if len(recs) > 0 {
		if _, err := q.proposeLocked(ctx, recs); err != nil {
			q.log.Warn("controller could not apply changes", "records", len(recs), "err", err)
			return
		}
		q.log.Info("controller applied changes", "records", len(recs), "fenced", len(dead))
	}
	// Reassignments complete in an entry of their own, planned on the image after the changes
	// above, so that no two records of one entry change the same partition.
	if done := planReassignments(q.Image()); len(done) > 0 {
		if _, err := q.proposeLocked(ctx, done); err != nil {
			q.log.Warn("controller could not complete reassignments", "records", len(done), "err", err)
			return
		}
		q.log.Info("reassignments completed", "partitions", len(done))
		q.kickBalance() // room for the next moves
	}
}

// kick asks the controller loop for a preferred-leader check now.
func (q *Quorum) kick() {
	select {
	case q.kickCh <- struct{}{}:
	default:
	}
}

// lockController takes ctlMu if this node is the active controller.
func (q *Quorum) lockController() (*controller, error) {
	q.ctlMu.Lock()
	if q.ctl == nil {
		q.ctlMu.Unlock()
		return nil, ErrNotController
	}
	return q.ctl, nil
}

// proposeLocked proposes recs as one entry and waits until it is applied, returning the image that
// includes it. On the leader raft applies an entry before its future completes.
func (q *Quorum) proposeLocked(ctx context.Context, recs []record) (*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := encodeEntry(time.Now(), recs)
	if err != nil {
		return nil, err
	}
	timeout := q.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if timeout = min(timeout, time.Until(dl)); timeout <= 0 {
			return nil, context.DeadlineExceeded // raft.Apply would take 0 as no timeout at all
		}
	}
	f := q.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrRaftShutdown) || errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return nil, fmt.Errorf("%w: %v", ErrNotController, err)
		}
		return nil, fmt.Errorf("metadata: propose: %w", err)
	}
	if err, _ := f.Response().(error); err != nil {
		return nil, fmt.Errorf("metadata: entry rejected: %w", err)
	}
	return q.Image(), nil
}

// proposeWithPlan proposes recs together with the partition changes they call for (new leaders for
// partitions of a broker being fenced or re-registered, leaders for offline partitions of a broker
// being unfenced or a topic allowing unclean election).
func (q *Quorum) proposeWithPlan(ctx context.Context, recs []record) (*Image, error) {
	img := q.Image()
	now := time.Now()
	st := make([]stamped, len(recs))
	for i, r := range recs {
		st[i] = stamped{time: now, rec: r}
	}
	sim, err := applyEntry(img, img.Index+1, st, false)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return q.proposeLocked(ctx, append(recs, planPartitions(sim, nil, false)...))
}

// RegisterBroker registers a broker (Kafka's BrokerRegistration) and returns its broker epoch. The
// broker is fenced until a heartbeat shows it has applied its registration. A retry with the same
// incarnation returns the existing epoch; a new incarnation is refused with DUPLICATE_BROKER_REGISTRATION
// while the old one's session lasts, and otherwise replaces it (fencing it and moving its leaderships).
func (q *Quorum) RegisterBroker(ctx context.Context, b Broker) (int64, error) {
	if b.ID < 0 || b.Host == "" || b.Port <= 0 || b.Port > 65535 {
		return -1, kafkaErrf(kerr.InvalidRequest, "broker %d: invalid listener %s:%d", b.ID, b.Host, b.Port)
	}
	c, err := q.lockController()
	if err != nil {
		return -1, err
	}
	defer q.ctlMu.Unlock()
	img, now := q.Image(), time.Now()
	if old, ok := img.Brokers[b.ID]; ok {
		if old.IncarnationID == b.IncarnationID {
			return old.Epoch, nil
		}
		if !old.Fenced && c.sessions.alive(b.ID, now) {
			return -1, kafkaErrf(kerr.DuplicateBrokerRegistration, "Another broker is registered with broker id %d.", b.ID)
		}
	}
	img, err = q.proposeWithPlan(ctx, []record{registerBrokerRecord{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack, IncarnationID: b.IncarnationID, Listeners: b.Listeners}})
	if err != nil {
		return -1, err
	}
	c.sessions.end(b.ID)
	return img.Brokers[b.ID].Epoch, nil
}

// HeartbeatRequest is a broker's heartbeat, Kafka's BrokerHeartbeat.
type HeartbeatRequest struct {
	BrokerID    int32
	BrokerEpoch int64
	// AppliedIndex is the index of the broker's own metadata image (Kafka's CurrentMetadataOffset);
	// a fenced broker is unfenced only once it has applied its registration.
	AppliedIndex uint64
	// WantFence asks to be fenced: a broker that is shutting down sets it so its leaderships move at
	// once (Kafka's controlled shutdown), instead of after its session expires.
	WantFence bool
	// Conn identifies the connection the heartbeat arrived on, unique within this process (0: sent
	// in-process). When the broker's side closes that connection, ConnectionClosed ends the session.
	Conn uint64
}

// Heartbeat extends a broker's session and reports whether it is fenced. The first heartbeat of a
// fenced broker that has caught up with its registration unfences it, which also elects it leader of
// offline partitions whose ISR it is in.
func (q *Quorum) Heartbeat(ctx context.Context, req HeartbeatRequest) (fenced bool, err error) {
	// A live broker's heartbeat only renews its session: it does not wait for ctlMu, which a
	// proposal holds while the Raft log is written.
	if s := q.sess.Load(); s != nil && !req.WantFence {
		if b, ok := q.Image().Brokers[req.BrokerID]; ok && b.Epoch == req.BrokerEpoch && !b.Fenced {
			s.renew(b.ID, req.Conn, time.Now().Add(q.cfg.SessionTimeout))
			s.reportApplied(b.ID, req.AppliedIndex)
			s.heardFrom(b.ID, req.AppliedIndex, q.Image().Index)
			return false, nil
		}
	}
	c, err := q.lockController()
	if err != nil {
		return true, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	b, ok := img.Brokers[req.BrokerID]
	if ok && b.Epoch == req.BrokerEpoch {
		c.sessions.reportApplied(b.ID, req.AppliedIndex)
		c.sessions.heardFrom(b.ID, req.AppliedIndex, img.Index)
	}
	switch {
	case !ok:
		return true, kafkaErrf(kerr.BrokerIDNotRegistered, "Broker %d is not registered.", req.BrokerID)
	case b.Epoch != req.BrokerEpoch:
		return true, kafkaErrf(kerr.StaleBrokerEpoch, "Broker %d has epoch %d, not %d.", req.BrokerID, b.Epoch, req.BrokerEpoch)
	case req.WantFence:
		c.sessions.end(b.ID)
		if !b.Fenced {
			if _, err := q.proposeWithPlan(ctx, []record{fenceBrokerRecord{ID: b.ID, Epoch: b.Epoch, Reason: "requested by broker"}}); err != nil {
				return false, err
			}
		}
		return true, nil
	case b.Fenced:
		if req.AppliedIndex < uint64(b.Epoch) {
			return true, nil
		}
		if _, err := q.proposeWithPlan(ctx, []record{unfenceBrokerRecord{ID: b.ID, Epoch: b.Epoch}}); err != nil {
			return true, err
		}
		q.kickBalance() // a broker joined or came back
		c.sessions.renew(b.ID, req.Conn, time.Now().Add(q.cfg.SessionTimeout))
		return false, nil
	default:
		c.sessions.renew(b.ID, req.Conn, time.Now().Add(q.cfg.SessionTimeout))
		return false, nil
	}
}

// WaitLeadersApplied waits until the leader of every partition of the topic has reported (in its
// heartbeats) that it applied the metadata log up to index, so that a client told about the topic can
// be served by its leaders at once. Leaders change as brokers are fenced; offline partitions do not
// wait. It returns ctx's error when ctx ends first, ErrNotController when this node stops being the
// controller.
func (q *Quorum) WaitLeadersApplied(ctx context.Context, topicID [16]byte, index uint64) error {
	for {
		changed := q.Changed()
		s := q.sess.Load()
		if s == nil {
			return ErrNotController
		}
		ch := s.appliedChanged()
		done := true
		if t := q.Image().TopicByID(topicID); t != nil {
			for _, p := range t.Partitions {
				if p.Leader >= 0 && s.appliedIndex(p.Leader) < index {
					done = false
					break
				}
			}
		}
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ConnectionClosed tells the controller that the broker's side closed connection conn, which
// carried heartbeats of broker brokerID. If it carried the last one, the broker's session ends and the
// controller fences it at its next check (within 100ms): a killed broker process closes its sockets,
// and its leaderships should not wait for the session timeout. A broker that is alive heartbeats on a
// connection it keeps open; it reconnects only after the controller changed.
func (q *Quorum) ConnectionClosed(brokerID int32, conn uint64) {
	if s := q.sess.Load(); s != nil && s.connClosed(brokerID, conn) {
		q.log.Info("broker closed its controller connection; fencing it", "broker", brokerID)
	}
}

// ProducerIDBlockSize is how many producer IDs AllocateProducerIDs hands out at a time.
const ProducerIDBlockSize = 1000

// AllocateProducerIDs hands out the next block of producer IDs, [start, start+count), for a broker to
// assign in InitProducerId (Kafka's AllocateProducerIds). Blocks never overlap, also across
// controller changes: the log records the next free block, and the entry only applies if it still is.
func (q *Quorum) AllocateProducerIDs(ctx context.Context) (start, count int64, err error) {
	if _, err := q.lockController(); err != nil {
		return 0, 0, err
	}
	defer q.ctlMu.Unlock()
	start = q.Image().NextProducerIDBlock
	if _, err := q.proposeLocked(ctx, []record{allocateProducerIDsRecord{BlockStart: start, NextBlockStart: start + ProducerIDBlockSize}}); err != nil {
		return 0, 0, err
	}
	return start, ProducerIDBlockSize, nil
}
