package tickets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/store"
)

// Changes are announced through the store's outbox: the store writes the
// message in the transaction of the change (store.appendEvent), and
// outboxWorker delivers it afterwards, retrying with notify.RetryDelay, so a
// change is announced even when the service stops before sending it. Fault
// snapshots of opened incidents are queued the same way (snapshot_jobs).

const (
	// outboxLease is how long a claimed message is held before another
	// drainer may take it (longer than one delivery attempt).
	outboxLease = 2 * time.Minute
	// snapshotLease is the same for a snapshot job.
	snapshotLease = 5 * time.Minute
	// workerPoll is how often the workers look for due work when nobody
	// kicked them.
	workerPoll = 2 * time.Second
	// outboxKeep is how long settled messages stay in the table.
	outboxKeep = 7 * 24 * time.Hour
	// housekeepingEvery is how often expired sessions and old outbox
	// messages are deleted.
	housekeepingEvery = 10 * time.Minute
)

// housekeeping deletes expired sessions and settled outbox messages past
// outboxKeep.
func (s *Service) housekeeping(ctx context.Context) {
	if n, err := s.store.PurgeSessions(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("purge expired sessions", "err", err)
	} else if n > 0 {
		s.log.Debug("expired sessions purged", "count", n)
	}
	if err := s.store.PruneOutbox(ctx, s.store.Now().Add(-outboxKeep)); err != nil && ctx.Err() == nil {
		s.log.Warn("outbox prune", "err", err)
	}
}

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

// kick wakes the outbox and snapshot workers after a change.
func (s *Service) kick() {
	for _, ch := range []chan struct{}{s.outboxKick, s.snapKick} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *Service) outboxWorker(ctx context.Context) {
	defer s.workers.Done()
	t := time.NewTicker(workerPoll)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		if _, err := s.drainOutbox(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("outbox", "err", err)
		}
		if time.Since(lastPrune) > housekeepingEvery {
			s.housekeeping(ctx)
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.outboxKick:
		case <-t.C:
		}
	}
}

// drainOutbox delivers the due messages of the outbox and returns how many it
// settled.
func (s *Service) drainOutbox(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		due, err := s.store.PendingOutbox(ctx, 50)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, m := range due {
			if err := s.deliver(ctx, m.ID); err != nil {
				if errors.Is(err, store.ErrOutboxClaimed) {
					continue
				}
				return n, err
			}
			n++
		}
	}
	return n, ctx.Err()
}

// deliver claims message id, makes one delivery attempt and records the
// outcome.
func (s *Service) deliver(ctx context.Context, id uint) error {
	m, err := s.store.ClaimOutbox(ctx, id, outboxLease)
	if err != nil {
		return err
	}
	var done []string
	if m.DeliveredTo != "" {
		done = strings.Split(m.DeliveredTo, ",")
	}
	if !s.notifier.Wants(m.Kind) {
		return s.store.SettleOutbox(ctx, m.ID, done, time.Time{}, false, nil)
	}
	ev, err := s.outboxEvent(ctx, m)
	if err != nil {
		return s.store.SettleOutbox(ctx, m.ID, done, time.Time{}, true, err)
	}
	if ev.Incident != nil && ev.Incident.Transient && (m.Kind == store.NoticeIncidentOpened || m.Kind == store.NoticeIncidentResolved) {
		// Every alarm resolved within the transient window (the page waited
		// it out, see store.IntakePolicy): nobody is paged, for the opening
		// nor for the resolve.
		s.log.Info("transient incident not paged", "incident", ev.Incident.ID, "title", ev.Incident.Title, "notice", m.Kind)
		return s.store.SettleOutbox(ctx, m.ID, done, time.Time{}, false, nil)
	}
	nowDone, retry, delay, sendErr := s.notifier.Deliver(ctx, ev, done)
	if sendErr != nil && ctx.Err() != nil {
		// Stopping: leave the claim to expire; the message is retried then.
		return ctx.Err()
	}
	giveUp := sendErr != nil && (!retry || m.Attempts+1 >= notify.MaxAttempts)
	next := s.store.Now().Add(notify.RetryDelay(m.Attempts+1, delay))
	if sendErr != nil {
		s.log.Warn("notification failed", "message", m.ID, "kind", m.Kind, "attempt", m.Attempts+1, "give_up", giveUp, "err", sendErr)
	}
	return s.store.SettleOutbox(ctx, m.ID, nowDone, next, giveUp, sendErr)
}

// outboxEvent turns a message into the event the notifier renders, with the
// incident or ticket as it is now.
func (s *Service) outboxEvent(ctx context.Context, m *store.OutboxMessage) (notify.Event, error) {
	ev := notify.Event{Kind: m.Kind, Actor: m.Actor, Detail: m.Detail, At: m.CreatedAt}
	if ev.Actor == "alertmanager" {
		ev.Actor = "" // changes made by alarms, not by a person
	}
	switch {
	case m.IncidentID != nil:
		inc, err := s.store.GetIncident(ctx, *m.IncidentID)
		if err != nil {
			return ev, fmt.Errorf("incident %d: %w", *m.IncidentID, err)
		}
		ev.Incident, ev.URL = inc, s.pageURL(fmt.Sprintf("/incidents/%d", inc.ID))
		ev.Tenant = s.tenantRoute(ctx, inc.ID)
	case m.TicketID != nil:
		d, err := s.store.TicketDetail(ctx, *m.TicketID)
		if err != nil {
			return ev, fmt.Errorf("ticket %d: %w", *m.TicketID, err)
		}
		ev.Ticket, ev.URL = &d.Ticket, s.pageURL(fmt.Sprintf("/tickets/%d", d.Ticket.ID))
	}
	return ev, nil
}

func (s *Service) snapshotWorker(ctx context.Context) {
	defer s.workers.Done()
	t := time.NewTicker(workerPoll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			jobs, err := s.store.PendingSnapshotJobs(ctx, 1)
			if err != nil || len(jobs) == 0 {
				break
			}
			s.runSnapshotJob(ctx, jobs[0])
		}
		select {
		case <-ctx.Done():
			return
		case <-s.snapKick:
		case <-t.C:
		}
	}
}

func (s *Service) runSnapshotJob(ctx context.Context, job store.SnapshotJob) {
	ok, err := s.store.ClaimSnapshotJob(ctx, job.ID, snapshotLease)
	if err != nil || !ok {
		return
	}
	_, err = s.captureSnapshot(ctx, job.IncidentID, job.Reason)
	if err != nil && ctx.Err() != nil {
		return // stopping: the claim expires and the job runs after the restart
	}
	giveUp := err != nil && (errors.Is(err, store.ErrNotFound) || job.Attempts+1 >= notify.MaxAttempts)
	if err != nil {
		s.log.Warn("fault snapshot failed", "incident", job.IncidentID, "attempt", job.Attempts+1, "err", err)
	}
	if ferr := s.store.FinishSnapshotJob(ctx, job.ID, s.store.Now().Add(notify.RetryDelay(job.Attempts+1, 0)), giveUp, err); ferr != nil && ctx.Err() == nil {
		s.log.Warn("snapshot job", "job", job.ID, "err", ferr)
	}
}
