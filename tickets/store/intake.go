package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// AlarmSignal is one alert of a notification, in the words of the store.
type AlarmSignal struct {
	Fingerprint  string
	Status       string // AlarmFiring or AlarmResolved
	StartsAt     time.Time
	EndsAt       time.Time
	Labels       map[string]string
	Annotations  map[string]string
	GeneratorURL string
}

// GroupSignal is one notification of an alert group: the whole current group, not
// a delta. Its top-level status is not trusted; every alert carries its own.
type GroupSignal struct {
	GroupKey          string
	Receiver          string
	ExternalURL       string
	TruncatedAlerts   int
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	Alarms            []AlarmSignal
}

// IntakePolicy decides how signals become incidents.
type IntakePolicy struct {
	// ReopenWindow is how long after resolving an incident a new firing alarm of
	// its group (or cause) reopens it instead of opening a new one.
	ReopenWindow time.Duration
	// DefaultCluster names the cluster of alarms without a cluster label.
	DefaultCluster string
	// Causes are the diagnosed causes of the notification's alarms, by
	// fingerprint. New firing alarms with a cause join the live incident of
	// that cause and cluster, wherever they were grouped; alarms without one
	// join their group's incident.
	Causes map[string]*Cause
	// ClusterID is the Kafka cluster id observed with the notification, empty
	// if unknown. An incident of another cluster id never reopens.
	ClusterID string
	// MetadataIndex is the cluster's metadata log index observed with the
	// notification, 0 if unknown. An incident opened at a larger index never
	// reopens: the brokers' state directories were cleared since.
	MetadataIndex uint64
	// TransientWindow: an incident whose alarms all resolve within this long of
	// its opening is marked transient (and does not page).
	TransientWindow time.Duration
}

// Cause is a diagnosed cause alarms share (snapshot.Cause in the words of the
// store).
type Cause struct {
	// Key identifies the cause within a cluster; it includes the Kafka cluster id.
	Key string
	// Title and Severity are the incident's when the cause opens it.
	Title    string
	Severity string
	// Impact orders diagnoses of one cause: a worse one retitles the incident.
	Impact int
}

// IntakeResult says what a notification changed.
type IntakeResult struct {
	// Opened lists incidents created or reopened by the notification: each needs
	// a fault snapshot.
	Opened []uint `json:"opened"`
	// Touched lists every incident the notification changed.
	Touched []uint `json:"touched"`
	// Resolved lists incidents the notification resolved: all their alarms
	// have resolved.
	Resolved []uint `json:"resolved,omitempty"`
	// NewAlarms, UpdatedAlarms and Ignored count alarms created, changed, and
	// dropped (resolved with no firing seen, or already resolved).
	NewAlarms     int `json:"new_alarms"`
	UpdatedAlarms int `json:"updated_alarms"`
	Ignored       int `json:"ignored"`
}

// IncidentKey is the dedup key of an Alertmanager group: hex SHA-256 of groupKey,
// as Alertmanager's own PagerDuty and Opsgenie notifiers compute it.
func IncidentKey(groupKey string) string {
	h := sha256.Sum256([]byte(groupKey))
	return hex.EncodeToString(h[:])
}

// severityRank orders severities for choosing an incident's severity: the worst
// alarm wins. Unknown severities rank between warning and info.
func severityRank(s string) int {
	switch s {
	case "critical", "page", "p1":
		return 5
	case "error", "high":
		return 4
	case "warning", "warn":
		return 3
	case "info", "low", "none":
		return 1
	}
	return 2
}

// NormalizeSeverity maps the severity label of an alarm to the incident severity.
func NormalizeSeverity(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "warning"
	}
	return s
}

// ApplyGroup records a notification in one transaction: each alarm is upserted by
// fingerprint and startsAt; new firing alarms join the group's live incident
// (creating it, or reopening it within the reopen window); incidents whose alarms
// have all resolved are resolved.
func (s *Store) ApplyGroup(ctx context.Context, g GroupSignal, p IntakePolicy) (IntakeResult, error) {
	var res IntakeResult
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		res = IntakeResult{}
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			return s.applyGroup(tx, g, p, &res)
		})
		// Two notifications of a new group racing on PostgreSQL: the loser hits
		// the live-key index and retries, finding the winner's incident.
		if err == nil || !IsUniqueViolation(err) {
			break
		}
	}
	return res, err
}

// IsUniqueViolation reports whether err is a unique index violation (gorm
// translates both databases' errors).
func IsUniqueViolation(err error) bool { return errors.Is(err, gorm.ErrDuplicatedKey) }

