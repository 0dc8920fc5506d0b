package tickets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// Tenants and plans live in the cluster's metadata log: the service reads
// and writes them through the brokers' admin API and keeps no copy of its
// own, so brokers enforce them whether the service runs or not.

// Tenant is a team sharing the cluster: its principals, the resource
// prefixes it owns, its plan and where its alerts go.
type Tenant struct {
	Name string `json:"name"`
	// Principals are Kafka principals such as User:alice.
	Principals []string `json:"principals"`
	// Prefixes are the topic and group name prefixes the tenant owns, such
	// as payments.
	Prefixes     []string `json:"prefixes"`
	Plan         string   `json:"plan"`
	SlackChannel string   `json:"slack_channel,omitempty"`
	Email        string   `json:"email,omitempty"`
}

// Plan is what a tenant pays for: peak bandwidths, disk, partitions and
// connections.
type Plan struct {
	Name                  string `json:"name"`
	ProduceBytesPerSecond int64  `json:"produce_bytes_per_second"`
	FetchBytesPerSecond   int64  `json:"fetch_bytes_per_second"`
	DiskBytes             int64  `json:"disk_bytes"`
	Partitions            int64  `json:"partitions"`
	Connections           int64  `json:"connections"`
}

// limits are the plan's limits for billing.
func (p Plan) limits() PlanLimits {
	return PlanLimits{ProduceBps: p.ProduceBytesPerSecond, FetchBps: p.FetchBytesPerSecond, DiskBytes: p.DiskBytes,
		Partitions: p.Partitions, Connections: p.Connections}
}

// TenantUsage is a tenant's current counters as the cluster reports them.
type TenantUsage struct {
	Tenant          string  `json:"tenant"`
	BytesIn         int64   `json:"bytes_in"`
	BytesOut        int64   `json:"bytes_out"`
	Requests        int64   `json:"requests"`
	ThrottleSeconds float64 `json:"throttle_seconds"`
	DiskBytes       int64   `json:"disk_bytes"`
	Partitions      int64   `json:"partitions"`
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
type brokerAPIError struct {
	Status  int
	Message string
}

func (e *brokerAPIError) Error() string {
	return fmt.Sprintf("broker admin API: %d %s", e.Status, e.Message)
}

// httpTenantAdmin speaks the brokers' admin API; it asks the brokers in
// turn until one answers (any broker forwards a change to the controller).
type httpTenantAdmin struct {
	urls []string
	hc   *http.Client
}

func newHTTPTenantAdmin(urls []string, cfg commoncfg.HTTPClientConfig) (*httpTenantAdmin, error) {
	hc, err := commoncfg.NewClientFromConfig(cfg, "sluice_tickets_tenants")
	if err != nil {
		return nil, fmt.Errorf("snapshot.admin_http_config: %w", err)
	}
	hc.Timeout = 15 * time.Second
	out := &httpTenantAdmin{hc: hc}
	for _, u := range urls {
		if !strings.Contains(u, "://") {
			u = "http://" + u
		}
		out.urls = append(out.urls, strings.TrimRight(u, "/"))
	}
	return out, nil
}

func (a *httpTenantAdmin) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	var errs []string
	for _, base := range a.urls {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return errors.New("bad admin URL (not shown: it may hold a password)")
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := a.hc.Do(req)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if resp.StatusCode >= 500 {
			errs = append(errs, fmt.Sprintf("%s: %s", req.URL.Redacted(), resp.Status))
			continue
		}
		if resp.StatusCode >= 300 {
			var e struct {
				Error string `json:"error"`
			}
			msg := strings.TrimSpace(string(b))
			if json.Unmarshal(b, &e) == nil && e.Error != "" {
				msg = e.Error
			}
			if len(msg) > 500 {
				msg = msg[:500]
			}
			return &brokerAPIError{Status: resp.StatusCode, Message: msg}
		}
		if out == nil || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("broker admin API %s: %w", req.URL.Redacted(), err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", errBrokerUnreachable, strings.Join(errs, "; "))
}

func (a *httpTenantAdmin) ListTenants(ctx context.Context) ([]Tenant, error) {
	var out struct {
		Tenants []Tenant `json:"tenants"`
	}
	return out.Tenants, a.do(ctx, http.MethodGet, "/api/v1/tenants", nil, &out)
}

func (a *httpTenantAdmin) GetTenant(ctx context.Context, name string) (*Tenant, error) {
	var t Tenant
	if err := a.do(ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(name), nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (a *httpTenantAdmin) PutTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	var out Tenant
	if err := a.do(ctx, http.MethodPut, "/api/v1/tenants/"+url.PathEscape(t.Name), t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (a *httpTenantAdmin) DeleteTenant(ctx context.Context, name string) error {
	return a.do(ctx, http.MethodDelete, "/api/v1/tenants/"+url.PathEscape(name), nil, nil)
}

func (a *httpTenantAdmin) ListPlans(ctx context.Context) ([]Plan, error) {
	var out struct {
		Plans []Plan `json:"plans"`
	}
	return out.Plans, a.do(ctx, http.MethodGet, "/api/v1/plans", nil, &out)
}

func (a *httpTenantAdmin) PutPlan(ctx context.Context, p Plan) (*Plan, error) {
	var out Plan
	if err := a.do(ctx, http.MethodPut, "/api/v1/plans/"+url.PathEscape(p.Name), p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (a *httpTenantAdmin) TenantUsage(ctx context.Context, name string) (*TenantUsage, error) {
	var u TenantUsage
	if err := a.do(ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(name)+"/usage", nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}
