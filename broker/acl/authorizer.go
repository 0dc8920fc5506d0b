package acl

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config is what the authorizer takes from the broker configuration.
type Config struct {
	// SuperUsers may do everything, whatever the ACLs say (Kafka's `super.users`, principals such as
	// "User:admin").
	SuperUsers []string
	// AllowIfNoACL allows an operation on a resource no ACL names at all (Kafka's
	// `allow.everyone.if.no.acl.found`, false by default).
	AllowIfNoACL bool
}

// Authorizer decides requests over one set of bindings. It is immutable: a change of the ACLs builds a
// new one, so any number of goroutines may use one at once without locks. Bindings are indexed by
// resource type, then by literal name and by prefix, so a decision looks at the few bindings that can
// apply to the resource, never at all of them.
type Authorizer struct {
	superUsers   map[string]bool
	allowIfNoACL bool
	byType       [kmsg.ACLResourceTypeUser + 1]resourceIndex
	all          []Binding
}

type resourceIndex struct {
	literal    map[string][]Binding // by resource name; "*" holds the wildcard bindings
	prefixed   map[string][]Binding // by prefix
	prefixLens []int                // the distinct lengths of the prefixes, ascending
	count      int
}

// New indexes bindings (already validated) under cfg.
func New(cfg Config, bindings []Binding) *Authorizer {
	a := &Authorizer{superUsers: make(map[string]bool, len(cfg.SuperUsers)), allowIfNoACL: cfg.AllowIfNoACL,
		all: slices.Clone(bindings)}
	for _, u := range cfg.SuperUsers {
		a.superUsers[u] = true
	}
	for _, b := range bindings {
		if b.ResourceType < 0 || int(b.ResourceType) >= len(a.byType) {
			continue
		}
		ix := &a.byType[b.ResourceType]
		ix.count++
		switch b.PatternType {
		case kmsg.ACLResourcePatternTypeLiteral:
			if ix.literal == nil {
				ix.literal = map[string][]Binding{}
			}
			ix.literal[b.ResourceName] = append(ix.literal[b.ResourceName], b)
		case kmsg.ACLResourcePatternTypePrefixed:
			if ix.prefixed == nil {
				ix.prefixed = map[string][]Binding{}
			}
			ix.prefixed[b.ResourceName] = append(ix.prefixed[b.ResourceName], b)
			if !slices.Contains(ix.prefixLens, len(b.ResourceName)) {
				ix.prefixLens = append(ix.prefixLens, len(b.ResourceName))
			}
		}
	}
	for i := range a.byType {
		slices.Sort(a.byType[i].prefixLens)
	}
	return a
}

// IsSuperUser reports whether principal is one of `super.users`.
func (a *Authorizer) IsSuperUser(principal string) bool { return a.superUsers[principal] }

// Len is the number of bindings.
func (a *Authorizer) Len() int { return len(a.all) }

// Bindings returns the bindings f matches.
func (a *Authorizer) Bindings(f Filter) []Binding {
	var out []Binding
	for _, b := range a.all {
		if f.Matches(b) {
			out = append(out, b)
		}
	}
	return out
}

// decision is what the bindings on one resource say about a request.
type decision struct {
	matched bool // some binding names the resource, whoever it is for
	allowed bool
	denied  bool
}

func (d *decision) consider(bs []Binding, principal, host string, op kmsg.ACLOperation) {
	for i := range bs {
		d.matched = true
		switch result(&bs[i], principal, host, op) {
		case kmsg.ACLPermissionTypeDeny:
			d.denied = true
			return
		case kmsg.ACLPermissionTypeAllow:
			d.allowed = true
		}
	}
}

// Authorize reports whether principal, connected from host (an IP address), may perform op on the
// resource of type rt called name, as Kafka's StandardAuthorizer decides it: super users may do
// everything; a matching DENY binding wins over any ALLOW; an ALLOW of READ, WRITE, DELETE or ALTER
// also allows DESCRIBE, and one of ALTER_CONFIGS allows DESCRIBE_CONFIGS; a resource no binding names
// at all is allowed only with `allow.everyone.if.no.acl.found`.
func (a *Authorizer) Authorize(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if a.superUsers[principal] {
		return true
	}
	if rt < 0 || int(rt) >= len(a.byType) {
		return false
	}
	ix := &a.byType[rt]
	if ix.count == 0 {
		return a.allowIfNoACL
	}
	var d decision
	d.consider(ix.literal[name], principal, host, op)
	if !d.denied && name != Wildcard {
		d.consider(ix.literal[Wildcard], principal, host, op)
	}
	for _, n := range ix.prefixLens {
		if d.denied || n > len(name) {
			break
		}
		d.consider(ix.prefixed[name[:n]], principal, host, op)
	}
	switch {
	case d.denied:
		return false
	case d.allowed:
		return true
	default:
		return !d.matched && a.allowIfNoACL
	}
}

