package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Notification kinds of the outbox; package notify sends them.
const (
	NoticeIncidentOpened       = "incident_opened"
	NoticeIncidentReopened     = "incident_reopened"
	NoticeIncidentAcknowledged = "incident_acknowledged"
	NoticeIncidentResolved     = "incident_resolved"
	NoticeIncidentClosed       = "incident_closed"
	NoticeIncidentAssigned     = "incident_assigned"
	NoticeIncidentCommented    = "incident_commented"
	NoticeIncidentTicketLinked = "incident_ticket_linked"
	NoticeTicketFiled          = "ticket_filed"
	NoticeTicketStatus         = "ticket_status"
	NoticeTicketAssigned       = "ticket_assigned"
	NoticeTicketCommented      = "ticket_commented"
)

// incidentNotices and ticketNotices map timeline event kinds to the
// notification they announce; other kinds (alarm_firing, snapshot, ...) are
// not announced.
var (
	incidentNotices = map[string]string{
		"created": NoticeIncidentOpened, "reopened": NoticeIncidentReopened,
		"acknowledged": NoticeIncidentAcknowledged, "resolved": NoticeIncidentResolved,
		"closed": NoticeIncidentClosed, "assigned": NoticeIncidentAssigned,
		"comment": NoticeIncidentCommented, "ticket_linked": NoticeIncidentTicketLinked,
	}
	ticketNotices = map[string]string{
		"created": NoticeTicketFiled, "status": NoticeTicketStatus,
		"assigned": NoticeTicketAssigned, "comment": NoticeTicketCommented,
	}
)

// announce writes the outbox message of a timeline event, and queues a
// snapshot job for an opened or reopened incident.
func announce(tx *gorm.DB, incidentID, ticketID *uint, at time.Time, actor, kind, detail string) error {
	var notice string
	switch {
	case incidentID != nil:
		notice = incidentNotices[kind]
		if kind == "created" || kind == "reopened" {
			job := SnapshotJob{IncidentID: *incidentID, Reason: "incident " + kind, CreatedAt: at, NextAttemptAt: at}
			if err := tx.Create(&job).Error; err != nil {
				return err
			}
		}
	case ticketID != nil:
		notice = ticketNotices[kind]
		if kind == "status" {
			// "new → in_progress": the notification names the new status.
			if _, after, ok := strings.Cut(detail, "→ "); ok {
				detail = after
			}
		}
	}
	if notice == "" {
		return nil
	}
	m := OutboxMessage{Kind: notice, IncidentID: copyID(incidentID), TicketID: copyID(ticketID), Actor: actor,
		Detail: clip(detail, 4000), CreatedAt: at, NextAttemptAt: at}
	return tx.Create(&m).Error
}

func copyID(id *uint) *uint {
	if id == nil {
		return nil
	}
	v := *id
	return &v
}

// PendingOutbox returns up to limit messages due at now that are neither
// delivered nor given up, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error) {
	var out []OutboxMessage
	return out, s.db.WithContext(ctx).Where("delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?", s.now()).
		Order("id").Limit(limit).Find(&out).Error
}

// OutboxMessage returns one message of the outbox.
func (s *Store) OutboxMessage(ctx context.Context, id uint) (*OutboxMessage, error) {
	var m OutboxMessage
	if err := s.db.WithContext(ctx).First(&m, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &m, nil
}

// ErrOutboxClaimed is returned by ClaimOutbox when the message is settled or
// another drainer holds it.
var ErrOutboxClaimed = errors.New("outbox message settled or claimed elsewhere")

// ClaimOutbox takes message id for delivery for lease: one conditional UPDATE,
// so of two drainers (two instances on one PostgreSQL) only one gets it. The
// message comes back due after lease if its drainer dies before SettleOutbox.
func (s *Store) ClaimOutbox(ctx context.Context, id uint, lease time.Duration) (*OutboxMessage, error) {
	now := s.now()
	db := s.db.WithContext(ctx)
	res := db.Model(&OutboxMessage{}).
		Where("id = ? AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?", id, now).
		Update("next_attempt_at", now.Add(lease))
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, ErrOutboxClaimed
	}
	var m OutboxMessage
	if err := db.First(&m, id).Error; err != nil {
		return nil, notFound(err)
	}
	return &m, nil
}

