package broker

import (
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// DescribeClientQuotas: v0-1
//
// Behavior:
//   - Answered from this broker's metadata image: the client quotas (KIP-546)
//     set with AlterClientQuotas, for entities of types user and client-id.
//   - Each component filters one entity type: EXACT matches a name, DEFAULT the
//     default entity, ANY every entity having that type. Strict excludes
//     entities with types no component names. A component of an unknown type, or
//     two for one type, gets INVALID_REQUEST.
//   - Needs DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED).

func init() { register(48, 0, 1, (*Broker).handleDescribeClientQuotas) }

func (b *Broker) handleDescribeClientQuotas(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationDescribeConfigs) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	filters := map[string]kmsg.DescribeClientQuotasRequestComponent{}
	for _, c := range req.Components {
		_, dup := filters[c.EntityType]
		known := c.EntityType == metadata.QuotaEntityUser || c.EntityType == metadata.QuotaEntityClientID
		if dup || !known || (c.MatchType == kmsg.QuotasMatchTypeExact && c.Match == nil) || c.MatchType > kmsg.QuotasMatchTypeAny {
			resp.ErrorCode = kerr.InvalidRequest.Code
			msg := "components must name user or client-id once each, with a name for EXACT matches"
			resp.ErrorMessage = &msg
			return resp, nil
		}
		filters[c.EntityType] = c
	}
	for _, cq := range b.quorum.Image().SortedClientQuotas() {
		if !quotaEntityMatches(cq.Entity, filters, req.Strict) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, p := range cq.Entity {
			ee := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			ee.Type, ee.Name = p.Type, p.Name
			e.Entity = append(e.Entity, ee)
		}
		for _, k := range slices.Sorted(maps.Keys(cq.Values)) {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = k, cq.Values[k]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

func quotaEntityMatches(e metadata.QuotaEntity, filters map[string]kmsg.DescribeClientQuotasRequestComponent, strict bool) bool {
	for typ, f := range filters {
		p, ok := e.Part(typ)
		if !ok {
			return false
		}
		switch f.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if p.Name == nil || *p.Name != *f.Match {
				return false
			}
		case kmsg.QuotasMatchTypeDefault:
			if p.Name != nil {
				return false
			}
		}
	}
	return !strict || len(e) == len(filters)
}
