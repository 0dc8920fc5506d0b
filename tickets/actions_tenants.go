package tickets

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/sluicemq/sluice/tickets/store"
)

// Tenants, plans, usage and statements in the service layer. Staff (users
// and tokens without a tenant) read every tenant; admins change them. A
// tenant member reads only their own tenant's page, usage and statements:
// any other tenant is "not found" to them, so they do not even learn its
// name, and the cluster's plans and the rest of the service are forbidden.

const (
	maxPrincipals = 100
	maxPrefixes   = 20
	// maxPlanValue bounds a plan's limits (an exabyte, or 10^18 per second).
	maxPlanValue = 1_000_000_000_000_000_000
)

var (
	principalPattern    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,31}:[^\s]{1,255}$`)
	prefixPattern       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	slackChannelPattern = regexp.MustCompile(`^#?[a-z0-9][a-z0-9._-]{0,79}$`)
)

func tenantNotFound(name string) error {
	return fmt.Errorf("%w: no tenant %q", store.ErrNotFound, name)
}

// authorizeTenantRead lets staff read any tenant and a member only theirs.
func authorizeTenantRead(p principal, name string) error {
	if p.Tenant != "" && p.Tenant != name {
		return tenantNotFound(name)
	}
	return nil
}

// authorizeStaff refuses tenant members.
func authorizeStaff(p principal) error {
	if p.Tenant != "" {
		return errForbidden{need: "staff (not a tenant member)", have: p.Role}
	}
	return nil
}

func (s *Service) tenantAdmin() (tenantAdmin, error) {
	if s.tenants == nil {
		return nil, errNoTenantAdmin
	}
	return s.tenants, nil
}

// brokerNotFound turns the admin API's 404 into the store's not found.
func brokerNotFound(err error, name string) error {
	var be *brokerAPIError
	if errors.As(err, &be) && be.Status == 404 {
		return tenantNotFound(name)
	}
	return err
}

// listTenants returns the tenants p may see, by name.
func (s *Service) listTenants(ctx context.Context, p principal) ([]Tenant, error) {
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	if p.Tenant != "" {
		t, err := ta.GetTenant(ctx, p.Tenant)
		if err != nil {
			return nil, brokerNotFound(err, p.Tenant)
		}
		return []Tenant{*t}, nil
	}
	ts, err := ta.ListTenants(ctx)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return ts, err
}

