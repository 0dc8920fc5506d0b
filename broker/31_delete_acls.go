package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/metadata"
)

// DeleteAcls: v0-3
//
// Behavior:
//   - Carried out by the controller, which records the deletion in the metadata log;
//     other brokers forward the request to it and answer once their own metadata
//     no longer holds the deleted ACLs. Each filter's result lists the ACLs it
//     matched and deleted; at most 1,000 filters and 10,000 ACLs per request.
//   - Needs ALTER on the cluster, else every filter gets
//     CLUSTER_AUTHORIZATION_FAILED.
//   - A filter with an UNKNOWN field gets INVALID_REQUEST; the others still apply.
//   - v0 knows no pattern types: its filters match LITERAL ACLs only.
//   - Without authorizer.class.name: SECURITY_DISABLED.

func init() { register(31, 0, 3, (*Broker).handleDeleteACLs) }

// maxACLFilters bounds the filters of one DeleteAcls request: each is matched against
// every ACL of the cluster.
const maxACLFilters = 1000

func (b *Broker) handleDeleteACLs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	fail := func(err error) (kmsg.Response, error) {
		for range req.Filters {
			r := kmsg.NewDeleteACLsResponseResult()
			r.ErrorCode, r.ErrorMessage = errCode(err), errMessage(err)
			resp.Results = append(resp.Results, r)
		}
		return resp, nil
	}
	if err := b.aclChangeRefusal(cc); err != nil {
		return fail(err)
	}
	if len(req.Filters) > maxACLFilters {
		return fail(kafkaErr(kerr.InvalidRequest, fmt.Sprintf("at most %d filters in one request", maxACLFilters)))
	}
	if !b.quorum.IsController() {
		fwd, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				var gone []acl.Binding
				for _, r := range fwd.(*kmsg.DeleteACLsResponse).Results {
					for _, m := range r.MatchingACLs {
						gone = append(gone, acl.Binding{ResourceType: m.ResourceType, ResourceName: m.ResourceName,
							PatternType: m.ResourcePatternType, Principal: m.Principal, Host: m.Host, Operation: m.Operation,
							Permission: m.PermissionType})
					}
				}
				b.waitForImage(cc.ctx, func() bool {
					set := b.quorum.Image().ACLs
					for _, g := range gone {
						if hasACL(set, g) {
							return false
						}
					}
					return true
				})
			}
			return fwd, err
		}
	}
	filters := make([]acl.Filter, len(req.Filters))
	valid := make([]acl.Filter, 0, len(req.Filters))
	errs := make([]error, len(req.Filters))
	for i, rf := range req.Filters {
		filters[i] = deleteFilter(req.Version, rf)
		if err := filters[i].Validate(); err != nil {
			errs[i] = kafkaErr(kerr.InvalidRequest, err.Error())
			continue
		}
		valid = append(valid, filters[i])
	}
	deleted, err := b.quorum.DeleteACLs(cc.ctx, valid)
	if err != nil {
		if errors.Is(err, metadata.ErrNotController) {
			return nil, err
		}
		return fail(err)
	}
	for i := range req.Filters {
		r := kmsg.NewDeleteACLsResponseResult()
		if errs[i] != nil {
			r.ErrorCode, r.ErrorMessage = errCode(errs[i]), errMessage(errs[i])
			resp.Results = append(resp.Results, r)
			continue
		}
		for _, d := range deleted[0] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = d.ResourceType, d.ResourceName, d.PatternType
			m.Principal, m.Host, m.Operation, m.PermissionType = d.Principal, d.Host, d.Operation, d.Permission
			r.MatchingACLs = append(r.MatchingACLs, m)
		}
		deleted = deleted[1:]
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// deleteFilter is one filter of a DeleteAcls request.
func deleteFilter(version int16, rf kmsg.DeleteACLsRequestFilter) acl.Filter {
	f := acl.Filter{ResourceType: rf.ResourceType, ResourceName: rf.ResourceName, PatternType: rf.ResourcePatternType,
		Principal: rf.Principal, Host: rf.Host, Operation: rf.Operation, Permission: rf.PermissionType}
	if version < 1 {
		f.PatternType = kmsg.ACLResourcePatternTypeLiteral
	}
	return f
}
