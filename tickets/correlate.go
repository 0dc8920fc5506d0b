package tickets

import (
	"context"

	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// intakePolicy diagnoses the cause of each new firing alarm of sig from the
// cluster's state now, when the alarm arrives (not when a snapshot worker gets
// to it, by which time a short fault may be over), so alarms with one cause
// join one incident titled from the diagnosis.
func (s *Service) intakePolicy(ctx context.Context, sig store.GroupSignal) store.IntakePolicy {
	p := store.IntakePolicy{ReopenWindow: s.cfg.ReopenWindow, DefaultCluster: s.cfg.DefaultCluster,
		TransientWindow: max(s.cfg.TransientWindow, 0)}
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
