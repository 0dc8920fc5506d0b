package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// appendEvent adds a timeline event; it is the only way rows enter the timeline.
// In the same transaction it queues the notification the change announces
// (outbox) and, for an incident opened or reopened, its fault snapshot.
func appendEvent(tx *gorm.DB, incidentID, ticketID *uint, at time.Time, actor, kind, detail string) error {
	if err := announce(tx, incidentID, ticketID, at, actor, kind, detail); err != nil {
		return err
	}
	var inc, tk *uint
	if incidentID != nil {
		v := *incidentID
		inc = &v
	}
	if ticketID != nil {
		v := *ticketID
		tk = &v
	}
	if kind == "comment" {
		detail = clip(detail, 200) // the comment itself is in comments
	}
	return tx.Create(&TimelineEvent{IncidentID: inc, TicketID: tk, At: at, Actor: actor, Kind: kind, Detail: clip(detail, 2000)}).Error
}

// IncidentFilter selects incidents for ListIncidents. Empty fields match all.
type IncidentFilter struct {
	Status   string // a status, or "open" for triggered and acknowledged
	Severity string
	Cluster  string
	Limit    int
}

// ListIncidents returns incidents, newest first.
func (s *Store) ListIncidents(ctx context.Context, f IncidentFilter) ([]Incident, error) {
	q := s.db.WithContext(ctx).Model(&Incident{})
	switch f.Status {
	case "":
	case "open":
		q = q.Where("status IN ?", []string{StatusTriggered, StatusAcknowledged})
	default:
		q = q.Where("status = ?", f.Status)
	}
	if f.Severity != "" {
		q = q.Where("severity = ?", f.Severity)
	}
	if f.Cluster != "" {
		q = q.Where("cluster = ?", f.Cluster)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var out []Incident
	return out, q.Order("id DESC").Limit(f.Limit).Find(&out).Error
}

// IncidentDetail is an incident with everything attached to it.
type IncidentDetail struct {
	Incident
	Alarms   []AlarmInstance `json:"alarms"`
	Timeline []TimelineEvent `json:"timeline"`
	Comments []Comment       `json:"comments"`
	Tickets  []Ticket        `json:"tickets"`
	Snapshot *Snapshot       `json:"snapshot,omitempty"`
}

// GetIncident returns an incident.
func (s *Store) GetIncident(ctx context.Context, id uint) (*Incident, error) {
	var inc Incident
	if err := s.db.WithContext(ctx).First(&inc, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &inc, nil
}

// IncidentDetail returns an incident with its alarms, timeline, comments, linked
// tickets and latest snapshot (without its data).
func (s *Store) IncidentDetail(ctx context.Context, id uint) (*IncidentDetail, error) {
	db := s.db.WithContext(ctx)
	d := &IncidentDetail{Alarms: []AlarmInstance{}, Timeline: []TimelineEvent{}, Comments: []Comment{}, Tickets: []Ticket{}}
	if err := db.First(&d.Incident, id).Error; err != nil {
		return nil, notFound(err)
	}
	if err := db.Where("incident_id = ?", id).Order("starts_at, id").Find(&d.Alarms).Error; err != nil {
		return nil, err
	}
	if err := db.Where("incident_id = ?", id).Order("id").Find(&d.Timeline).Error; err != nil {
		return nil, err
	}
	if err := db.Where("incident_id = ?", id).Order("id").Find(&d.Comments).Error; err != nil {
		return nil, err
	}
	if err := db.Joins("JOIN incident_tickets it ON it.ticket_id = tickets.id").
		Where("it.incident_id = ?", id).Order("tickets.id").Find(&d.Tickets).Error; err != nil {
		return nil, err
	}
	snap, err := s.LatestSnapshot(ctx, id, false)
	if err != nil && err != ErrNotFound {
		return nil, err
	}
	d.Snapshot = snap
	return d, nil
}

// changeIncident runs fn on the incident inside one transaction, saves it and
// records the timeline event fn returns.
func (s *Store) changeIncident(ctx context.Context, id uint, actor string, fn func(tx *gorm.DB, inc *Incident, now time.Time) (kind, detail string, err error)) (*Incident, error) {
	var out Incident
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
		return appendEvent(tx, &out.ID, nil, now, actor, kind, detail)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

func lockForUpdate(tx *gorm.DB) *gorm.DB {
	if tx.Dialector.Name() == "postgres" {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx // SQLite transactions are serialized by the single connection.
}

// AckIncident records that actor acknowledged the incident. Acknowledging a
// resolved or closed incident is a conflict; acknowledging twice is a no-op
// recorded once.
func (s *Store) AckIncident(ctx context.Context, id uint, actor string) (*Incident, error) {
	return s.changeIncident(ctx, id, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		switch inc.Status {
		case StatusTriggered:
		case StatusAcknowledged:
			return "", "", fmt.Errorf("%w: already acknowledged by %s", ErrConflict, inc.FirstAckBy)
		default:
			return "", "", fmt.Errorf("%w: incident is %s", ErrConflict, inc.Status)
		}
		inc.Status = StatusAcknowledged
		if inc.FirstAckAt == nil {
			inc.FirstAckAt, inc.FirstAckBy = &now, actor
		}
		if inc.Assignee == "" {
			inc.Assignee = actor
		}
		return "acknowledged", "", nil
	})
}

// ResolveIncident records that actor resolved the incident by hand.
func (s *Store) ResolveIncident(ctx context.Context, id uint, actor, note string) (*Incident, error) {
	return s.changeIncident(ctx, id, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		if !inc.Open() {
			return "", "", fmt.Errorf("%w: incident is %s", ErrConflict, inc.Status)
		}
		inc.Status, inc.ResolvedAt, inc.ResolvedBy = StatusResolved, &now, actor
		if inc.MitigatedAt == nil {
			inc.MitigatedAt = &now
		}
		return "resolved", note, nil
	})
}

// CloseIncident closes a resolved incident: it will not reopen.
func (s *Store) CloseIncident(ctx context.Context, id uint, actor string) (*Incident, error) {
	return s.changeIncident(ctx, id, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		if inc.Status != StatusResolved {
			return "", "", fmt.Errorf("%w: only a resolved incident can be closed (it is %s)", ErrConflict, inc.Status)
		}
		inc.Status, inc.ClosedAt = StatusClosed, &now
		return "closed", "", nil
	})
}

// AssignIncident sets the incident's assignee.
func (s *Store) AssignIncident(ctx context.Context, id uint, actor, assignee string) (*Incident, error) {
	return s.changeIncident(ctx, id, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		if inc.Status == StatusClosed {
			return "", "", fmt.Errorf("%w: incident is closed", ErrConflict)
		}
		inc.Assignee = assignee
		return "assigned", assignee, nil
	})
}