// result is what binding b says about principal performing op from host: ALLOW, DENY, or UNKNOWN when
// it does not apply. Implied operations only follow from ALLOW bindings: a DENY of READ does not deny
// DESCRIBE.
func result(b *Binding, principal, host string, op kmsg.ACLOperation) kmsg.ACLPermissionType {
	if b.Principal != principal && b.Principal != WildcardPrincipal {
		return kmsg.ACLPermissionTypeUnknown
	}
	if b.Host != Wildcard && b.Host != host {
		return kmsg.ACLPermissionTypeUnknown
	}
	if b.Operation != kmsg.ACLOperationAll && b.Operation != op {
		if b.Permission != kmsg.ACLPermissionTypeAllow || !implies(b.Operation, op) {
			return kmsg.ACLPermissionTypeUnknown
		}
	}
	return b.Permission
}

// implies reports whether an ALLOW of granted also allows op.
func implies(granted, op kmsg.ACLOperation) bool {
	switch op {
	case kmsg.ACLOperationDescribe:
		switch granted {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return granted == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// AuthorizeAny reports whether principal may perform op on at least one resource of type rt, as
// Kafka's authorizeByResourceType (KIP-679) decides it: an ALLOW binding for op that no DENY for op
// covers (a DENY of the same literal name, of a prefix of it, or of the wildcard). An idempotent
// producer needs this for WRITE on topics when it lacks IDEMPOTENT_WRITE on the cluster.
func (a *Authorizer) AuthorizeAny(principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	if a.superUsers[principal] {
		return true
	}
	if rt < 0 || int(rt) >= len(a.byType) {
		return false
	}
	ix := &a.byType[rt]
	if ix.count == 0 {
		return a.allowIfNoACL
	}
	applies := func(b *Binding, perm kmsg.ACLPermissionType) bool {
		return b.Permission == perm && (b.Principal == principal || b.Principal == WildcardPrincipal) &&
			(b.Host == Wildcard || b.Host == host) && (b.Operation == op || b.Operation == kmsg.ACLOperationAll)
	}
	var denyLiteral, denyPrefix []string
	for i := range a.all {
		b := &a.all[i]
		if b.ResourceType != rt || !applies(b, kmsg.ACLPermissionTypeDeny) {
			continue
		}
		if b.PatternType == kmsg.ACLResourcePatternTypeLiteral {
			if b.ResourceName == Wildcard {
				return false
			}
			denyLiteral = append(denyLiteral, b.ResourceName)
		} else {
			denyPrefix = append(denyPrefix, b.ResourceName)
		}
	}
	for i := range a.all {
		b := &a.all[i]
		if b.ResourceType != rt || !applies(b, kmsg.ACLPermissionTypeAllow) {
			continue
		}
		covered := slices.ContainsFunc(denyPrefix, func(p string) bool { return strings.HasPrefix(b.ResourceName, p) })
		if !covered && b.PatternType == kmsg.ACLResourcePatternTypeLiteral {
			covered = slices.Contains(denyLiteral, b.ResourceName)
		}
		if !covered {
			return true
		}
	}
	return false
}

// Operations lists, for KIP-430's authorized operations, the operations that exist on each resource
// type, as Kafka reports them.
var Operations = map[kmsg.ACLResourceType][]kmsg.ACLOperation{
	kmsg.ACLResourceTypeTopic: {kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate,
		kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs},
	kmsg.ACLResourceTypeGroup: {kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete},
	kmsg.ACLResourceTypeCluster: {kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction,
		kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite,
		kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe},
	kmsg.ACLResourceTypeTransactionalId: {kmsg.ACLOperationDescribe, kmsg.ACLOperationWrite},
}

// AuthorizedOperations is the KIP-430 bit field of the operations principal may perform on the
// resource: bit n set for the operation with code n.
func (a *Authorizer) AuthorizedOperations(principal, host string, rt kmsg.ACLResourceType, name string) int32 {
	var bits int32
	for _, op := range Operations[rt] {
		if a.Authorize(principal, host, op, rt, name) {
			bits |= 1 << uint(op)
		}
	}
	return bits
}
