package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Sample sources: how a minute's counter deltas were obtained.
const (
	// SourceMeasured: the broker counters were read at both ends of the
	// minute.
	SourceMeasured = 0
	// SourceSpread: the counters were not read for several minutes (the
	// metrics history has a hole); the delta over the hole was spread evenly
	// over its minutes. Gauges of such a minute are those read at the end of
	// the hole.
	SourceSpread = 1
)

// TenantSample is one tenant's usage in one minute, in integers only: the
// counter deltas of the minute summed over the brokers, the gauges read at
// its end, and the plan limits in force then. Minute is the minute's start
// in Unix minutes (Unix seconds / 60), so a row is a handful of integers.
type TenantSample struct {
	Tenant string `json:"tenant" gorm:"primaryKey"`
	Minute int64  `json:"minute" gorm:"primaryKey;autoIncrement:false"`
	// BytesIn and BytesOut are produced and fetched bytes in the minute; the
	// minute's average bandwidth is BytesIn/60 bytes per second.
	BytesIn  int64 `json:"bytes_in"`
	BytesOut int64 `json:"bytes_out"`
	Requests int64 `json:"requests"`
	// ThrottleMs is the time the tenant's requests were throttled, in ms.
	ThrottleMs      int64 `json:"throttle_ms"`
	DiskBytes       int64 `json:"disk_bytes"`
	Partitions      int64 `json:"partitions"`
	PlanProduceBps  int64 `json:"plan_produce_bps"`
	PlanFetchBps    int64 `json:"plan_fetch_bps"`
	PlanDiskBytes   int64 `json:"plan_disk_bytes"`
	PlanPartitions  int64 `json:"plan_partitions"`
	PlanConnections int64 `json:"plan_connections"`
	// Source is SourceMeasured or SourceSpread.
	Source int `json:"source"`
}

// TableName pins the table name the migrations create.
func (TenantSample) TableName() string { return "tenant_samples" }

// Start is the minute's start.
func (s TenantSample) Start() time.Time { return time.Unix(s.Minute*60, 0).UTC() }

// MeteringMark is the last value read of one broker counter series (one
// metric of one tenant on one broker), in the sample's integer unit.
type MeteringMark struct {
	Series string `gorm:"primaryKey"`
	Tenant string
	Metric string
	// Minute is the Unix minute the value was read at (the end of the last
	// minute counted).
	Minute int64
	Value  int64
}

// TableName pins the table name the migrations create.
func (MeteringMark) TableName() string { return "metering_marks" }

// UnixMinute is t's minute in Unix minutes, rounded down.
func UnixMinute(t time.Time) int64 {
	s := t.Unix()
	if s < 0 && s%60 != 0 {
		return s/60 - 1
	}
	return s / 60
}

// insertBatchRows is how many rows one INSERT carries. The SQLite driver
// matches each bound parameter against the whole argument list, so a
// statement's cost grows with the square of its parameters: 64 rows (about
// 1,000 parameters) keeps that small while still saving round trips.
const insertBatchRows = 64

// RecordMetering writes samples (replacing rows of the same tenant and
// minute) and the counter marks they were computed up to in one
// transaction, so a crash never counts a minute twice or loses one.
func (s *Store) RecordMetering(ctx context.Context, samples []TenantSample, marks []MeteringMark) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(samples) > 0 {
			if err := tx.Clauses(clause.OnConflict{
				Columns: []clause.Column{{Name: "tenant"}, {Name: "minute"}},
				DoUpdates: clause.AssignmentColumns([]string{"bytes_in", "bytes_out", "requests", "throttle_ms", "disk_bytes",
					"partitions", "plan_produce_bps", "plan_fetch_bps", "plan_disk_bytes", "plan_partitions", "plan_connections", "source"}),
			}).CreateInBatches(samples, insertBatchRows).Error; err != nil {
				return fmt.Errorf("tenant samples: %w", err)
			}
		}
		if len(marks) > 0 {
			if err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "series"}},
				DoUpdates: clause.AssignmentColumns([]string{"tenant", "metric", "minute", "value"}),
			}).CreateInBatches(marks, insertBatchRows).Error; err != nil {
				return fmt.Errorf("metering marks: %w", err)
			}
		}
		return nil
	})
}

// MeteringMarks returns every counter mark by series.
func (s *Store) MeteringMarks(ctx context.Context) (map[string]MeteringMark, error) {
	var ms []MeteringMark
	if err := s.db.WithContext(ctx).Find(&ms).Error; err != nil {
		return nil, err
	}
	out := make(map[string]MeteringMark, len(ms))
	for _, m := range ms {
		out[m.Series] = m
	}
	return out, nil
}

// TenantSamples returns tenant's samples of the minutes starting in [from,
// to), oldest first.
func (s *Store) TenantSamples(ctx context.Context, tenant string, from, to time.Time) ([]TenantSample, error) {
	var out []TenantSample
	err := s.db.WithContext(ctx).Where("tenant = ? AND minute >= ? AND minute < ?", tenant, UnixMinute(from), UnixMinute(to)).
		Order("minute").Find(&out).Error
	return out, err
}

// MeteredTenants lists the tenants with samples in [from, to), by name.
func (s *Store) MeteredTenants(ctx context.Context, from, to time.Time) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Model(&TenantSample{}).Where("minute >= ? AND minute < ?", UnixMinute(from), UnixMinute(to)).
		Distinct("tenant").Order("tenant").Pluck("tenant", &out).Error
	return out, err
}

// DeleteTenantSamplesBefore deletes the samples of minutes starting before
// t (the retention job) and returns how many it deleted.
func (s *Store) DeleteTenantSamplesBefore(ctx context.Context, t time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("minute < ?", UnixMinute(t)).Delete(&TenantSample{})
	return res.RowsAffected, res.Error
}

// SetUserTenant makes a user a member of tenant, or of none when tenant is
// empty. An admin cannot be a tenant member: a member sees only their
// tenant.
func (s *Store) SetUserTenant(ctx context.Context, id uint, tenant, actor string) (*User, error) {
	var out User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var u User
		if err := tx.First(&u, id).Error; err != nil {
			return notFound(err)
		}
		if tenant != "" && u.Role == RoleAdmin {
			return fmt.Errorf("%w: %s is an admin; an admin cannot be a tenant member", ErrConflict, u.Username)
		}
		if err := tx.Model(&u).Update("tenant", tenant).Error; err != nil {
			return err
		}
		if err := audit(tx, s.now(), actor, "user.tenant", "user "+u.Username, fmt.Sprintf("%q -> %q", u.Tenant, tenant)); err != nil {
			return err
		}
		u.Tenant, out = tenant, u
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}
