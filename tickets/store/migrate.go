package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migration is one schema version. Statements are written once for both
// databases; {{ID}}, {{TS}} and {{APPEND_ONLY table}} are expanded per dialect.
// A released migration is never edited: a change to the models is a new version.
type migration struct {
	version    int
	name       string
	statements []string
}

var migrations = []migration{
	{1, "initial schema", []string{
		`CREATE TABLE incidents (
			id {{ID}},
			key TEXT NOT NULL,
			group_key TEXT NOT NULL,
			receiver TEXT NOT NULL DEFAULT '',
			title TEXT NOT NULL,
			severity TEXT NOT NULL,
			status TEXT NOT NULL,
			cluster TEXT NOT NULL DEFAULT '',
			brokers TEXT,
			topics TEXT,
			groups TEXT,
			assignee TEXT NOT NULL DEFAULT '',
			external_url TEXT NOT NULL DEFAULT '',
			truncated_alerts INTEGER NOT NULL DEFAULT 0,
			reopen_count INTEGER NOT NULL DEFAULT 0,
			impact_start_at {{TS}} NOT NULL,
			detected_at {{TS}} NOT NULL,
			first_ack_at {{TS}},
			first_ack_by TEXT NOT NULL DEFAULT '',
			mitigated_at {{TS}},
			resolved_at {{TS}},
			resolved_by TEXT NOT NULL DEFAULT '',
			closed_at {{TS}},
			created_at {{TS}} NOT NULL,
			updated_at {{TS}} NOT NULL)`,
		// One live incident per group: a resolved incident is closed before a
		// new one with its key is opened.
		`CREATE UNIQUE INDEX incidents_live_key ON incidents (key) WHERE status <> 'closed'`,
		`CREATE INDEX incidents_status ON incidents (status, detected_at)`,
		`CREATE TABLE alarm_instances (
			id {{ID}},
			incident_id BIGINT NOT NULL REFERENCES incidents(id),
			fingerprint TEXT NOT NULL,
			starts_at {{TS}} NOT NULL,
			ends_at {{TS}},
			status TEXT NOT NULL,
			alert_name TEXT NOT NULL DEFAULT '',
			labels TEXT,
			annotations TEXT,
			generator_url TEXT NOT NULL DEFAULT '',
			last_seen_at {{TS}} NOT NULL,
			created_at {{TS}} NOT NULL,
			updated_at {{TS}} NOT NULL)`,
		`CREATE UNIQUE INDEX alarm_instances_identity ON alarm_instances (fingerprint, starts_at)`,
		`CREATE INDEX alarm_instances_incident ON alarm_instances (incident_id)`,
		`CREATE TABLE tickets (
			id {{ID}},
			title TEXT NOT NULL,
			description TEXT NOT NULL DEFAULT '',
			cluster TEXT NOT NULL DEFAULT '',
			topic TEXT NOT NULL DEFAULT '',
			group_name TEXT NOT NULL DEFAULT '',
			priority TEXT NOT NULL,
			status TEXT NOT NULL,
			assignee TEXT NOT NULL DEFAULT '',
			reporter TEXT NOT NULL DEFAULT '',
			created_at {{TS}} NOT NULL,
			updated_at {{TS}} NOT NULL)`,
		`CREATE TABLE incident_tickets (
			incident_id BIGINT NOT NULL REFERENCES incidents(id),
			ticket_id BIGINT NOT NULL REFERENCES tickets(id),
			created_at {{TS}} NOT NULL,
			PRIMARY KEY (incident_id, ticket_id))`,
		`CREATE TABLE comments (
			id {{ID}},
			incident_id BIGINT REFERENCES incidents(id),
			ticket_id BIGINT REFERENCES tickets(id),
			author TEXT NOT NULL,
			body TEXT NOT NULL,
			created_at {{TS}} NOT NULL)`,
		`CREATE TABLE timeline_events (
			id {{ID}},
			incident_id BIGINT REFERENCES incidents(id),
			ticket_id BIGINT REFERENCES tickets(id),
			at {{TS}} NOT NULL,
			actor TEXT NOT NULL,
			kind TEXT NOT NULL,
			detail TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX timeline_events_incident ON timeline_events (incident_id, id)`,
		`CREATE INDEX timeline_events_ticket ON timeline_events (ticket_id, id)`,
		`{{APPEND_ONLY timeline_events}}`,
		`CREATE TABLE users (
			id {{ID}},
			username TEXT NOT NULL UNIQUE,
			password_hash TEXT NOT NULL,
			role TEXT NOT NULL,
			created_at {{TS}} NOT NULL)`,
		`CREATE TABLE api_tokens (
			id {{ID}},
			name TEXT NOT NULL,
			role TEXT NOT NULL,
			token_hash TEXT NOT NULL UNIQUE,
			created_at {{TS}} NOT NULL,
			last_used_at {{TS}})`,
		`CREATE TABLE sessions (
			id TEXT PRIMARY KEY,
			user_id BIGINT NOT NULL REFERENCES users(id),
			csrf_token TEXT NOT NULL,
			expires_at {{TS}} NOT NULL,
			created_at {{TS}} NOT NULL)`,
		`CREATE TABLE snapshots (
			id {{ID}},
			incident_id BIGINT NOT NULL REFERENCES incidents(id),
			captured_at {{TS}} NOT NULL,
			reason TEXT NOT NULL DEFAULT '',
			diagnosis TEXT NOT NULL DEFAULT '',
			data TEXT NOT NULL)`,
		`CREATE INDEX snapshots_incident ON snapshots (incident_id, id)`,
	}},
	{2, "disabled users, who minted a token", []string{
		`ALTER TABLE users ADD COLUMN disabled_at {{TS}}`,
		`ALTER TABLE api_tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT ''`,
	}},
	{3, "token expiry and owner, audit log, outbox, snapshot jobs", []string{
		`ALTER TABLE api_tokens ADD COLUMN expires_at {{TS}}`,
		`ALTER TABLE api_tokens ADD COLUMN owner_id BIGINT REFERENCES users(id)`,
		`ALTER TABLE users ADD COLUMN password_changed_at {{TS}}`,
		`CREATE INDEX sessions_expires ON sessions (expires_at)`,
		`CREATE TABLE audit_events (
			id {{ID}},
			at {{TS}} NOT NULL,
			actor TEXT NOT NULL,
			action TEXT NOT NULL,
			target TEXT NOT NULL DEFAULT '',
			detail TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX audit_events_at ON audit_events (at, id)`,
		`{{APPEND_ONLY audit_events}}`,
		// The outbox: a notification is written in the transaction of the
		// change it announces; delivered_at marks it sent, failed_at gives up.
		`CREATE TABLE outbox (
			id {{ID}},
			kind TEXT NOT NULL,
			incident_id BIGINT REFERENCES incidents(id),
			ticket_id BIGINT REFERENCES tickets(id),
			actor TEXT NOT NULL DEFAULT '',
			detail TEXT NOT NULL DEFAULT '',
			created_at {{TS}} NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0,
			next_attempt_at {{TS}} NOT NULL,
			delivered_at {{TS}},
			failed_at {{TS}},
			delivered_to TEXT NOT NULL DEFAULT '',
			last_error TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX outbox_pending ON outbox (delivered_at, failed_at, next_attempt_at, id)`,
		`CREATE TABLE snapshot_jobs (
			id {{ID}},
			incident_id BIGINT NOT NULL REFERENCES incidents(id),
			reason TEXT NOT NULL,
			created_at {{TS}} NOT NULL,
			attempts INTEGER NOT NULL DEFAULT 0,
			next_attempt_at {{TS}} NOT NULL,
			done_at {{TS}},
			last_error TEXT NOT NULL DEFAULT '')`,
		`CREATE INDEX snapshot_jobs_pending ON snapshot_jobs (done_at, next_attempt_at, id)`,
	}},
	{4, "incidents correlated by diagnosed cause, transient incidents", []string{
		`ALTER TABLE incidents ADD COLUMN cause_key TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE incidents ADD COLUMN cause_impact INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE incidents ADD COLUMN cluster_id TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE incidents ADD COLUMN metadata_index BIGINT NOT NULL DEFAULT 0`,
		`ALTER TABLE incidents ADD COLUMN transient BOOLEAN NOT NULL DEFAULT FALSE`,
	}},
	{5, "tenant metering samples, counter marks, tenant members", []string{
		// One row per tenant per minute, integers only (see TenantSample).
		// The primary key serves a tenant's period queries; the minute index
		// the retention job and the all-tenant statements.
		`CREATE TABLE tenant_samples (
			tenant TEXT NOT NULL,
			minute BIGINT NOT NULL,
			bytes_in BIGINT NOT NULL DEFAULT 0,
			bytes_out BIGINT NOT NULL DEFAULT 0,
			requests BIGINT NOT NULL DEFAULT 0,
			throttle_ms BIGINT NOT NULL DEFAULT 0,
			disk_bytes BIGINT NOT NULL DEFAULT 0,
			partitions BIGINT NOT NULL DEFAULT 0,
			plan_produce_bps BIGINT NOT NULL DEFAULT 0,
			plan_fetch_bps BIGINT NOT NULL DEFAULT 0,
			plan_disk_bytes BIGINT NOT NULL DEFAULT 0,
			plan_partitions BIGINT NOT NULL DEFAULT 0,
			plan_connections BIGINT NOT NULL DEFAULT 0,
			source SMALLINT NOT NULL DEFAULT 0,
			PRIMARY KEY (tenant, minute))`,
		`CREATE INDEX tenant_samples_minute ON tenant_samples (minute)`,
		// The last counter value read of each broker series, so that the
		// next collection (also after a restart) counts from there.
		`CREATE TABLE metering_marks (
			series TEXT PRIMARY KEY,
			tenant TEXT NOT NULL,
			metric TEXT NOT NULL,
			minute BIGINT NOT NULL,
			value BIGINT NOT NULL)`,
		`ALTER TABLE users ADD COLUMN tenant TEXT NOT NULL DEFAULT ''`,
	}},
}

