package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/internal/backoff"
)

// Client calls the tenant and plan management API of a cluster's brokers. Reads are answered by
// the first broker that answers; writes are carried out by the active controller only (the
// source of truth is the metadata log), so a write goes to each broker in turn until the
// controller takes it: the others answer 503 naming the controller in ControllerHeader, and while
// the cluster has no controller the client waits and tries again until ctx is done. When every URL
// answers that another broker is the controller for three rounds (the controller is none of them),
// that answer is returned.
type Client struct {
	// URLs are the brokers' admin interfaces, e.g. "http://127.0.0.1:9644" (admin.listen).
	URLs []string
	// HTTP is the client to use; nil means a client with a 30 s timeout.
	HTTP *http.Client
	// Username and Password, when Username is set, are sent as basic auth (the brokers'
	// web.config.file users).
	Username, Password string
}

// ControllerHeader is set on the 503 answer of a broker that is not the controller to a change:
// the controller's broker id, -1 while there is none.
const ControllerHeader = "Sluice-Controller-Id"

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Message string
	// NotController says the broker refused a change because it is not the controller and a
	// controller exists.
	NotController bool
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// MaxBody bounds a request or answer body of the API.
const MaxBody = 4 << 20

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// do sends one request to base and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, base, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Username != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		ctl, err := strconv.Atoi(resp.Header.Get(ControllerHeader))
		return &APIError{Status: resp.StatusCode, Message: e.Error, NotController: err == nil && ctl >= 0}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}

// read asks the brokers in turn until one answers; an API error (4xx) is final.
func (c *Client) read(ctx context.Context, path string, out any) error {
	if len(c.URLs) == 0 {
		return errors.New("adminapi: no broker admin URL")
	}
	var last error
	for _, u := range c.URLs {
		err := c.do(ctx, u, http.MethodGet, path, nil, out)
		var ae *APIError
		if err == nil || errors.As(err, &ae) && ae.Status < 500 {
			return err
		}
		last = err
	}
	return last
}

// write sends a change to the controller: each broker in turn, again after a backoff while none
// is the controller.
func (c *Client) write(ctx context.Context, method, path string, in, out any) error {
	if len(c.URLs) == 0 {
		return errors.New("adminapi: no broker admin URL")
	}
	bo := backoff.New(100*time.Millisecond, 2*time.Second)
	// Rounds in which every broker answered that it is not the controller: the controller is
	// none of the URLs, unless it is moving; after a few such rounds that answer is final.
	misdirected := 0
	for {
		var last error
		allMisdirected := true
		for _, u := range c.URLs {
			err := c.do(ctx, u, method, path, in, out)
			var ae *APIError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &ae) && ae.NotController:
				last = err // not the controller: the next broker
			case errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable:
				return err
			default:
				last, allMisdirected = err, false
			}
		}
		if allMisdirected {
			if misdirected++; misdirected >= 3 {
				return last
			}
		}
		if ctx.Err() != nil {
			return last
		}
		if err := bo.Wait(ctx, 0); err != nil {
			return fmt.Errorf("%w (last answer: %v)", err, last)
		}
	}
}

func pathOf(parts ...string) string {
	var b strings.Builder
	b.WriteString("/api/v1")
	for _, p := range parts {
		b.WriteString("/")
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// Tenants lists the tenants.
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	var out TenantList
	return out.Tenants, c.read(ctx, pathOf("tenants"), &out)
}

// Tenant returns one tenant.
func (c *Client) Tenant(ctx context.Context, name string) (Tenant, error) {
	var out Tenant
	return out, c.read(ctx, pathOf("tenants", name), &out)
}

// PutTenant creates or replaces a tenant and returns it as stored.
func (c *Client) PutTenant(ctx context.Context, t Tenant) (Tenant, error) {
	var out Tenant
	return out, c.write(ctx, http.MethodPut, pathOf("tenants", t.Name), t, &out)
}

// DeleteTenant deletes a tenant and its ACLs (not its topics).
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.write(ctx, http.MethodDelete, pathOf("tenants", name), nil, nil)
}

// Usage returns a tenant's usage as each broker that answers counts it; sum BytesIn, BytesOut,
// Requests, ThrottleSeconds and DiskBytes over them for the cluster. A broker that does not
// answer is left out and reported in the error, with the answers of the others.
func (c *Client) Usage(ctx context.Context, name string) ([]TenantUsage, error) {
	var out []TenantUsage
	var errs []error
	for _, u := range c.URLs {
		var tu TenantUsage
		if err := c.do(ctx, u, http.MethodGet, pathOf("tenants", name, "usage"), nil, &tu); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		out = append(out, tu)
	}
	return out, errors.Join(errs...)
}

// Plans lists the plans.
func (c *Client) Plans(ctx context.Context) ([]Plan, error) {
	var out PlanList
	return out.Plans, c.read(ctx, pathOf("plans"), &out)
}

// Plan returns one plan.
func (c *Client) Plan(ctx context.Context, name string) (Plan, error) {
	var out Plan
	return out, c.read(ctx, pathOf("plans", name), &out)
}

// PutPlan creates or replaces a plan and returns it as stored.
func (c *Client) PutPlan(ctx context.Context, p Plan) (Plan, error) {
	var out Plan
	return out, c.write(ctx, http.MethodPut, pathOf("plans", p.Name), p, &out)
}
