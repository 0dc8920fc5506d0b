package metadata

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// sessions are the broker sessions of one active controller. They have a mutex of their own, not
// ctlMu, so that a heartbeat of a live broker is never queued behind a proposal that waits for the
// Raft log (an fsync on a busy disk can take seconds): on a loaded machine that queue fenced every
// broker at once.
//
// A session ends early, before its deadline, when the connection that carried the broker's last
// heartbeat is closed by the broker's side: a killed process closes its sockets, so its leaderships
// move at once, while a broker that is silent but connected keeps them for the whole session timeout.
type sessions struct {
	mu sync.Mutex
	m  map[int32]*session
	// applied is the metadata index each broker last reported applied in a heartbeat;
	// appliedCh is closed and replaced whenever it grows (see Quorum.WaitLeadersApplied).
	applied   map[int32]uint64
	appliedCh chan struct{}
	// progressOf is each broker's metadata log progress for DescribeQuorum (nodes.go).
	progressOf map[int32]memberProgress
}

type session struct {
	deadline time.Time
	// conn identifies the connection that carried the last heartbeat (0: in-process or unknown).
	conn uint64
	// heard is set by the first heartbeat this controller receives from the broker.
	heard bool
	// lost, when set, ends the session at the next check with this reason.
	lost string
}

func newSessions() *sessions {
	return &sessions{m: map[int32]*session{}, applied: map[int32]uint64{}, appliedCh: make(chan struct{}), progressOf: map[int32]memberProgress{}}
}

// reportApplied records that broker id has applied the metadata log up to index.
func (s *sessions) reportApplied(id int32, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index > s.applied[id] {
		s.applied[id] = index
		close(s.appliedCh)
		s.appliedCh = make(chan struct{})
	}
}

// appliedIndex is the metadata index broker id last reported applied (0: none yet).
func (s *sessions) appliedIndex(id int32) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[id]
}

// appliedChanged is closed when any broker next reports a higher applied index.
func (s *sessions) appliedChanged() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appliedCh
}

// start gives broker id a session ending at deadline, unless it has one.
func (s *sessions) start(id int32, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[id] == nil {
		s.m[id] = &session{deadline: deadline}
	}
}

// renew extends broker id's session to deadline after a heartbeat that arrived on connection conn.
func (s *sessions) renew(id int32, conn uint64, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = &session{deadline: deadline, conn: conn, heard: true}
}

// end forgets broker id's session (the broker is fenced or re-registered).
func (s *sessions) end(id int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// alive reports whether broker id has a session that has neither expired nor been lost.
func (s *sessions) alive(id int32, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.m[id]
	return se != nil && se.lost == "" && now.Before(se.deadline)
}

// connClosed ends broker id's session if its last heartbeat came on connection conn.
func (s *sessions) connClosed(id int32, conn uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.m[id]
	if conn == 0 || se == nil || se.conn != conn {
		return false
	}
	se.lost = "controller connection closed"
	return true
}

// gone ends broker id's session if this controller has not heard from it yet: a probe found that
// nothing listens at its address any more.
func (s *sessions) gone(id int32, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.m[id]
	if se == nil || se.heard {
		return false
	}
	se.lost = reason
	return true
}

// shift moves every deadline d later: the controller process itself was stalled for d, so it could
// not have read the heartbeats sent meanwhile.
func (s *sessions) shift(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.m {
		se.deadline = se.deadline.Add(d)
	}
}

// expired returns the reason broker id's session is over at now, or "" while it lasts. A broker
// without a session gets one of length timeout.
func (s *sessions) expired(id int32, now time.Time, timeout time.Duration) (reason string, late time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.m[id]
	switch {
	case se == nil:
		s.m[id] = &session{deadline: now.Add(timeout)}
		return "", 0
	case se.lost != "":
		return se.lost, 0
	case now.After(se.deadline):
		return "session expired", now.Sub(se.deadline)
	}
	return "", 0
}

// stallTick is how often watchStalls looks at the clock; stallSlack is how late a tick may be
// before the controller counts the time as a stall of its own.
const (
	stallTick  = 50 * time.Millisecond
	stallSlack = 200 * time.Millisecond
)

// watchStalls detects stalls of the controller process (no CPU for it on a busy machine, a long
// pause) and moves every session deadline by their length, so that the controller does not fence
// brokers for heartbeats it was itself unable to read. It returns when ctx is done.
func (q *Quorum) watchStalls(ctx context.Context, s *sessions) {
	t := time.NewTicker(stallTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The receive time, not the tick's time: a tick can sit in the channel while the
			// process waits for the CPU.
			now := time.Now()
			if late := now.Sub(last) - stallTick; late > stallSlack {
				s.shift(late)
				lvl := slog.LevelDebug
				if late > time.Second {
					lvl = slog.LevelInfo
				}
				q.log.Log(ctx, lvl, "controller was stalled; session deadlines moved", "stall", late.Round(time.Millisecond))
			}
			last = now
		}
	}
}
