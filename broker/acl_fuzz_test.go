package broker

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
)

// FuzzACLFilter decodes DescribeAcls and DeleteAcls request bodies as the broker
// does and matches their filters against a fixed set of ACLs: decoding and matching
// never panic, a filter the broker accepts is bounded, and what it matches obeys the
// pattern semantics (LITERAL and PREFIXED filters match that exact pattern name, MATCH
// only the ACLs that apply to the name).
func FuzzACLFilter(f *testing.F) {
	name := "orders"
	d := kmsg.NewPtrDescribeACLsRequest()
	d.ResourceType, d.ResourceName, d.ResourcePatternType = kmsg.ACLResourceTypeTopic, &name, kmsg.ACLResourcePatternTypeMatch
	d.Operation, d.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del := kmsg.NewPtrDeleteACLsRequest()
	df := kmsg.NewDeleteACLsRequestFilter()
	df.ResourceType, df.ResourcePatternType, df.Operation, df.PermissionType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny, kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, df)
	for v := int16(0); v <= 3; v++ {
		d.Version, del.Version = v, v
		f.Add(true, v, d.AppendTo(nil))
		f.Add(false, v, del.AppendTo(nil))
	}
	bindings := []acl.Binding{
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:a", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "*", PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:*", Host: "*", Operation: kmsg.ACLOperationDescribe, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "ord", PatternType: kmsg.ACLResourcePatternTypePrefixed, Principal: "User:b", Host: "10.0.0.1", Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeDeny},
		{ResourceType: kmsg.ACLResourceTypeGroup, ResourceName: "g", PatternType: kmsg.ACLResourcePatternTypePrefixed, Principal: "User:a", Host: "*", Operation: kmsg.ACLOperationAll, Permission: kmsg.ACLPermissionTypeAllow},
		{ResourceType: kmsg.ACLResourceTypeCluster, ResourceName: acl.ClusterName, PatternType: kmsg.ACLResourcePatternTypeLiteral, Principal: "User:a", Host: "*", Operation: kmsg.ACLOperationAlter, Permission: kmsg.ACLPermissionTypeAllow},
	}
	f.Fuzz(func(t *testing.T, describe bool, version int16, body []byte) {
		version = max(0, min(version, 3))
		var filters []acl.Filter
		if describe {
			req := kmsg.NewPtrDescribeACLsRequest()
			req.Version = version
			if req.ReadFrom(body) != nil {
				return
			}
			filters = append(filters, describeFilter(req))
		} else {
			req := kmsg.NewPtrDeleteACLsRequest()
			req.Version = version
			if req.ReadFrom(body) != nil {
				return
			}
			for _, rf := range req.Filters {
				filters = append(filters, deleteFilter(version, rf))
			}
		}
		for _, fl := range filters {
			if fl.Validate() != nil {
				continue
			}
			if version < 1 && fl.PatternType != kmsg.ACLResourcePatternTypeLiteral {
				t.Fatalf("a v0 filter must match LITERAL only, got %s", fl.PatternType)
			}
			for _, b := range bindings {
				if !fl.Matches(b) || fl.ResourceName == nil {
					continue
				}
				n := *fl.ResourceName
				switch fl.PatternType {
				case kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed, kmsg.ACLResourcePatternTypeAny:
					if b.ResourceName != n {
						t.Fatalf("filter %+v matched %v of another name", fl, b)
					}
				case kmsg.ACLResourcePatternTypeMatch:
					applies := b.ResourceName == n || (b.PatternType == kmsg.ACLResourcePatternTypeLiteral && b.ResourceName == acl.Wildcard) ||
						(b.PatternType == kmsg.ACLResourcePatternTypePrefixed && strings.HasPrefix(n, b.ResourceName))
					if !applies {
						t.Fatalf("MATCH filter for %q matched %v, which does not apply to it", n, b)
					}
				}
			}
		}
	})
}
