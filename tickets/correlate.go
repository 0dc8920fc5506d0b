package tickets

import (
	"context"
	"time"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// intakePolicy diagnoses the cause of each new firing alarm of sig from the
// cluster's state now, when the alarm arrives (not when a snapshot worker gets
// to it, by which time a short fault may be over), so alarms with one cause
// join one incident titled from the diagnosis.
func (s *Service) intakePolicy(ctx context.Context, sig store.GroupSignal) store.IntakePolicy {
	p := store.IntakePolicy{ReopenWindow: s.cfg.ReopenWindow, DefaultCluster: s.cfg.DefaultCluster,
		TransientWindow: s.cfg.TransientWindow}
	fresh, err := s.store.NewFiring(ctx, sig)
	if err != nil || len(fresh) == 0 {
		return p
	}
	state := s.capturer.ClusterState(ctx, s.store.Now())
	if state.Cluster != nil {
		p.ClusterID, p.MetadataIndex = state.Cluster.ID, state.Cluster.MetadataIndex
	}
	p.Causes = map[string]*store.Cause{}
	for _, a := range fresh {
		c := snapshot.CauseOf(a.Labels, state)
		if c == nil {
			continue
		}
		p.Causes[a.Fingerprint] = &store.Cause{Key: c.Key, Title: c.Title, Severity: c.Severity, Impact: c.Impact}
		s.log.Debug("alarm diagnosed", "alertname", a.Labels["alertname"], "cause", c.Key, "title", c.Title)
	}
	return p
}

// pendingPage is a new incident whose page waits out the transient window.
type pendingPage struct {
	id  uint
	due time.Time
}

// pageWorker pages new incidents once their transient window has passed and
// they are still open: an incident whose alarms all resolved within it is
// transient and never pages. Pages are due in the order they are queued (one
// window for all).
func (s *Service) pageWorker(ctx context.Context) {
	defer s.workers.Done()
	for {
		var p pendingPage
		select {
		case <-ctx.Done():
			return
		case p = <-s.pageQueue:
		}
		if wait := time.Until(p.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		inc, err := s.store.GetIncident(ctx, p.id)
		if err != nil {
			continue
		}
		if inc.Transient || !inc.Open() {
			s.log.Info("incident resolved within the transient window; not paged", "incident", inc.ID, "title", inc.Title)
			continue
		}
		s.incidentEvent(ctx, notify.IncidentOpened, "", "", inc.ID, inc)
	}
}

// pageLater queues the page of a new incident; when the queue is full it pages
// at once rather than not at all.
func (s *Service) pageLater(ctx context.Context, inc *store.Incident) {
	select {
	case s.pageQueue <- pendingPage{id: inc.ID, due: time.Now().Add(s.cfg.TransientWindow)}:
	default:
		s.incidentEvent(ctx, notify.IncidentOpened, "", "", inc.ID, inc)
	}
}
