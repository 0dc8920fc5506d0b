package tickets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// Tenants and plans live in the cluster's metadata log: the service reads
// and writes them through the brokers' admin API (broker/adminapi, the
// documents and client shared with the brokers and `sluice tenants`) and
// keeps no copy of its own, so brokers enforce them whether the service
// runs or not.

// Tenant is a team sharing the cluster (adminapi.Tenant).
type Tenant = adminapi.Tenant

// Plan is what a tenant pays for; a zero limit is unlimited (adminapi.Plan).
type Plan = adminapi.Plan

// limits are a plan's limits for billing.
func planLimits(p Plan) PlanLimits {
	return PlanLimits{ProduceBps: p.ProduceBytesPerSecond, FetchBps: p.FetchBytesPerSecond, DiskBytes: p.DiskBytes,
		Partitions: int64(p.Partitions), Connections: int64(p.Connections)}
}

// TenantUsage is a tenant's counters now, summed over the brokers that
// answered (each counts what it serves and the disk of the partitions it
// leads).
type TenantUsage struct {
	Tenant          string  `json:"tenant"`
	BytesIn         int64   `json:"bytes_in"`
	BytesOut        int64   `json:"bytes_out"`
	Requests        int64   `json:"requests"`
	ThrottleSeconds float64 `json:"throttle_seconds"`
	DiskBytes       int64   `json:"disk_bytes"`
	Partitions      int     `json:"partitions"`
	Connections     int     `json:"connections"`
	// Brokers is how many brokers answered; Missing says which did not.
	Brokers int    `json:"brokers"`
	Missing string `json:"missing,omitempty"`
}

// tenantAdmin is the brokers' tenant and plan API.
type tenantAdmin interface {
	ListTenants(ctx context.Context) ([]Tenant, error)
	GetTenant(ctx context.Context, name string) (*Tenant, error)
	PutTenant(ctx context.Context, t Tenant) (*Tenant, error)
	DeleteTenant(ctx context.Context, name string) error
	ListPlans(ctx context.Context) ([]Plan, error)
	PutPlan(ctx context.Context, p Plan) (*Plan, error)
	TenantUsage(ctx context.Context, name string) (*TenantUsage, error)
}

// errNoTenantAdmin: the service has no broker admin URL to manage tenants
// through.
var errNoTenantAdmin = errors.New("tenants are managed through the brokers' admin API: set snapshot.admin_urls")

// errBrokerUnreachable: no broker admin URL answered.
var errBrokerUnreachable = errors.New("no broker admin API answered")

// brokerAPIError is an answer of the brokers' admin API other than success.
type brokerAPIError = adminapi.APIError

// httpTenantAdmin is the adminapi client with the service's HTTP client
// configuration (snapshot.admin_http_config: basic auth, TLS).
type httpTenantAdmin struct {
	cl *adminapi.Client
}

func newHTTPTenantAdmin(urls []string, cfg commoncfg.HTTPClientConfig) (*httpTenantAdmin, error) {
	hc, err := commoncfg.NewClientFromConfig(cfg, "sluice_tickets_tenants")
	if err != nil {
		return nil, fmt.Errorf("snapshot.admin_http_config: %w", err)
	}
	hc.Timeout = 15 * time.Second
	cl := &adminapi.Client{HTTP: hc}
	for _, u := range urls {
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		cl.URLs = append(cl.URLs, strings.TrimRight(u, "/"))
	}
	return &httpTenantAdmin{cl: cl}, nil
}

// unreachable marks the errors that are not an answer of the API.
func unreachable(err error) error {
	var ae *adminapi.APIError
	if err == nil || errors.As(err, &ae) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %v", errBrokerUnreachable, err)
}

func (a *httpTenantAdmin) ListTenants(ctx context.Context) ([]Tenant, error) {
	ts, err := a.cl.Tenants(ctx)
	return ts, unreachable(err)
}

func (a *httpTenantAdmin) GetTenant(ctx context.Context, name string) (*Tenant, error) {
	t, err := a.cl.Tenant(ctx, name)
	if err != nil {
		return nil, unreachable(err)
	}
	return &t, nil
}

func (a *httpTenantAdmin) PutTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	out, err := a.cl.PutTenant(ctx, t)
	if err != nil {
		return nil, unreachable(err)
	}
	return &out, nil
}

func (a *httpTenantAdmin) DeleteTenant(ctx context.Context, name string) error {
	return unreachable(a.cl.DeleteTenant(ctx, name))
}

func (a *httpTenantAdmin) ListPlans(ctx context.Context) ([]Plan, error) {
	ps, err := a.cl.Plans(ctx)
	return ps, unreachable(err)
}

func (a *httpTenantAdmin) PutPlan(ctx context.Context, p Plan) (*Plan, error) {
	out, err := a.cl.PutPlan(ctx, p)
	if err != nil {
		return nil, unreachable(err)
	}
	return &out, nil
}

// TenantUsage sums the answers of the brokers; a tenant no broker knows is
// not found.
func (a *httpTenantAdmin) TenantUsage(ctx context.Context, name string) (*TenantUsage, error) {
	us, err := a.cl.Usage(ctx, name)
	var ae *adminapi.APIError
	if len(us) == 0 {
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, unreachable(err)
	}
	out := &TenantUsage{Tenant: name, Brokers: len(us)}
	for _, u := range us {
		out.BytesIn += int64(u.BytesIn)
		out.BytesOut += int64(u.BytesOut)
		out.Requests += int64(u.Requests)
		out.ThrottleSeconds += u.ThrottleSeconds
		out.DiskBytes += u.DiskBytes
		out.Connections += u.Connections
		out.Partitions = max(out.Partitions, u.Partitions) // cluster-wide on every broker
	}
	if err != nil {
		out.Missing = err.Error()
	}
	return out, nil
}
