package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/mail"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/adminapi"
)

// Tenants and plans (issue 17). A tenant owns principals and resource prefixes; the controller keeps
// PREFIXED ACLs for them in the same entries as the tenant's records (ALLOW ALL on each prefix, for
// topics, groups and transactional ids, for each principal), so its ACLs appear and disappear with
// the tenant and one tenant can do nothing in another's namespace.

// Bounds on what the management API may store: the sizes are the client's to choose.
const (
	MaxTenants          = 10000
	MaxPlans            = 1000
	MaxTenantPrincipals = 100
	MaxTenantPrefixes   = 20
	maxTenantNameLen    = 64
	maxTenantPrefixLen  = 200
	maxNotifyLen        = 254
)

// Errors of the tenant operations; the admin interface maps them to HTTP statuses.
var (
	// ErrInvalid wraps every refusal of a tenant or plan document (400).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound is a tenant or plan that does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict is a tenant or plan that clashes with another one (409).
	ErrConflict = errors.New("conflict")
)

// TenantState is a tenant as the image holds it: its document and the IDs of the ACLs managed for it.
type TenantState struct {
	adminapi.Tenant
	ACLIDs [][16]byte `json:"acl_ids,omitempty"`
}

type tenantRecord struct {
	Tenant TenantState `json:"tenant"`
}

type removeTenantRecord struct {
	Name string `json:"name"`
}

type planRecord struct {
	Plan adminapi.Plan `json:"plan"`
}

func (tenantRecord) recordType() string       { return "tenant" }
func (removeTenantRecord) recordType() string { return "remove_tenant" }
func (planRecord) recordType() string         { return "plan" }

func init() {
	for name, f := range map[string]func() record{
		"tenant":        func() record { return &tenantRecord{} },
		"remove_tenant": func() record { return &removeTenantRecord{} },
		"plan":          func() record { return &planRecord{} },
	} {
		recordKinds[name] = struct {
			newRec  func() record
			version int
		}{f, 1}
	}
}

var (
	tenantNameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	tenantPrefixRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	slackChannelRE = regexp.MustCompile(`^#?[a-z0-9][a-z0-9._-]*$`)
)

// tenantError is a refusal of a tenant operation: its message alone, and errors.Is reaches its kind
// (ErrInvalid, ErrNotFound, ErrConflict).
type tenantError struct {
	kind error
	msg  string
}

func (e *tenantError) Error() string { return e.msg }
func (e *tenantError) Unwrap() error { return e.kind }

func tenantErrf(kind error, format string, args ...any) error {
	return &tenantError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) error { return tenantErrf(ErrInvalid, format, args...) }

// ValidName checks a tenant or plan name: lower-case letters, digits, '.', '_' and '-', at most 64
// bytes. what names the field in the error.
func ValidName(what, name string) error {
	if len(name) == 0 || len(name) > maxTenantNameLen || !tenantNameRE.MatchString(name) {
		return invalidf("%s %q: want 1 to %d lower-case letters, digits, '.', '_' or '-'", what, name, maxTenantNameLen)
	}
	return nil
}

// ValidatePlan checks a plan document and fills its defaults.
func ValidatePlan(p *adminapi.Plan) error {
	if err := ValidName("name", p.Name); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"produce_bytes_per_second", p.ProduceBytesPerSecond}, {"fetch_bytes_per_second", p.FetchBytesPerSecond},
		{"disk_bytes", p.DiskBytes}, {"partitions", int64(p.Partitions)}, {"connections", int64(p.Connections)},
	} {
		if f.v < 0 {
			return invalidf("%s: %d is negative (0 means unlimited)", f.name, f.v)
		}
	}
	switch p.DiskPolicy {
	case "":
		p.DiskPolicy = adminapi.DiskPolicyReject
	case adminapi.DiskPolicyReject:
	default:
		return invalidf("disk_policy: %q is not %q", p.DiskPolicy, adminapi.DiskPolicyReject)
	}
	return nil
}