// CommentIncident adds a comment to an incident.
func (s *Store) CommentIncident(ctx context.Context, id uint, actor, body string) (*Comment, error) {
	var c Comment
	_, err := s.changeIncident(ctx, id, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		id := inc.ID
		c = Comment{IncidentID: &id, Author: actor, Body: body, CreatedAt: now}
		return "comment", body, tx.Create(&c).Error
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// LinkTicket links an incident and a ticket; linking twice is a conflict.
func (s *Store) LinkTicket(ctx context.Context, incidentID, ticketID uint, actor string) error {
	_, err := s.changeIncident(ctx, incidentID, actor, func(tx *gorm.DB, inc *Incident, now time.Time) (string, string, error) {
		var t Ticket
		if err := tx.First(&t, ticketID).Error; err != nil {
			return "", "", fmt.Errorf("ticket %d: %w", ticketID, notFound(err))
		}
		var n int64
		if err := tx.Model(&IncidentTicket{}).Where("incident_id = ? AND ticket_id = ?", incidentID, ticketID).Count(&n).Error; err != nil {
			return "", "", err
		}
		if n > 0 {
			return "", "", fmt.Errorf("%w: ticket %d is already linked", ErrConflict, ticketID)
		}
		if err := tx.Create(&IncidentTicket{IncidentID: incidentID, TicketID: ticketID, CreatedAt: now}).Error; err != nil {
			return "", "", err
		}
		tid := t.ID
		if err := appendEvent(tx, nil, &tid, now, actor, "incident_linked", fmt.Sprintf("incident #%d", incidentID)); err != nil {
			return "", "", err
		}
		return "ticket_linked", fmt.Sprintf("ticket #%d %s", t.ID, t.Title), nil
	})
	return err
}

// SaveSnapshot attaches a fault snapshot to an incident and records it on the
// timeline.
func (s *Store) SaveSnapshot(ctx context.Context, snap *Snapshot) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(snap).Error; err != nil {
			return err
		}
		return appendEvent(tx, &snap.IncidentID, nil, s.now(), "sluice", "snapshot", snap.Diagnosis)
	})
}

// LatestSnapshot returns the newest snapshot of an incident, with its data if
// withData.
func (s *Store) LatestSnapshot(ctx context.Context, incidentID uint, withData bool) (*Snapshot, error) {
	q := s.db.WithContext(ctx).Where("incident_id = ?", incidentID).Order("id DESC")
	if !withData {
		q = q.Omit("data")
	}
	var snap Snapshot
	if err := q.First(&snap).Error; err != nil {
		return nil, notFound(err)
	}
	return &snap, nil
}

// IncidentsDetectedSince returns the incidents detected at or after t, for SLA
// reports.
func (s *Store) IncidentsDetectedSince(ctx context.Context, t time.Time) ([]Incident, error) {
	var out []Incident
	return out, s.db.WithContext(ctx).Where("detected_at >= ?", t.UTC()).Order("id").Find(&out).Error
}

// FiringAlarms returns the alarms firing now, newest first, at most limit.
func (s *Store) FiringAlarms(ctx context.Context, limit int) ([]AlarmInstance, error) {
	var out []AlarmInstance
	return out, s.db.WithContext(ctx).Where("status = ?", AlarmFiring).Order("starts_at DESC, id DESC").Limit(limit).Find(&out).Error
}