// expand turns a dialect-neutral statement into the SQL of dialect.
func expand(stmt, dialect string) []string {
	if strings.HasPrefix(stmt, "{{APPEND_ONLY ") {
		table := strings.TrimSuffix(strings.TrimPrefix(stmt, "{{APPEND_ONLY "), "}}")
		if dialect == "postgres" {
			return []string{
				fmt.Sprintf(`CREATE FUNCTION %[1]s_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%[1]s is append-only'; END $$`, table),
				fmt.Sprintf(`CREATE TRIGGER %[1]s_no_update BEFORE UPDATE OR DELETE ON %[1]s
FOR EACH ROW EXECUTE FUNCTION %[1]s_append_only()`, table),
			}
		}
		return []string{
			fmt.Sprintf(`CREATE TRIGGER %[1]s_no_update BEFORE UPDATE ON %[1]s BEGIN SELECT RAISE(ABORT, '%[1]s is append-only'); END`, table),
			fmt.Sprintf(`CREATE TRIGGER %[1]s_no_delete BEFORE DELETE ON %[1]s BEGIN SELECT RAISE(ABORT, '%[1]s is append-only'); END`, table),
		}
	}
	id, ts := "INTEGER PRIMARY KEY AUTOINCREMENT", "DATETIME"
	if dialect == "postgres" {
		id, ts = "BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ"
	}
	return []string{strings.NewReplacer("{{ID}}", id, "{{TS}}", ts).Replace(stmt)}
}

// SchemaVersion is the version the migrations of this build bring a database to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrate applies the migrations a database lacks, each in its own transaction,
// and refuses a database written by a newer build.
func migrate(ctx context.Context, db *gorm.DB) error {
	db = db.WithContext(ctx)
	if err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`).Error; err != nil {
		return fmt.Errorf("schema_migrations: %w", err)
	}
	var current int
	if err := db.Raw(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current).Error; err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > SchemaVersion() {
		return fmt.Errorf("database schema is version %d, newer than this build's %d", current, SchemaVersion())
	}
	dialect := db.Dialector.Name()
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			for _, s := range m.statements {
				for _, sql := range expand(s, dialect) {
					if err := tx.Exec(sql).Error; err != nil {
						return fmt.Errorf("%s: %w", firstLine(sql), err)
					}
				}
			}
			return tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UTC().Format(time.RFC3339)).Error
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