// ValidateTenant checks a tenant document on its own (not against other tenants) and normalizes
// it: principals and prefixes sorted, duplicates removed.
func ValidateTenant(t *adminapi.Tenant) error {
	if err := ValidName("name", t.Name); err != nil {
		return err
	}
	if err := ValidName("plan", t.Plan); err != nil {
		return err
	}
	if len(t.Principals) > MaxTenantPrincipals {
		return invalidf("principals: %d given, at most %d", len(t.Principals), MaxTenantPrincipals)
	}
	if len(t.Prefixes) == 0 || len(t.Prefixes) > MaxTenantPrefixes {
		return invalidf("prefixes: %d given, want 1 to %d", len(t.Prefixes), MaxTenantPrefixes)
	}
	for _, p := range t.Principals {
		typ, name, ok := strings.Cut(p, ":")
		if !ok || typ == "" || name == "" || len(p) > acl.MaxPrincipalLen || name == acl.Wildcard {
			return invalidf("principals: %q is not a principal of the form Type:name (no wildcard)", p)
		}
	}
	for _, p := range t.Prefixes {
		if len(p) > maxTenantPrefixLen || !tenantPrefixRE.MatchString(p) {
			return invalidf("prefixes: %q: want 1 to %d letters, digits, '.', '_' or '-'", p, maxTenantPrefixLen)
		}
	}
	if c := t.SlackChannel; c != "" && (len(c) > 80 || !slackChannelRE.MatchString(c)) {
		return invalidf("slack_channel: %q is not a Slack channel name", c)
	}
	if e := t.Email; e != "" {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > maxNotifyLen {
			return invalidf("email: %q is not an email address", e)
		}
	}
	t.Principals = sortedUnique(t.Principals)
	t.Prefixes = sortedUnique(t.Prefixes)
	for i := 1; i < len(t.Prefixes); i++ {
		if strings.HasPrefix(t.Prefixes[i], t.Prefixes[i-1]) {
			return invalidf("prefixes: %q contains %q", t.Prefixes[i], t.Prefixes[i-1])
		}
	}
	return nil
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// prefixesOverlap reports whether a resource could fall under a prefix of both lists.
func prefixesOverlap(a, b []string) (string, string, bool) {
	for _, x := range a {
		for _, y := range b {
			if strings.HasPrefix(x, y) || strings.HasPrefix(y, x) {
				return x, y, true
			}
		}
	}
	return "", "", false
}

// checkTenantAgainst checks t against the other tenants and plans of img.
func checkTenantAgainst(img *Image, t adminapi.Tenant) error {
	if _, ok := img.Plans[t.Plan]; !ok {
		return tenantErrf(ErrInvalid, "plan %q does not exist", t.Plan)
	}
	for _, o := range img.SortedTenants() {
		if o.Name == t.Name {
			continue
		}
		if x, y, ok := prefixesOverlap(t.Prefixes, o.Prefixes); ok {
			return tenantErrf(ErrConflict, "prefix %q overlaps prefix %q of tenant %q", x, y, o.Name)
		}
		for _, p := range t.Principals {
			if slices.Contains(o.Principals, p) {
				return tenantErrf(ErrConflict, "principal %q belongs to tenant %q", p, o.Name)
			}
		}
	}
	return nil
}

// TenantResourceTypes are the resource types a tenant's prefixes cover.
var TenantResourceTypes = []kmsg.ACLResourceType{kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeTransactionalId}

// TenantACLs are the ACLs managed for a tenant: ALLOW ALL, from any host, on each of its prefixes
// (PREFIXED) of each resource type in TenantResourceTypes, for each of its principals.
func TenantACLs(t adminapi.Tenant) []acl.Binding {
	var out []acl.Binding
	for _, p := range t.Principals {
		for _, prefix := range t.Prefixes {
			for _, rt := range TenantResourceTypes {
				out = append(out, acl.Binding{ResourceType: rt, ResourceName: prefix, PatternType: kmsg.ACLResourcePatternTypePrefixed,
					Principal: p, Host: acl.Wildcard, Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow})
			}
		}
	}
	return out
}

// PutTenant creates or replaces a tenant, with its managed ACLs, as one entry. The plan must exist;
// its prefixes must not overlap and its principals must not be another tenant's.
func (q *Quorum) PutTenant(ctx context.Context, t adminapi.Tenant) (adminapi.Tenant, error) {
	if err := ValidateTenant(&t); err != nil {
		return t, err
	}
	if _, err := q.lockController(); err != nil {
		return t, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	if err := checkTenantAgainst(img, t); err != nil {
		return t, err
	}
	old, exists := img.Tenants[t.Name]
	if !exists && len(img.Tenants) >= MaxTenants {
		return t, tenantErrf(ErrConflict, "the cluster holds at most %d tenants", MaxTenants)
	}
	recs := tenantACLRecords(img, old.ACLIDs, TenantACLs(t))
	st := TenantState{Tenant: t}
	if len(recs) > 0 {
		if c, ok := recs[len(recs)-1].(createACLsRecord); ok {
			for _, a := range c.ACLs {
				st.ACLIDs = append(st.ACLIDs, a.ID)
			}
		}
	}
	if img.ACLs.Len()-len(old.ACLIDs)+len(st.ACLIDs) > MaxACLs {
		return t, tenantErrf(ErrConflict, "the cluster holds at most %d acls", MaxACLs)
	}
	if _, err := q.proposeLocked(ctx, append(recs, tenantRecord{Tenant: st})); err != nil {
		return t, err
	}
	return t, nil
}

// tenantACLRecords removes the managed ACLs in oldIDs that still exist (an administrator may have
// deleted some with DeleteAcls) and creates bindings with new IDs.
func tenantACLRecords(img *Image, oldIDs [][16]byte, bindings []acl.Binding) []record {
	var recs []record
	var del deleteACLsRecord
	for _, id := range oldIDs {
		if img.ACLs != nil {
			if _, ok := img.ACLs.ByID[id]; ok {
				del.IDs = append(del.IDs, id)
			}
		}
	}
	if len(del.IDs) > 0 {
		recs = append(recs, del)
	}
	if len(bindings) > 0 {
		var c createACLsRecord
		used := map[[16]byte]bool{}
		for _, b := range bindings {
			id := newACLID(img)
			for used[id] {
				id = newACLID(img)
			}
			used[id] = true
			c.ACLs = append(c.ACLs, aclWithID{ID: id, Binding: b})
		}
		recs = append(recs, c)
	}
	return recs
}

// DeleteTenant removes a tenant and its managed ACLs. Its topics stay (and are then nobody's but the
// super users'); delete them first if they should go.
func (q *Quorum) DeleteTenant(ctx context.Context, name string) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	old, ok := img.Tenants[name]
	if !ok {
		return tenantErrf(ErrNotFound, "tenant %q does not exist", name)
	}
	recs := tenantACLRecords(img, old.ACLIDs, nil)
	_, err := q.proposeLocked(ctx, append(recs, removeTenantRecord{Name: name}))
	return err
}

// PutPlan creates or replaces a plan; tenants on it are held to the new limits at once.
func (q *Quorum) PutPlan(ctx context.Context, p adminapi.Plan) (adminapi.Plan, error) {
	if err := ValidatePlan(&p); err != nil {
		return p, err
	}
	if _, err := q.lockController(); err != nil {
		return p, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	if _, ok := img.Plans[p.Name]; !ok && len(img.Plans) >= MaxPlans {
		return p, tenantErrf(ErrConflict, "the cluster holds at most %d plans", MaxPlans)
	}
	_, err := q.proposeLocked(ctx, []record{planRecord{Plan: p}})
	return p, err
}

// applyTenant applies tenant, remove_tenant and plan records.
func (b *builder) applyTenant(rec record) error {
	switch r := rec.(type) {
	case tenantRecord:
		t := r.Tenant
		if err := ValidateTenant(&t.Tenant); err != nil {
			return err
		}
		if err := checkTenantAgainst(b.next, t.Tenant); err != nil {
			return err
		}
		b.next.Tenants = maps.Clone(b.next.Tenants)
		if b.next.Tenants == nil {
			b.next.Tenants = map[string]TenantState{}
		}
		b.next.Tenants[t.Name] = t
	case removeTenantRecord:
		if _, ok := b.next.Tenants[r.Name]; !ok {
			return fmt.Errorf("unknown tenant %q", r.Name)
		}
		b.next.Tenants = maps.Clone(b.next.Tenants)
		delete(b.next.Tenants, r.Name)
	case planRecord:
		p := r.Plan
		if err := ValidatePlan(&p); err != nil {
			return err
		}
		b.next.Plans = maps.Clone(b.next.Plans)
		if b.next.Plans == nil {
			b.next.Plans = map[string]adminapi.Plan{}
		}
		b.next.Plans[p.Name] = p
	}
	return nil
}

// SortedTenants returns every tenant sorted by name.
func (img *Image) SortedTenants() []TenantState {
	out := slices.Collect(maps.Values(img.Tenants))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// SortedPlans returns every plan sorted by name.
func (img *Image) SortedPlans() []adminapi.Plan {
	out := slices.Collect(maps.Values(img.Plans))
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TenantOfResource returns the tenant whose prefix a topic, group or transactional id starts with.
func (img *Image) TenantOfResource(name string) (TenantState, bool) {
	for _, t := range img.Tenants {
		for _, p := range t.Prefixes {
			if strings.HasPrefix(name, p) {
				return t, true
			}
		}
	}
	return TenantState{}, false
}

// TenantOfPrincipal returns the tenant a principal belongs to.
func (img *Image) TenantOfPrincipal(principal string) (TenantState, bool) {
	for _, t := range img.Tenants {
		if slices.Contains(t.Principals, principal) {
			return t, true
		}
	}
	return TenantState{}, false
}
