package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
)

// DescribeAcls: v0-3
//
// Behavior:
//   - Lists the ACLs the filter matches, from this broker's metadata image,
//     grouped by resource pattern. Needs DESCRIBE on the cluster, else
//     CLUSTER_AUTHORIZATION_FAILED.
//   - v0 knows no pattern types: its filter matches LITERAL ACLs only.
//   - Without authorizer.class.name: SECURITY_DISABLED, as Kafka answers.
//   - A filter with an UNKNOWN field gets INVALID_REQUEST.

func init() { register(29, 0, 3, (*Broker).handleDescribeACLs) }

func (b *Broker) handleDescribeACLs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	a := b.authorizer()
	f := describeFilter(req)
	var err error
	switch {
	case a == nil:
		err = kafkaErr(kerr.SecurityDisabled, "no authorizer is configured")
	case !cc.authorizedCluster(kmsg.ACLOperationDescribe):
		err = kerr.ClusterAuthorizationFailed
	default:
		if verr := f.Validate(); verr != nil {
			err = kafkaErr(kerr.InvalidRequest, verr.Error())
		}
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp, nil
	}
	type pattern struct {
		rt   kmsg.ACLResourceType
		name string
		pt   kmsg.ACLResourcePatternType
	}
	index := map[pattern]int{}
	for _, bd := range a.Bindings(f) {
		p := pattern{bd.ResourceType, bd.ResourceName, bd.PatternType}
		i, ok := index[p]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = p.rt, p.name, p.pt
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			index[p] = i
		}
		e := kmsg.NewDescribeACLsResponseResourceACL()
		e.Principal, e.Host, e.Operation, e.PermissionType = bd.Principal, bd.Host, bd.Operation, bd.Permission
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, e)
	}
	return resp, nil
}

// describeFilter is the filter of a DescribeAcls request.
func describeFilter(req *kmsg.DescribeACLsRequest) acl.Filter {
	f := acl.Filter{ResourceType: req.ResourceType, ResourceName: req.ResourceName, PatternType: req.ResourcePatternType,
		Principal: req.Principal, Host: req.Host, Operation: req.Operation, Permission: req.PermissionType}
	if req.Version < 1 {
		f.PatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	return f
}
