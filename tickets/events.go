package tickets

import (
	"context"
	"fmt"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// Changes are notified after their transaction committed, from the request
// that made them; the notifier sends in the background.

// pageURL is the absolute URL of a page of this service, for links in
// notifications.
func (s *Service) pageURL(path string) string {
	base := s.cfg.ExternalURL
	if base == "" {
		base = "http://" + s.cfg.Listen
		if s.addr != "" {
			base = "http://" + s.addr
		}
	}
	return base + path
}

// incidentEvent notifies a change of incident id; inc may be given when the
// caller has it fresh.
func (s *Service) incidentEvent(ctx context.Context, kind, actor, detail string, id uint, inc *store.Incident) {
	if !s.notifier.Enabled() {
		return
	}
	if inc == nil {
		var err error
		if inc, err = s.store.GetIncident(ctx, id); err != nil {
			s.log.Warn("notification: incident not found", "incident", id, "err", err)
			return
		}
	}
	s.notifier.Enqueue(notify.Event{Kind: kind, Actor: actor, Detail: detail, Incident: inc,
		URL: s.pageURL(fmt.Sprintf("/incidents/%d", inc.ID)), At: s.store.Now()})
}

// ticketEvent notifies a change of ticket id; t may be given when the caller
// has it fresh.
func (s *Service) ticketEvent(ctx context.Context, kind, actor, detail string, id uint, t *store.Ticket) {
	if !s.notifier.Enabled() {
		return
	}
	if t == nil {
		d, err := s.store.TicketDetail(ctx, id)
		if err != nil {
			s.log.Warn("notification: ticket not found", "ticket", id, "err", err)
			return
		}
		t = &d.Ticket
	}
	s.notifier.Enqueue(notify.Event{Kind: kind, Actor: actor, Detail: detail, Ticket: t,
		URL: s.pageURL(fmt.Sprintf("/tickets/%d", t.ID)), At: s.store.Now()})
}

// intakeEvents notifies what an Alertmanager notification opened, reopened
// and resolved.
func (s *Service) intakeEvents(ctx context.Context, res store.IntakeResult) {
	if !s.notifier.Enabled() {
		return
	}
	for _, id := range res.Opened {
		inc, err := s.store.GetIncident(ctx, id)
		if err != nil {
			continue
		}
		if inc.ReopenCount > 0 { // a new incident has none
			s.incidentEvent(ctx, notify.IncidentReopened, "", "", id, inc)
			continue
		}
		s.pageLater(ctx, inc)
	}
	for _, id := range res.Resolved {
		inc, err := s.store.GetIncident(ctx, id)
		if err != nil || inc.Transient {
			continue // a transient incident never paged: no resolve either
		}
		s.incidentEvent(ctx, notify.IncidentResolved, "", "", id, inc)
	}
}
