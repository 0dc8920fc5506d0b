package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/metadata"
)

// CreateAcls: v0-3
//
// Behavior:
//   - Carried out by the controller, which records the ACLs in the metadata log;
//     other brokers forward the request to it and answer once their own metadata
//     holds the new ACLs. An ACL equal to an existing one is accepted and stored once.
//   - Needs ALTER on the cluster, else every creation gets
//     CLUSTER_AUTHORIZATION_FAILED.
//   - Each creation is checked as Kafka checks it (a concrete resource type, LITERAL
//     or PREFIXED, a concrete operation and permission, a non-empty name,
//     kafka-cluster for CLUSTER, a Type:name principal); a bad one gets
//     INVALID_REQUEST and the others are still created. At most 10,000 per request
//     and 100,000 in the cluster.
//   - v0 knows no pattern types: its ACLs are LITERAL.
//   - Without authorizer.class.name: SECURITY_DISABLED.

func init() { register(30, 0, 3, (*Broker).handleCreateACLs) }

// aclChangeRefusal is why CreateAcls and DeleteAcls from cc are refused, or nil: no
// authorizer is configured, or cc may not ALTER the cluster.
func (b *Broker) aclChangeRefusal(cc *conn) error {
	switch {
	case b.authorizer() == nil:
		return kafkaErr(kerr.SecurityDisabled, "no authorizer is configured")
	case !cc.authorizedCluster(kmsg.ACLOperationAlter):
		return kerr.ClusterAuthorizationFailed
	}
	return nil
}

func (b *Broker) handleCreateACLs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	fail := func(err error) (kmsg.Response, error) {
		for range req.Creations {
			r := kmsg.NewCreateACLsResponseResult()
			r.ErrorCode, r.ErrorMessage = errCode(err), errMessage(err)
			resp.Results = append(resp.Results, r)
		}
		return resp, nil
	}
	if err := b.aclChangeRefusal(cc); err != nil {
		return fail(err)
	}
	bindings := make([]acl.Binding, len(req.Creations))
	for i, c := range req.Creations {
		bindings[i] = acl.Binding{ResourceType: c.ResourceType, ResourceName: c.ResourceName, PatternType: c.ResourcePatternType,
			Principal: c.Principal, Host: c.Host, Operation: c.Operation, Permission: c.PermissionType}
		if req.Version < 1 {
			bindings[i].PatternType = kmsg.ACLResourcePatternTypeLiteral
		}
	}
	if !b.quorum.IsController() {
		fwd, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				results := fwd.(*kmsg.CreateACLsResponse).Results
				b.waitForImage(cc.ctx, func() bool {
					set := b.quorum.Image().ACLs
					for i, r := range results {
						if r.ErrorCode == 0 && i < len(bindings) && !hasACL(set, bindings[i]) {
							return false
						}
					}
					return true
				})
			}
			return fwd, err
		}
	}
	errs, err := b.quorum.CreateACLs(cc.ctx, bindings)
	if err != nil {
		if errors.Is(err, metadata.ErrNotController) {
			return nil, err // the client retries on another connection
		}
		return fail(err)
	}
	for _, e := range errs {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode, r.ErrorMessage = errCode(e), errMessage(e)
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// hasACL reports whether set holds b.
func hasACL(set *metadata.ACLSet, b acl.Binding) bool {
	if set == nil {
		return false
	}
	for _, have := range set.ByID {
		if have == b {
			return true
		}
	}
	return false
}
