package metadata

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// A follower waits a whole Raft heartbeat timeout (Config.HeartbeatTimeout, 1.5s by default) for a
// silent leader before it starts an election, so that a leader that is only slow on a busy machine
// keeps its leadership. A leader whose process ended is told apart: its connections to this node are
// closed, and its Raft address refuses connections. Then the follower elects at once, after the
// leader lease (the shortest heartbeat timeout Raft accepts), and the controller fails over as fast
// as with short Raft timeouts.

// leaderLossStagger is how much later each further follower (by node id) starts its election after
// a leader loss, so that two candidates do not split the vote (which costs an election timeout).
// Followers last heard the leader up to a heartbeat interval (HeartbeatTimeout/10) apart, so the
// stagger is longer than that. The first candidate's pre-vote is refused by a follower that still
// has the leader; the second one's is granted by the first, and it wins.
const leaderLossStagger = 200 * time.Millisecond

// connLost is called when a connection this node accepted on its Raft listener ends from the other
// side.
func (q *Quorum) connLost() {
	select {
	case q.peerLost <- struct{}{}:
	default:
	}
}

// watchLeaderLoss elects at once when the leader's process is gone; it returns when ctx is done. It
// probes the leader's address when a connection from another voter closed, and every 100ms while the
// leader has been silent for longer than the leader lease (a live leader heartbeats ten times per
// heartbeat timeout): a closed connection is the quick sign, but not every follower holds one.
func (q *Quorum) watchLeaderLoss(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.peerLost:
		case <-t.C:
			if time.Since(q.raft.LastContact()) < q.cfg.LeaderLeaseTimeout || q.raft.State() != raft.Follower {
				continue
			}
		}
		addr, id := q.raft.LeaderWithID()
		if id == "" || id == serverID(q.cfg.NodeID) || !q.addrGone(ctx, string(addr)) {
			continue
		}
		q.electNow(ctx, id)
	}
}

// addrGone reports whether addr refuses connections.
func (q *Quorum) addrGone(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		nc.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// electNow shortens Raft's heartbeat timeout on this follower so that it starts an election now
// that the leader dead is gone, and restores it once a new leader is known.
func (q *Quorum) electNow(ctx context.Context, dead raft.ServerID) {
	// Rank among the voters that remain, so that followers do not all stand at once.
	var ids []int32
	for _, v := range q.cfg.Voters {
		if serverID(v.ID) != dead {
			ids = append(ids, v.ID)
		}
	}
	slices.Sort(ids)
	rank := slices.Index(ids, q.cfg.NodeID)
	if rank < 0 {
		return
	}
	timeout := q.cfg.LeaderLeaseTimeout + time.Duration(rank)*leaderLossStagger
	// Raft starts an election once the leader has been silent for the (shortened) timeout; wait
	// until it has.
	if wait := timeout - time.Since(q.raft.LastContact()); wait > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if _, id := q.raft.LeaderWithID(); id != dead {
		return // a new leader already
	}
	q.log.Info("Raft leader is gone; starting an election now", "leader", string(dead))
	orig := q.raft.ReloadableConfig()
	rc := orig
	rc.HeartbeatTimeout, rc.ElectionTimeout = timeout, timeout
	if err := q.raft.ReloadConfig(rc); err != nil {
		q.log.Warn("cannot shorten the Raft heartbeat timeout", "err", err)
		return
	}
	defer func() {
		if err := q.raft.ReloadConfig(orig); err != nil {
			q.log.Warn("cannot restore the Raft heartbeat timeout", "err", err)
		}
	}()
	deadline := time.Now().Add(10 * timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, id := q.raft.LeaderWithID(); id != "" && id != dead {
			return
		}
	}
}

// lostConn reports whether a read error means the other side closed the connection or its process
// ended.
func lostConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
