package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
)

// CreateTicket files a ticket and records it on the timeline; status and
// priority must already be valid (the API validates input).
func (s *Store) CreateTicket(ctx context.Context, t *Ticket, actor string) error {
	now := s.now()
	t.ID, t.CreatedAt, t.UpdatedAt = 0, now, now
	if t.Status == "" {
		t.Status = "new"
	}
	if !slices.Contains(TicketStatuses, t.Status) || !slices.Contains(Priorities, t.Priority) {
		return fmt.Errorf("%w: invalid status or priority", ErrConflict)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return createTicket(tx, t, actor, now)
	})
}

func createTicket(tx *gorm.DB, t *Ticket, actor string, now time.Time) error {
	if err := tx.Create(t).Error; err != nil {
		return err
	}
	return appendEvent(tx, nil, &t.ID, now, actor, "created", t.Title)
}

// CreateTicketLinked files a ticket and, if incidentID is not 0, links it to
// that incident, all in one transaction.
func (s *Store) CreateTicketLinked(ctx context.Context, t *Ticket, actor string, incidentID uint) error {
	if incidentID == 0 {
		return s.CreateTicket(ctx, t, actor)
	}
	now := s.now()
	t.ID, t.CreatedAt, t.UpdatedAt = 0, now, now
	if t.Status == "" {
		t.Status = "new"
	}
	_, err := s.changeIncident(ctx, incidentID, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		if err := createTicket(tx, t, actor, now); err != nil {
			return "", "", err
		}
		if err := tx.Create(&IncidentTicket{IncidentID: inc.ID, TicketID: t.ID, CreatedAt: now}).Error; err != nil {
			return "", "", err
		}
		tid := t.ID
		if err := appendEvent(tx, nil, &tid, now, actor, "incident_linked", fmt.Sprintf("incident #%d", inc.ID)); err != nil {
			return "", "", err
		}
		return "ticket_linked", fmt.Sprintf("ticket #%d %s", t.ID, t.Title), nil
	})
	return err
}

// TicketFilter selects tickets for ListTickets. Empty fields match all.
type TicketFilter struct {
	Status   string // a status, or "open" for all but resolved and closed
	Priority string
	Assignee string
	Limit    int
}

// ListTickets returns tickets, newest first.
func (s *Store) ListTickets(ctx context.Context, f TicketFilter) ([]Ticket, error) {
	q := s.db.WithContext(ctx).Model(&Ticket{})
	switch f.Status {
	case "":
	case "open":
		q = q.Where("status NOT IN ?", []string{"resolved", "closed"})
	default:
		q = q.Where("status = ?", f.Status)
	}
	if f.Priority != "" {
		q = q.Where("priority = ?", f.Priority)
	}
	if f.Assignee != "" {
		q = q.Where("assignee = ?", f.Assignee)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var out []Ticket
	return out, q.Order("id DESC").Limit(f.Limit).Find(&out).Error
}

// TicketDetail is a ticket with its comments, timeline and linked incidents.
type TicketDetail struct {
	Ticket
	Comments  []Comment       `json:"comments"`
	Timeline  []TimelineEvent `json:"timeline"`
	Incidents []Incident      `json:"incidents"`
}

// TicketDetail returns a ticket with everything attached to it.
func (s *Store) TicketDetail(ctx context.Context, id uint) (*TicketDetail, error) {
	db := s.db.WithContext(ctx)
	d := &TicketDetail{Comments: []Comment{}, Timeline: []TimelineEvent{}, Incidents: []Incident{}}
	if err := db.First(&d.Ticket, id).Error; err != nil {
		return nil, notFound(err)
	}
	if err := db.Where("ticket_id = ?", id).Order("id").Find(&d.Comments).Error; err != nil {
		return nil, err
	}
	if err := db.Where("ticket_id = ?", id).Order("id").Find(&d.Timeline).Error; err != nil {
		return nil, err
	}
	if err := db.Joins("JOIN incident_tickets it ON it.incident_id = incidents.id").
		Where("it.ticket_id = ?", id).Order("incidents.id").Find(&d.Incidents).Error; err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Store) changeTicket(ctx context.Context, id uint, actor string, fn func(tx *gorm.DB, t *Ticket, now time.Time) (kind, detail string, err error)) (*Ticket, error) {
	var out Ticket
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockForUpdate(tx).First(&out, id).Error; err != nil {
			return notFound(err)
		}
		now := s.now()
		kind, detail, err := fn(tx, &out, now)
		if err != nil {
			return err
		}
		out.UpdatedAt = now
		if err := tx.Select("*").Save(&out).Error; err != nil {
			return err
		}
		return appendEvent(tx, nil, &out.ID, now, actor, kind, detail)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SetTicketStatus moves a ticket to status. A closed ticket stays closed.
func (s *Store) SetTicketStatus(ctx context.Context, id uint, actor, status string) (*Ticket, error) {
	return s.changeTicket(ctx, id, actor, func(tx *gorm.DB, t *Ticket, now time.Time) (string, string, error) {
		if !slices.Contains(TicketStatuses, status) {
			return "", "", fmt.Errorf("%w: unknown status %q", ErrConflict, status)
		}
		if t.Status == "closed" {
			return "", "", fmt.Errorf("%w: ticket is closed", ErrConflict)
		}
		if t.Status == status {
			return "", "", fmt.Errorf("%w: ticket is already %s", ErrConflict, status)
		}
		old := t.Status
		t.Status = status
		return "status", old + " → " + status, nil
	})
}

// AssignTicket sets a ticket's assignee.
func (s *Store) AssignTicket(ctx context.Context, id uint, actor, assignee string) (*Ticket, error) {
	return s.changeTicket(ctx, id, actor, func(tx *gorm.DB, t *Ticket, now time.Time) (string, string, error) {
		t.Assignee = assignee
		return "assigned", assignee, nil
	})
}

// CommentTicket adds a comment to a ticket.
func (s *Store) CommentTicket(ctx context.Context, id uint, actor, body string) (*Comment, error) {
	var c Comment
	_, err := s.changeTicket(ctx, id, actor, func(tx *gorm.DB, t *Ticket, now time.Time) (string, string, error) {
		tid := t.ID
		c = Comment{TicketID: &tid, Author: actor, Body: body, CreatedAt: now}
		return "comment", body, tx.Create(&c).Error
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}