// SettleOutbox records the outcome of a delivery attempt of a claimed message:
// delivered (sendErr nil), given up (giveUp), or retried at next. done lists
// the integrations that have the message now.
func (s *Store) SettleOutbox(ctx context.Context, id uint, done []string, next time.Time, giveUp bool, sendErr error) error {
	now := s.now()
	upd := map[string]any{"attempts": gorm.Expr("attempts + 1"), "delivered_to": strings.Join(done, ",")}
	switch {
	case sendErr == nil:
		upd["delivered_at"], upd["last_error"] = now, ""
	case giveUp:
		upd["failed_at"], upd["last_error"] = now, clip(sendErr.Error(), 2000)
	default:
		upd["next_attempt_at"], upd["last_error"] = next, clip(sendErr.Error(), 2000)
	}
	return s.db.WithContext(ctx).Model(&OutboxMessage{}).Where("id = ?", id).Updates(upd).Error
}

// OutboxCounts returns how many messages wait for delivery and how many were
// given up.
func (s *Store) OutboxCounts(ctx context.Context) (pending, failed int64, err error) {
	db := s.db.WithContext(ctx).Model(&OutboxMessage{})
	if err := db.Where("delivered_at IS NULL AND failed_at IS NULL").Count(&pending).Error; err != nil {
		return 0, 0, err
	}
	err = s.db.WithContext(ctx).Model(&OutboxMessage{}).Where("failed_at IS NOT NULL").Count(&failed).Error
	return pending, failed, err
}

// PruneOutbox deletes settled messages older than before.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) error {
	return s.db.WithContext(ctx).Where("(delivered_at IS NOT NULL OR failed_at IS NOT NULL) AND created_at < ?", before).
		Delete(&OutboxMessage{}).Error
}

// ClaimSnapshotJob takes a due job for lease, like ClaimOutbox.
func (s *Store) ClaimSnapshotJob(ctx context.Context, id uint, lease time.Duration) (bool, error) {
	now := s.now()
	res := s.db.WithContext(ctx).Model(&SnapshotJob{}).Where("id = ? AND done_at IS NULL AND next_attempt_at <= ?", id, now).
		Update("next_attempt_at", now.Add(lease))
	return res.RowsAffected == 1, res.Error
}

// PendingSnapshotJobs returns up to limit snapshot jobs due at now, oldest
// first.
func (s *Store) PendingSnapshotJobs(ctx context.Context, limit int) ([]SnapshotJob, error) {
	var out []SnapshotJob
	return out, s.db.WithContext(ctx).Where("done_at IS NULL AND next_attempt_at <= ?", s.now()).Order("id").Limit(limit).Find(&out).Error
}

// FinishSnapshotJob marks a job done, or, with err, schedules its retry at
// next; giveUp marks it done with the error kept.
func (s *Store) FinishSnapshotJob(ctx context.Context, id uint, next time.Time, giveUp bool, jobErr error) error {
	upd := map[string]any{"attempts": gorm.Expr("attempts + 1")}
	switch {
	case jobErr == nil:
		upd["done_at"], upd["last_error"] = s.now(), ""
	case giveUp:
		upd["done_at"], upd["last_error"] = s.now(), clip(jobErr.Error(), 2000)
	default:
		upd["next_attempt_at"], upd["last_error"] = next, clip(jobErr.Error(), 2000)
	}
	return s.db.WithContext(ctx).Model(&SnapshotJob{}).Where("id = ?", id).Updates(upd).Error
}
