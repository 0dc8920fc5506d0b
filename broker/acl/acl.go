// Package acl holds Kafka's access control lists as Sluice stores and enforces them: bindings (an
// operation a principal may or may not perform from a host on a resource pattern), filters over
// bindings as CreateAcls, DescribeAcls and DeleteAcls carry them, and the Authorizer, an immutable
// index over a set of bindings that answers with the semantics of Apache Kafka's StandardAuthorizer.
package acl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ClusterName is the name of the one CLUSTER resource, as in Kafka.
const ClusterName = "kafka-cluster"

// Wildcard is the resource name, principal name and host that match every other.
const Wildcard = "*"

// WildcardPrincipal is the principal of ACLs that apply to every user.
const WildcardPrincipal = "User:*"

// AnonymousPrincipal is the principal of an unauthenticated connection.
const AnonymousPrincipal = "User:ANONYMOUS"

// Limits on what a binding may hold: client-controlled sizes are bounded.
const (
	// MaxNameLen bounds a resource name; Kafka's longest resource name, a topic, has at most 249.
	MaxNameLen = 1024
	// MaxPrincipalLen bounds a principal ("User:" and the name).
	MaxPrincipalLen = 1024
	// MaxHostLen bounds an ACL host (an IP address or "*").
	MaxHostLen = 256
)

// Binding is one ACL: Permission (ALLOW or DENY) of Operation on the resources of ResourceType that
// ResourceName names under PatternType (LITERAL, or PREFIXED), for Principal ("User:alice", or
// "User:*") connecting from Host (an IP address, or "*").
type Binding struct {
	ResourceType kmsg.ACLResourceType        `json:"resource_type"`
	ResourceName string                      `json:"resource_name"`
	PatternType  kmsg.ACLResourcePatternType `json:"pattern_type"`
	Principal    string                      `json:"principal"`
	Host         string                      `json:"host"`
	Operation    kmsg.ACLOperation           `json:"operation"`
	Permission   kmsg.ACLPermissionType      `json:"permission"`
}

func (b Binding) String() string {
	return fmt.Sprintf("(%s:%s:%s, %s from %s: %s %s)", b.ResourceType, b.PatternType, b.ResourceName,
		b.Principal, b.Host, b.Permission, b.Operation)
}

// ErrInvalid wraps every reason a binding or filter is refused; the broker answers INVALID_REQUEST.
var ErrInvalid = errors.New("invalid acl")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports why b cannot be stored, as Kafka's controller and AclApis refuse it: a concrete
// resource type, pattern type, operation and permission, a non-empty resource name (kafka-cluster
// for CLUSTER), a principal of the form Type:name, and a host.
func (b Binding) Validate() error {
	switch b.ResourceType {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster,
		kmsg.ACLResourceTypeTransactionalId, kmsg.ACLResourceTypeDelegationToken, kmsg.ACLResourceTypeUser:
	default:
		return invalid("invalid resource type %s", b.ResourceType)
	}
	switch b.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed:
	default:
		return invalid("invalid pattern type %s", b.PatternType)
	}
	switch {
	case b.Operation <= kmsg.ACLOperationAny || b.Operation > kmsg.ACLOperationDescribeTokens:
		return invalid("invalid operation %s", b.Operation)
	case b.Permission != kmsg.ACLPermissionTypeAllow && b.Permission != kmsg.ACLPermissionTypeDeny:
		return invalid("invalid permission type %s", b.Permission)
	case b.ResourceName == "":
		return invalid("invalid empty resource name")
	case len(b.ResourceName) > MaxNameLen:
		return invalid("resource name longer than %d bytes", MaxNameLen)
	case b.ResourceType == kmsg.ACLResourceTypeCluster && b.ResourceName != ClusterName:
		return invalid("the only valid name for the CLUSTER resource is %s", ClusterName)
	case len(b.Principal) > MaxPrincipalLen:
		return invalid("principal longer than %d bytes", MaxPrincipalLen)
	case b.Host == "" || len(b.Host) > MaxHostLen:
		return invalid("host must be an address or %q, at most %d bytes", Wildcard, MaxHostLen)
	}
	if typ, name, ok := strings.Cut(b.Principal, ":"); !ok || typ == "" || name == "" {
		return invalid("principal %q is not of the form Type:name", b.Principal)
	}
	return nil
}

// Filter selects bindings as DescribeAcls and DeleteAcls filters do. A nil ResourceName, Principal or
// Host matches any; ANY matches every resource type, pattern type, operation and permission.
// PatternType MATCH with a name selects the bindings that would apply to a resource of that name: the
// LITERAL one of that name, the LITERAL wildcard "*", and every PREFIXED one the name starts with.
type Filter struct {
	ResourceType kmsg.ACLResourceType
	ResourceName *string
	PatternType  kmsg.ACLResourcePatternType
	Principal    *string
	Host         *string
	Operation    kmsg.ACLOperation
	Permission   kmsg.ACLPermissionType
}

// Validate reports why f cannot be used: every enum must be known (UNKNOWN is refused as Kafka
// refuses it) and the strings bounded.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType <= kmsg.ACLResourceTypeUnknown || f.ResourceType > kmsg.ACLResourceTypeUser:
		return invalid("unknown resource type %s in filter", f.ResourceType)
	case f.PatternType <= kmsg.ACLResourcePatternTypeUnknown || f.PatternType > kmsg.ACLResourcePatternTypePrefixed:
		return invalid("unknown pattern type %s in filter", f.PatternType)
	case f.Operation <= kmsg.ACLOperationUnknown || f.Operation > kmsg.ACLOperationDescribeTokens:
		return invalid("unknown operation %s in filter", f.Operation)
	case f.Permission <= kmsg.ACLPermissionTypeUnknown || f.Permission > kmsg.ACLPermissionTypeAllow:
		return invalid("unknown permission type %s in filter", f.Permission)
	case f.ResourceName != nil && len(*f.ResourceName) > MaxNameLen:
		return invalid("resource name longer than %d bytes", MaxNameLen)
	case f.Principal != nil && len(*f.Principal) > MaxPrincipalLen:
		return invalid("principal longer than %d bytes", MaxPrincipalLen)
	case f.Host != nil && len(*f.Host) > MaxHostLen:
		return invalid("host longer than %d bytes", MaxHostLen)
	}
	return nil
}

// Matches reports whether f selects b, with the semantics of Kafka's AclBindingFilter.
func (f Filter) Matches(b Binding) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.PatternType != kmsg.ACLResourcePatternTypeAny && f.PatternType != kmsg.ACLResourcePatternTypeMatch &&
		f.PatternType != b.PatternType {
		return false
	}
	if f.ResourceName != nil {
		name := *f.ResourceName
		switch {
		case f.PatternType == kmsg.ACLResourcePatternTypeAny || f.PatternType == b.PatternType:
			if name != b.ResourceName {
				return false
			}
		case b.PatternType == kmsg.ACLResourcePatternTypeLiteral:
			if name != b.ResourceName && b.ResourceName != Wildcard {
				return false
			}
		case b.PatternType == kmsg.ACLResourcePatternTypePrefixed:
			if !strings.HasPrefix(name, b.ResourceName) {
				return false
			}
		default:
			return false
		}
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != b.Operation {
		return false
	}
	return f.Permission == kmsg.ACLPermissionTypeAny || f.Permission == b.Permission
}