func (s *Store) applyGroup(tx *gorm.DB, g GroupSignal, p IntakePolicy, res *IntakeResult) error {
	now := s.now()
	key := IncidentKey(g.GroupKey)
	touched := map[uint]bool{}
	var group *Incident // the group's live incident, found or made on first need
	caused := map[uint]*Incident{}
	var newFiring []AlarmSignal

	for _, a := range g.Alarms {
		var existing AlarmInstance
		err := tx.Where("fingerprint = ? AND starts_at = ?", a.Fingerprint, a.StartsAt.UTC()).First(&existing).Error
		switch {
		case err == nil:
			// Known alarm, possibly attached to another group's incident: update
			// it where it lives.
			if existing.Status == AlarmResolved {
				if a.Status == AlarmFiring {
					res.Ignored++ // late re-send of a firing already resolved
					continue
				}
				if err := tx.Model(&existing).Update("last_seen_at", now).Error; err != nil {
					return err
				}
				continue
			}
			upd := map[string]any{"last_seen_at": now, "labels": jsonText(a.Labels), "annotations": jsonText(a.Annotations)}
			if a.Status == AlarmResolved {
				ends := a.EndsAt.UTC()
				if a.EndsAt.IsZero() {
					ends = now
				}
				upd["status"] = AlarmResolved
				upd["ends_at"] = ends
				if err := appendEvent(tx, &existing.IncidentID, nil, now, "alertmanager", "alarm_resolved", "left (resolved): "+alarmDesc(a)); err != nil {
					return err
				}
				touched[existing.IncidentID] = true
			}
			if err := tx.Model(&AlarmInstance{}).Where("id = ?", existing.ID).Updates(upd).Error; err != nil {
				return err
			}
			res.UpdatedAlarms++
		case errors.Is(err, gorm.ErrRecordNotFound):
			if a.Status != AlarmFiring {
				// A resolve with no firing seen (Alertmanager #878) creates
				// nothing visible.
				res.Ignored++
				continue
			}
			newFiring = append(newFiring, a)
		default:
			return err
		}
	}

	// New firing alarms join the incident of their cause, or their group's.
	byCause := map[string][]AlarmSignal{}
	var causeKeys []string
	for _, a := range newFiring {
		ck := ""
		if c := p.Causes[a.Fingerprint]; c != nil && c.Key != "" {
			ck = c.Key
		}
		if _, ok := byCause[ck]; !ok {
			causeKeys = append(causeKeys, ck)
		}
		byCause[ck] = append(byCause[ck], a)
	}
	sort.Strings(causeKeys)
	for _, ck := range causeKeys {
		alarms := byCause[ck]
		var cause *Cause
		ikey := key
		if ck != "" {
			cause = p.Causes[alarms[0].Fingerprint]
			cluster := firstNonEmpty(alarms[0].Labels["cluster"], g.CommonLabels["cluster"], p.DefaultCluster)
			ikey = IncidentKey("cause\x00" + cluster + "\x00" + ck)
		}
		inc, opened, err := s.liveIncident(tx, g, alarms, ikey, cause, p, now)
		if err != nil {
			return err
		}
		if ck == "" {
			group = inc
		}
		if opened {
			res.Opened = append(res.Opened, inc.ID)
		} else if cause != nil && cause.Impact > inc.CauseImpact {
			if err := appendEvent(tx, &inc.ID, nil, now, "diagnosis", "retitled", cause.Title); err != nil {
				return err
			}
			inc.Title, inc.CauseImpact = clip(cause.Title, 300), cause.Impact
		}
		for _, a := range alarms {
			al := AlarmInstance{
				IncidentID: inc.ID, Fingerprint: a.Fingerprint, StartsAt: a.StartsAt.UTC(), Status: AlarmFiring,
				AlertName: a.Labels["alertname"], Labels: a.Labels, Annotations: a.Annotations,
				GeneratorURL: a.GeneratorURL, LastSeenAt: now, CreatedAt: now, UpdatedAt: now,
			}
			if err := tx.Create(&al).Error; err != nil {
				return fmt.Errorf("alarm %s: %w", a.Fingerprint, err)
			}
			if err := appendEvent(tx, &inc.ID, nil, now, "alertmanager", "alarm_firing", "joined: "+alarmDesc(a)); err != nil {
				return err
			}
			res.NewAlarms++
			mergeAffected(inc, a.Labels, p.DefaultCluster)
			if r := severityRank(NormalizeSeverity(a.Labels["severity"])); r > severityRank(inc.Severity) {
				inc.Severity = NormalizeSeverity(a.Labels["severity"])
			}
			if a.StartsAt.Before(inc.ImpactStartAt) {
				inc.ImpactStartAt = a.StartsAt.UTC()
			}
		}
		if g.TruncatedAlerts > inc.TruncatedAlerts {
			if err := appendEvent(tx, &inc.ID, nil, now, "alertmanager", "alarms_truncated",
				fmt.Sprintf("Alertmanager left out %d alerts of this group (max_alerts)", g.TruncatedAlerts)); err != nil {
				return err
			}
			inc.TruncatedAlerts = g.TruncatedAlerts
		}
		inc.UpdatedAt = now
		if err := tx.Select("*").Save(inc).Error; err != nil {
			return err
		}
		touched[inc.ID] = true
		if ck != "" {
			// Keep the in-memory incident for the resolve pass below.
			caused[inc.ID] = inc
		}
	}

	// Resolve every touched incident whose alarms are all resolved.
	ids := make([]uint, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		var firing int64
		if err := tx.Model(&AlarmInstance{}).Where("incident_id = ? AND status = ?", id, AlarmFiring).Count(&firing).Error; err != nil {
			return err
		}
		if firing > 0 {
			continue
		}
		var inc Incident
		if group != nil && group.ID == id {
			inc = *group
		} else if c := caused[id]; c != nil {
			inc = *c
		} else if err := tx.First(&inc, id).Error; err != nil {
			return err
		}
		if !inc.Open() {
			continue
		}
		upd := map[string]any{"status": StatusResolved, "resolved_at": now, "resolved_by": "alertmanager", "updated_at": now}
		transient := p.TransientWindow > 0 && inc.ReopenCount == 0 && !inc.Transient && now.Sub(inc.CreatedAt) <= p.TransientWindow
		if transient {
			upd["transient"] = true
		}
		if err := tx.Model(&Incident{}).Where("id = ?", id).Updates(upd).Error; err != nil {
			return err
		}
		if err := appendEvent(tx, &id, nil, now, "alertmanager", "resolved", "all alarms resolved"); err != nil {
			return err
		}
		if transient {
			if err := appendEvent(tx, &id, nil, now, "alertmanager", "transient",
				fmt.Sprintf("every alarm resolved within %s of opening: transient, not paged", now.Sub(inc.CreatedAt).Round(time.Second))); err != nil {
				return err
			}
		}
		res.Resolved = append(res.Resolved, id)
	}
	res.Touched = ids
	return nil
}