func (s *Service) getTenant(ctx context.Context, p principal, name string) (*Tenant, error) {
	if err := authorizeTenantRead(p, name); err != nil {
		return nil, err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	t, err := ta.GetTenant(ctx, name)
	return t, brokerNotFound(err, name)
}

func validateTenant(t *Tenant) error {
	var fe fieldErrors
	fe.name("name", t.Name, true)
	fe.name("plan", t.Plan, true)
	if len(t.Principals) > maxPrincipals {
		fe.add("principals", "at most %d", maxPrincipals)
	}
	for _, pr := range t.Principals {
		if !principalPattern.MatchString(pr) {
			fe.add("principals", "%q is not a principal such as User:alice", clipText(pr, 80))
		}
	}
	if len(t.Prefixes) == 0 {
		fe.add("prefixes", "at least one topic and group prefix, such as payments.")
	}
	if len(t.Prefixes) > maxPrefixes {
		fe.add("prefixes", "at most %d", maxPrefixes)
	}
	for _, px := range t.Prefixes {
		if !prefixPattern.MatchString(px) {
			fe.add("prefixes", "%q: 1 to 249 letters, digits or ._- (Kafka's topic name characters)", clipText(px, 80))
		}
	}
	if t.SlackChannel != "" && !slackChannelPattern.MatchString(t.SlackChannel) {
		fe.add("slack_channel", "a Slack channel name such as #payments-alerts")
	}
	if t.Email != "" {
		if a, err := mail.ParseAddress(t.Email); err != nil || a.Address != t.Email || len(t.Email) > 254 || strings.ContainsAny(t.Email, ",\"") {
			fe.add("email", "a plain address such as team@example.com")
		}
	}
	return fe.err()
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// saveTenant creates or replaces a tenant in the metadata log.
func (s *Service) saveTenant(ctx context.Context, p principal, t Tenant) (*Tenant, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return nil, err
	}
	if err := authorizeStaff(p); err != nil {
		return nil, err
	}
	if err := validateTenant(&t); err != nil {
		return nil, err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	out, err := ta.PutTenant(ctx, t)
	if err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("plan %s, principals %s, prefixes %s", t.Plan, strings.Join(t.Principals, " "), strings.Join(t.Prefixes, " "))
	return out, s.store.Audit(ctx, p.Name, "tenant.put", "tenant "+t.Name, detail)
}

// deleteTenant removes a tenant; its members must be unlinked first. Its
// samples stay (statements of past months remain).
func (s *Service) deleteTenant(ctx context.Context, p principal, name string) error {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return err
	}
	if err := authorizeStaff(p); err != nil {
		return err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return err
	}
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return err
	}
	var members []string
	for _, u := range us {
		if u.Tenant == name {
			members = append(members, u.Username)
		}
	}
	if len(members) > 0 {
		return fmt.Errorf("%w: tenant %s still has members (%s): unlink them first", store.ErrConflict, name, strings.Join(members, ", "))
	}
	if err := ta.DeleteTenant(ctx, name); err != nil {
		return brokerNotFound(err, name)
	}
	return s.store.Audit(ctx, p.Name, "tenant.delete", "tenant "+name, "")
}

