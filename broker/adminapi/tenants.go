package adminapi

// Tenants and plans (issue 17): the documents of the broker's management API
//
//	GET    /api/v1/tenants               TenantList
//	GET    /api/v1/tenants/{name}        Tenant
//	PUT    /api/v1/tenants/{name}        Tenant (creates or replaces; answers the stored Tenant)
//	DELETE /api/v1/tenants/{name}
//	GET    /api/v1/tenants/{name}/usage  TenantUsage (this broker's counters)
//	GET    /api/v1/plans                 PlanList
//	GET    /api/v1/plans/{name}          Plan
//	PUT    /api/v1/plans/{name}          Plan
//
// shared by the broker, `sluice tenants` and the ticket service. Errors are an [Error] document with
// a 4xx or 5xx status.

// Tenant is a team sharing the cluster: the principals it owns, the resource prefixes of its
// namespace (topics, groups and transactional ids starting with one of them are its own), the plan
// it is held to and where its notifications go.
type Tenant struct {
	Name string `json:"name"`
	// Plan names the [Plan] the tenant is held to; it must exist.
	Plan string `json:"plan"`
	// Principals are the Kafka principals of the tenant's members and applications, e.g.
	// "User:payments-app"; a principal belongs to at most one tenant.
	Principals []string `json:"principals"`
	// Prefixes are the tenant's namespace, e.g. "payments."; no prefix of one tenant may be a
	// prefix of another's.
	Prefixes []string `json:"prefixes"`
	// SlackChannel and Email are where the tenant's own alerts go: a Slack channel, an email
	// address, or both.
	SlackChannel string `json:"slack_channel,omitempty"`
	Email        string `json:"email,omitempty"`
}

// TenantList is the answer of GET /api/v1/tenants.
type TenantList struct {
	Tenants []Tenant `json:"tenants"`
}

// PlanList is the answer of GET /api/v1/plans.
type PlanList struct {
	Plans []Plan `json:"plans"`
}

// Plan is what a tenant pays for. A zero limit means unlimited.
type Plan struct {
	Name string `json:"name"`
	// ProduceBytesPerSecond is the peak produce bandwidth of the whole tenant, all its principals
	// together.
	ProduceBytesPerSecond int64 `json:"produce_bytes_per_second"`
	// FetchBytesPerSecond is the peak fetch bandwidth of the whole tenant.
	FetchBytesPerSecond int64 `json:"fetch_bytes_per_second"`
	// DiskBytes is the disk capacity: the logical log size of the tenant's partitions times their
	// replication factor.
	DiskBytes int64 `json:"disk_bytes"`
	// Partitions is the most partitions the tenant's topics may have in all.
	Partitions int32 `json:"partitions"`
	// Connections is the most client connections the tenant's principals may hold on one broker.
	Connections int32 `json:"connections"`
	// DiskPolicy says what happens to a tenant over DiskBytes: DiskPolicyReject (the default, and
	// the only policy so far) refuses its produce requests with POLICY_VIOLATION until it is under
	// again.
	DiskPolicy string `json:"disk_policy,omitempty"`
}

// DiskPolicyReject is the disk policy that refuses produce requests of a tenant over its plan.
const DiskPolicyReject = "reject"

// TenantUsage is the answer of GET /api/v1/tenants/{name}/usage: the counters of the broker that
// answers (every broker counts what it serves; sum over brokers for the cluster) and the tenant's
// cluster-wide disk and partitions from the metadata and this broker's logs.
type TenantUsage struct {
	Tenant   string `json:"tenant"`
	BrokerID int32  `json:"broker_id"`
	// BytesIn and BytesOut are record batch bytes produced and fetched through this broker since it
	// started, as sluice_tenant_bytes_in_total and sluice_tenant_bytes_out_total.
	BytesIn         uint64  `json:"bytes_in"`
	BytesOut        uint64  `json:"bytes_out"`
	Requests        uint64  `json:"requests"`
	ThrottleSeconds float64 `json:"throttle_seconds"`
	// DiskBytes is the tenant's log size times replication factor over the partitions this broker
	// leads, as sluice_tenant_disk_bytes.
	DiskBytes int64 `json:"disk_bytes"`
	// Partitions is the tenant's partition count in the whole cluster.
	Partitions int `json:"partitions"`
	// Connections is the tenant's client connections to this broker.
	Connections int `json:"connections"`
}

// Error is the body of an error answer.
type Error struct {
	Error string `json:"error"`
}