// liveIncident returns the incident that new firing alarms of the group join,
// by key (the group's, or their cause's): the live one, the resolved one
// reopened if it resolved within the reopen window and the cluster id is the
// same, or a new one. opened reports whether the incident was created or
// reopened.
func (s *Store) liveIncident(tx *gorm.DB, g GroupSignal, alarms []AlarmSignal, key string, cause *Cause, p IntakePolicy, now time.Time) (*Incident, bool, error) {
	var inc Incident
	err := tx.Where("key = ? AND status <> ?", key, StatusClosed).First(&inc).Error
	sameCluster := err == nil && (inc.ClusterID == "" || p.ClusterID == "" || inc.ClusterID == p.ClusterID) &&
		(p.MetadataIndex == 0 || inc.MetadataIndex <= p.MetadataIndex)
	switch {
	case err == nil && inc.Open():
		return &inc, false, nil
	case err == nil && sameCluster && inc.ResolvedAt != nil && now.Sub(*inc.ResolvedAt) <= p.ReopenWindow:
		detail := fmt.Sprintf("alarm fired again %s after resolving", now.Sub(*inc.ResolvedAt).Round(time.Second))
		inc.ReopenCount++
		inc.ResolvedAt, inc.ResolvedBy, inc.MitigatedAt = nil, "", nil
		if inc.FirstAckAt != nil {
			inc.Status = StatusAcknowledged
		} else {
			inc.Status = StatusTriggered
		}
		if err := appendEvent(tx, &inc.ID, nil, now, "alertmanager", "reopened", detail); err != nil {
			return nil, false, err
		}
		return &inc, true, nil
	case err == nil:
		// Resolved longer ago than the window: close it so it cannot reopen, and
		// open a new incident.
		if err := tx.Model(&Incident{}).Where("id = ?", inc.ID).Updates(map[string]any{
			"status": StatusClosed, "closed_at": now, "updated_at": now}).Error; err != nil {
			return nil, false, err
		}
		why := "group fired again after the reopen window; a new incident was opened"
		if !sameCluster {
			why = "fired again in a cluster whose state was cleared since (another cluster id, or its metadata log started over); a new incident was opened"
		}
		if err := appendEvent(tx, &inc.ID, nil, now, "alertmanager", "closed", why); err != nil {
			return nil, false, err
		}
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return nil, false, err
	}
	first := alarms[0]
	inc = Incident{
		Key: key, GroupKey: g.GroupKey, Receiver: g.Receiver, ExternalURL: g.ExternalURL,
		Title: incidentTitle(g, first), Severity: NormalizeSeverity(firstNonEmpty(g.CommonLabels["severity"], first.Labels["severity"])),
		Status: StatusTriggered, Cluster: firstNonEmpty(g.CommonLabels["cluster"], first.Labels["cluster"], p.DefaultCluster),
		Brokers: []string{}, Topics: []string{}, Groups: []string{}, ClusterID: p.ClusterID, MetadataIndex: p.MetadataIndex,
		ImpactStartAt: first.StartsAt.UTC(), DetectedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if cause != nil {
		inc.Title, inc.CauseKey, inc.CauseImpact = clip(cause.Title, 300), cause.Key, cause.Impact
		if cause.Severity != "" {
			inc.Severity = NormalizeSeverity(cause.Severity)
		}
	}
	if inc.ImpactStartAt.IsZero() || inc.ImpactStartAt.After(now) {
		inc.ImpactStartAt = now
	}
	if err := tx.Create(&inc).Error; err != nil {
		return nil, false, err
	}
	if err := appendEvent(tx, &inc.ID, nil, now, "alertmanager", "created", inc.Title); err != nil {
		return nil, false, err
	}
	if p.TransientWindow > 0 {
		// The page waits out the transient window: an incident whose alarms
		// all resolve within it is transient, and its page is dropped.
		if err := tx.Model(&OutboxMessage{}).Where("incident_id = ? AND kind = ?", inc.ID, NoticeIncidentOpened).
			Update("next_attempt_at", now.Add(p.TransientWindow)).Error; err != nil {
			return nil, false, err
		}
	}
	return &inc, true, nil
}

func incidentTitle(g GroupSignal, a AlarmSignal) string {
	if s := firstNonEmpty(g.CommonAnnotations["summary"], a.Annotations["summary"]); s != "" {
		return clip(s, 300)
	}
	name := firstNonEmpty(g.CommonLabels["alertname"], a.Labels["alertname"], "alert")
	var parts []string
	for _, k := range sortedKeys(g.GroupLabels) {
		if k != "alertname" {
			parts = append(parts, k+"="+g.GroupLabels[k])
		}
	}
	if len(parts) > 0 {
		name += " (" + strings.Join(parts, ", ") + ")"
	}
	return clip(name, 300)
}

// mergeAffected adds the broker, topic and consumer group an alarm names to the
// incident's affected lists.
func mergeAffected(inc *Incident, labels map[string]string, defCluster string) {
	add := func(list *[]string, v string) {
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
			sort.Strings(*list)
		}
	}
	add(&inc.Brokers, firstNonEmpty(labels["broker"], labels["broker_id"]))
	add(&inc.Topics, labels["topic"])
	add(&inc.Groups, firstNonEmpty(labels["consumergroup"], labels["group"]))
	if inc.Cluster == "" {
		inc.Cluster = firstNonEmpty(labels["cluster"], defCluster)
	}
}

func alarmDesc(a AlarmSignal) string {
	var parts []string
	for _, k := range sortedKeys(a.Labels) {
		if k != "alertname" {
			parts = append(parts, k+"="+a.Labels[k])
		}
	}
	return clip(fmt.Sprintf("%s{%s} %s", a.Labels["alertname"], strings.Join(parts, ","), a.Status), 1000)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// NewFiring returns the firing alarms of g the store has not seen (by
// fingerprint and startsAt): the ones whose cause is worth diagnosing.
func (s *Store) NewFiring(ctx context.Context, g GroupSignal) ([]AlarmSignal, error) {
	var out []AlarmSignal
	for _, a := range g.Alarms {
		if a.Status != AlarmFiring {
			continue
		}
		var n int64
		if err := s.db.WithContext(ctx).Model(&AlarmInstance{}).
			Where("fingerprint = ? AND starts_at = ?", a.Fingerprint, a.StartsAt.UTC()).Count(&n).Error; err != nil {
			return nil, err
		}
		if n == 0 {
			out = append(out, a)
		}
	}
	return out, nil
}
