package group

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// timerQueue is the one timer of the coordinator: a min-heap of group
// deadlines that Run sleeps on. A group has at most one live entry, the one
// whose time equals its timerAt; entries superseded by an earlier deadline are
// dropped when they surface. Deadlines that move later (a heartbeat) are not
// pushed at all: the earlier entry fires, the group finds nothing due and arms
// its real next deadline.
type timerQueue struct {
	mu   sync.Mutex
	h    timerHeap
	wake chan struct{}
}

type timerEntry struct {
	at time.Time
	g  *group
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerEntry{}
	*h = old[:len(old)-1]
	return e
}

func (q *timerQueue) init() { q.wake = make(chan struct{}, 1) }

// schedule makes Run examine g no later than t.
func (q *timerQueue) schedule(g *group, t time.Time) {
	q.mu.Lock()
	if !g.timerAt.IsZero() && !t.Before(g.timerAt) {
		q.mu.Unlock()
		return
	}
	g.timerAt = t
	heap.Push(&q.h, timerEntry{at: t, g: g})
	first := q.h[0].g == g && q.h[0].at.Equal(t)
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// due pops the groups whose deadline has passed and returns when the next
// one is due (zero if none).
func (q *timerQueue) due(now time.Time) ([]*group, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var gs []*group
	for len(q.h) > 0 && !q.h[0].at.After(now) {
		e := heap.Pop(&q.h).(timerEntry)
		if e.g.timerAt.Equal(e.at) {
			e.g.timerAt = time.Time{}
			gs = append(gs, e.g)
		}
	}
	if len(q.h) == 0 {
		return gs, time.Time{}
	}
	return gs, q.h[0].at
}

// Run fires the coordinator's timers until ctx is done or Close is called:
// member session expiry, the join and sync windows of rebalances, the
// initial rebalance delay, and the periodic expiry of old offsets. When it
// returns it has closed the Coordinator, so no request stays blocked. It
// returns nil on a clean stop and an error if Run is already running.
func (c *Coordinator) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("group coordinator: Run is already running")
	}
	defer c.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sweep := time.NewTicker(c.cfg.OffsetsRetentionCheckInterval)
	defer sweep.Stop()
	for {
		now := c.now()
		due, next := c.timers.due(now)
		for _, g := range due {
			g.mu.Lock()
			g.expire(ctx, now)
			g.mu.Unlock()
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(c.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-c.done:
			return nil
		case <-c.timers.wake:
		case <-timer.C:
		case <-sweep.C:
			c.expireOffsets(ctx)
		case <-c.topicWake:
			c.applyTopicChanges(ctx)
		}
	}
}
