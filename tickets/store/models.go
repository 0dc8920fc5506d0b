// Package store is the ticket service's database: incidents and the alarms that
// opened them, tickets filed by people, comments, the append-only timeline, users,
// sessions and API tokens. It runs on SQLite (the single-machine default) and on
// PostgreSQL through gorm; every change is one database transaction.
package store

import "time"

// Role is what a user or API token may do: a viewer reads, an operator works
// incidents and tickets, an admin also manages users and tokens.
type Role string

// Roles, weakest first.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// ParseRole returns the Role named s.
func ParseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, true
	}
	return "", false
}

// Allows reports whether r is at least min.
func (r Role) Allows(min Role) bool { return r.rank() >= min.rank() }

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Incident statuses. An incident is triggered when its first alarm fires,
// acknowledged by a person, resolved when all its alarms have resolved (or by a
// person), and closed when it can no longer reopen.
const (
	StatusTriggered    = "triggered"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
	StatusClosed       = "closed"
)

// Incident is a fault worked by people, opened by the alarms of one Alertmanager
// group. Key is the hex SHA-256 of the group's groupKey, the dedup key the
// Alertmanager PagerDuty and Opsgenie notifiers use; at most one incident per key is
// not closed.
type Incident struct {
	ID              uint     `json:"id" gorm:"primaryKey"`
	Key             string   `json:"key"`
	GroupKey        string   `json:"group_key"`
	Receiver        string   `json:"receiver"`
	Title           string   `json:"title"`
	Severity        string   `json:"severity"`
	Status          string   `json:"status"`
	Cluster         string   `json:"cluster"`
	Brokers         []string `json:"brokers" gorm:"serializer:json"`
	Topics          []string `json:"topics" gorm:"serializer:json"`
	Groups          []string `json:"groups" gorm:"serializer:json"`
	Assignee        string   `json:"assignee"`
	ExternalURL     string   `json:"external_url"`
	TruncatedAlerts int      `json:"truncated_alerts"`
	ReopenCount     int      `json:"reopen_count"`
	// CauseKey is the diagnosed cause the incident's alarms share (e.g. "<cluster
	// id>/broker/2"), empty when it groups the alarms of one Alertmanager group.
	CauseKey string `json:"cause_key"`
	// CauseImpact is the number of partitions the worst diagnosis of the cause
	// affected; the title is that diagnosis'.
	CauseImpact int `json:"cause_impact"`
	// ClusterID is the Kafka cluster id seen when the incident opened: an
	// incident never reopens for a cluster whose state directory was cleared.
	ClusterID string `json:"cluster_id"`
	// MetadataIndex is the cluster's metadata log index seen when the incident
	// opened; a smaller one later means the brokers' state was cleared, and
	// the incident does not reopen.
	MetadataIndex uint64 `json:"metadata_index"`
	// Transient is set when every alarm resolved within the transient window
	// of the incident opening: it did not page.
	Transient     bool       `json:"transient"`
	ImpactStartAt time.Time  `json:"impact_start_at"`
	DetectedAt    time.Time  `json:"detected_at"`
	FirstAckAt    *time.Time `json:"first_ack_at"`
	FirstAckBy    string     `json:"first_ack_by"`
	MitigatedAt   *time.Time `json:"mitigated_at"`
	ResolvedAt    *time.Time `json:"resolved_at"`
	ResolvedBy    string     `json:"resolved_by"`
	ClosedAt      *time.Time `json:"closed_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// TableName pins the table name the migrations create.
func (Incident) TableName() string { return "incidents" }

// Open reports whether the incident still needs a person.
func (i *Incident) Open() bool {
	return i.Status == StatusTriggered || i.Status == StatusAcknowledged
}

// Alarm statuses, as Alertmanager reports them per alert.
const (
	AlarmFiring   = "firing"
	AlarmResolved = "resolved"
)

// AlarmInstance is one alert of an incident's group: one firing of one label set,
// keyed by Alertmanager's fingerprint and startsAt so a re-sent group updates it.
// Resolved is final: the same label set firing again has a new startsAt.
type AlarmInstance struct {
	ID           uint              `json:"id" gorm:"primaryKey"`
	IncidentID   uint              `json:"incident_id"`
	Fingerprint  string            `json:"fingerprint"`
	StartsAt     time.Time         `json:"starts_at"`
	EndsAt       *time.Time        `json:"ends_at"`
	Status       string            `json:"status"`
	AlertName    string            `json:"alertname"`
	Labels       map[string]string `json:"labels" gorm:"serializer:json"`
	Annotations  map[string]string `json:"annotations" gorm:"serializer:json"`
	GeneratorURL string            `json:"generator_url"`
	LastSeenAt   time.Time         `json:"last_seen_at"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// TableName pins the table name the migrations create.
func (AlarmInstance) TableName() string { return "alarm_instances" }

// Ticket priorities, P1 most urgent.
var Priorities = []string{"P1", "P2", "P3", "P4"}

// Ticket statuses.
var TicketStatuses = []string{"new", "in_progress", "waiting", "resolved", "closed"}

// Ticket is work filed by a person, about a cluster, topic or consumer group, and
// linked to any number of incidents.
type Ticket struct {
	ID          uint      `json:"id" gorm:"primaryKey"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Cluster     string    `json:"cluster"`
	Topic       string    `json:"topic"`
	GroupName   string    `json:"group"`
	Priority    string    `json:"priority"`
	Status      string    `json:"status"`
	Assignee    string    `json:"assignee"`
	Reporter    string    `json:"reporter"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// TableName pins the table name the migrations create.
func (Ticket) TableName() string { return "tickets" }

// IncidentTicket links an incident and a ticket.
type IncidentTicket struct {
	IncidentID uint      `json:"incident_id" gorm:"primaryKey;autoIncrement:false"`
	TicketID   uint      `json:"ticket_id" gorm:"primaryKey;autoIncrement:false"`
	CreatedAt  time.Time `json:"created_at"`
}

// TableName pins the table name the migrations create.
func (IncidentTicket) TableName() string { return "incident_tickets" }

// Comment is a note by a person on an incident or a ticket (exactly one of them).
// Bodies are stored as typed and escaped when rendered.
type Comment struct {
	ID         uint      `json:"id" gorm:"primaryKey"`
	IncidentID *uint     `json:"incident_id,omitempty"`
	TicketID   *uint     `json:"ticket_id,omitempty"`
	Author     string    `json:"author"`
	Body       string    `json:"body"`
	CreatedAt  time.Time `json:"created_at"`
}

// TableName pins the table name the migrations create.
func (Comment) TableName() string { return "comments" }

// TimelineEvent records one change of an incident or a ticket. The table is
// append-only: the store never updates or deletes a row, and database triggers
// refuse it.
type TimelineEvent struct {
	ID         uint      `json:"id" gorm:"primaryKey"`
	IncidentID *uint     `json:"incident_id,omitempty"`
	TicketID   *uint     `json:"ticket_id,omitempty"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Kind       string    `json:"kind"`
	Detail     string    `json:"detail"`
}

// TableName pins the table name the migrations create.
func (TimelineEvent) TableName() string { return "timeline_events" }

// User is a local account of the web UI.
type User struct {
	ID           uint      `json:"id" gorm:"primaryKey"`
	Username     string    `json:"username"`
	PasswordHash string    `json:"-"`
	Role         Role      `json:"role"`
	CreatedAt    time.Time `json:"created_at"`
	// DisabledAt is when an admin disabled the account: it can no longer log
	// in, its sessions are gone and its API tokens stop working. Users are
	// disabled, never deleted, so the names in timelines keep meaning someone.
	DisabledAt *time.Time `json:"disabled_at"`
	// PasswordChangedAt is when the password was last changed or reset.
	PasswordChangedAt *time.Time `json:"password_changed_at"`
	// Tenant, when set, makes the user a member of that tenant: they see
	// only the tenant's own usage and statements, nothing of the cluster.
	Tenant string `json:"tenant,omitempty"`
}

// Disabled reports whether the account is disabled.
func (u *User) Disabled() bool { return u.DisabledAt != nil }

// TableName pins the table name the migrations create.
func (User) TableName() string { return "users" }

// APIToken authenticates an integration or script with `Authorization: Bearer`.
// Only the SHA-256 of the token is stored; the token itself is shown once. A
// token with an owner works only while its owner is enabled, and never with
// more than the owner's role.
type APIToken struct {
	ID         uint       `json:"id" gorm:"primaryKey"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	TokenHash  string     `json:"-"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// ExpiresAt is when the token stops working; nil for never.
	ExpiresAt *time.Time `json:"expires_at"`
	// OwnerID is the user the token belongs to; nil for a token minted on the
	// command line without an owner.
	OwnerID *uint `json:"owner_id"`
	// Owner is the owner's user name, filled by ListTokens.
	Owner string `json:"owner,omitempty" gorm:"-"`
	// OwnerTenant is the tenant the owner is a member of, filled by
	// TokenRole: the token is fenced to it.
	OwnerTenant string `json:"-" gorm:"-"`
}

// Expired reports whether the token has expired at now.
func (t *APIToken) Expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// AuditEvent records one change of accounts, tokens, roles or silences, made
// through the UI, the API or the command line. The table is append-only.
type AuditEvent struct {
	ID     uint      `json:"id" gorm:"primaryKey"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Detail string    `json:"detail"`
}

// TableName pins the table name the migrations create.
func (AuditEvent) TableName() string { return "audit_events" }

// OutboxMessage is a notification of a change of an incident or a ticket,
// written in the transaction of the change and delivered afterwards. Its ID is
// the message id: it is delivered at most once when DeliveredAt is set, and
// retried until then (or until FailedAt gives up).
type OutboxMessage struct {
	ID            uint       `json:"id" gorm:"primaryKey"`
	Kind          string     `json:"kind"`
	IncidentID    *uint      `json:"incident_id,omitempty"`
	TicketID      *uint      `json:"ticket_id,omitempty"`
	Actor         string     `json:"actor"`
	Detail        string     `json:"detail"`
	CreatedAt     time.Time  `json:"created_at"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	DeliveredAt   *time.Time `json:"delivered_at"`
	FailedAt      *time.Time `json:"failed_at"`
	// DeliveredTo lists the integrations (slack, email) that already have
	// the message, comma separated, so a retry does not send it twice.
	DeliveredTo string `json:"delivered_to"`
	LastError   string `json:"last_error"`
}

// TableName pins the table name the migrations create.
func (OutboxMessage) TableName() string { return "outbox" }

// SnapshotJob asks for a fault snapshot of an incident; it is queued in the
// transaction that opened the incident and survives restarts.
type SnapshotJob struct {
	ID            uint       `json:"id" gorm:"primaryKey"`
	IncidentID    uint       `json:"incident_id"`
	Reason        string     `json:"reason"`
	CreatedAt     time.Time  `json:"created_at"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	DoneAt        *time.Time `json:"done_at"`
	LastError     string     `json:"last_error"`
}

// TableName pins the table name the migrations create.
func (SnapshotJob) TableName() string { return "snapshot_jobs" }

// TableName pins the table name the migrations create.
func (APIToken) TableName() string { return "api_tokens" }

// Session is a logged-in browser. ID is the SHA-256 of the cookie value, so a
// database dump does not hand out sessions; CSRFToken is sent back in every form.
type Session struct {
	ID        string `gorm:"primaryKey"`
	UserID    uint
	CSRFToken string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// TableName pins the table name the migrations create.
func (Session) TableName() string { return "sessions" }

// Snapshot is the fault snapshot of an incident: what the cluster looked like
// within seconds of the incident opening. Data is the JSON document the snapshot
// package produces; Diagnosis its one-line verdict.
type Snapshot struct {
	ID         uint      `json:"id" gorm:"primaryKey"`
	IncidentID uint      `json:"incident_id"`
	CapturedAt time.Time `json:"captured_at"`
	Reason     string    `json:"reason"`
	Diagnosis  string    `json:"diagnosis"`
	Data       string    `json:"-"`
}

// TableName pins the table name the migrations create.
func (Snapshot) TableName() string { return "snapshots" }