func (s *Service) listPlans(ctx context.Context, p principal) ([]Plan, error) {
	if err := authorizeStaff(p); err != nil {
		return nil, err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	ps, err := ta.ListPlans(ctx)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	return ps, err
}

func validatePlan(pl *Plan) error {
	var fe fieldErrors
	fe.name("name", pl.Name, true)
	for _, f := range []struct {
		field string
		v     int64
	}{{"produce_bytes_per_second", pl.ProduceBytesPerSecond}, {"fetch_bytes_per_second", pl.FetchBytesPerSecond},
		{"disk_bytes", pl.DiskBytes}, {"partitions", int64(pl.Partitions)}, {"connections", int64(pl.Connections)}} {
		if f.v < 0 || f.v > maxPlanValue {
			fe.add(f.field, "a whole number from 0 (unlimited) to 10^18")
		}
	}
	return fe.err()
}

// savePlan creates or replaces a plan in the metadata log.
func (s *Service) savePlan(ctx context.Context, p principal, pl Plan) (*Plan, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return nil, err
	}
	if err := authorizeStaff(p); err != nil {
		return nil, err
	}
	if err := validatePlan(&pl); err != nil {
		return nil, err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	out, err := ta.PutPlan(ctx, pl)
	if err != nil {
		return nil, err
	}
	detail := fmt.Sprintf("produce %d B/s, fetch %d B/s, disk %d B, %d partitions, %d connections",
		pl.ProduceBytesPerSecond, pl.FetchBytesPerSecond, pl.DiskBytes, int64(pl.Partitions), int64(pl.Connections))
	return out, s.store.Audit(ctx, p.Name, "plan.put", "plan "+pl.Name, detail)
}

// tenantUsageNow is the tenant's current counters from the cluster.
func (s *Service) tenantUsageNow(ctx context.Context, p principal, name string) (*TenantUsage, error) {
	if err := authorizeTenantRead(p, name); err != nil {
		return nil, err
	}
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	u, err := ta.TenantUsage(ctx, name)
	return u, brokerNotFound(err, name)
}

// tenantStatement computes a tenant's statement of a period (yyyy-mm) from
// its samples, with the samples for charts.
func (s *Service) tenantStatement(ctx context.Context, p principal, name, period string) (*Statement, []store.TenantSample, error) {
	if err := authorizeTenantRead(p, name); err != nil {
		return nil, nil, err
	}
	from, to, err := ParsePeriod(period)
	if err != nil {
		return nil, nil, fieldErrors{err.Error()}
	}
	plans, planErr := s.clusterPlans(ctx)
	return s.statementOf(ctx, p, name, period, from, to, plans, planErr)
}

// statementOf is tenantStatement once authorized, with the cluster's plans.
func (s *Service) statementOf(ctx context.Context, p principal, name, period string, from, to time.Time, plans []NamedPlan, planErr error) (*Statement, []store.TenantSample, error) {
	samples, err := s.store.TenantSamples(ctx, name, from, to)
	if err != nil {
		return nil, nil, err
	}
	if len(samples) == 0 && p.Tenant == "" {
		// Staff asking for a name with no samples: it must at least be a
		// tenant of the cluster.
		if ta, err := s.tenantAdmin(); err == nil {
			if _, err := ta.GetTenant(ctx, name); err != nil {
				return nil, nil, brokerNotFound(err, name)
			}
		}
	}
	st := buildStatement(computeUsage(name, period, from, to, samples), plans, s.cfg.Billing)
	if planErr != nil {
		st.SuggestedReason = "plans unavailable: " + planErr.Error()
	}
	return &st, samples, nil
}

// clusterPlans lists the plans for suggestions.
func (s *Service) clusterPlans(ctx context.Context) ([]NamedPlan, error) {
	ta, err := s.tenantAdmin()
	if err != nil {
		return nil, err
	}
	ps, err := ta.ListPlans(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NamedPlan, len(ps))
	for i, pl := range ps {
		out[i] = NamedPlan{Name: pl.Name, PlanLimits: planLimits(pl)}
	}
	return out, nil
}

// periodStatements are the statements of every tenant p may see for a
// period: staff get every tenant with samples in it or known to the
// cluster, a member their own.
func (s *Service) periodStatements(ctx context.Context, p principal, period string) ([]Statement, error) {
	from, to, err := ParsePeriod(period)
	if err != nil {
		return nil, fieldErrors{err.Error()}
	}
	names := []string{p.Tenant}
	if p.Tenant == "" {
		if names, err = s.store.MeteredTenants(ctx, from, to); err != nil {
			return nil, err
		}
		if ta, err := s.tenantAdmin(); err == nil {
			ts, err := ta.ListTenants(ctx)
			if err != nil {
				return nil, err
			}
			for _, t := range ts {
				names = append(names, t.Name)
			}
		}
		sort.Strings(names)
		names = compactStrings(names)
	}
	plans, planErr := s.clusterPlans(ctx)
	out := make([]Statement, 0, len(names))
	for _, n := range names {
		if err := authorizeTenantRead(p, n); err != nil {
			return nil, err
		}
		st, _, err := s.statementOf(ctx, p, n, period, from, to, plans, planErr)
		if err != nil {
			return nil, err
		}
		out = append(out, *st)
	}
	return out, nil
}

func compactStrings(xs []string) []string {
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// setUserTenant makes a user a member of a tenant of the cluster, or of
// none.
func (s *Service) setUserTenant(ctx context.Context, p principal, id uint, tenant string) (*store.User, error) {
	if err := authorize(p, store.RoleAdmin); err != nil {
		return nil, err
	}
	if err := authorizeStaff(p); err != nil {
		return nil, err
	}
	if tenant != "" {
		var fe fieldErrors
		fe.name("tenant", tenant, true)
		if err := fe.err(); err != nil {
			return nil, err
		}
		ta, err := s.tenantAdmin()
		if err != nil {
			return nil, err
		}
		if _, err := ta.GetTenant(ctx, tenant); err != nil {
			return nil, brokerNotFound(err, tenant)
		}
	}
	return s.store.SetUserTenant(ctx, id, tenant, p.Name)
}

// currentPeriod is the billing period of t.
func currentPeriod(t time.Time) string { return t.UTC().Format("2006-01") }
