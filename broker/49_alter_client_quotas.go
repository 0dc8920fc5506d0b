package broker

import (
	"errors"
	"fmt"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// AlterClientQuotas: v0-1
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it): every valid
//     entry is recorded in the metadata log in one entry, so all brokers enforce
//     the new quotas once they apply it.
//   - Entities are user and/or client-id, each named or the default (a null
//     name). Keys are producer_byte_rate, consumer_byte_rate (bytes/s, whole
//     numbers), request_percentage and controller_mutation_rate; values must be
//     positive and finite. Remove deletes a key. A bad entry gets
//     INVALID_REQUEST (entity) or INVALID_CONFIG (key, value) and changes
//     nothing; the other entries still apply.
//   - At most 1000 entries per request and 10000 entities with quotas; more get
//     POLICY_VIOLATION.
//   - ValidateOnly checks without applying.
//   - Needs ALTER_CONFIGS on the cluster; without it every entry gets
//     CLUSTER_AUTHORIZATION_FAILED (checked again by the controller, as the
//     client the Envelope names).

func init() { register(49, 0, 1, (*Broker).handleAlterClientQuotas) }

// Bounds on client quota changes.
const (
	maxQuotaEntriesPerRequest = 1000
	maxQuotaEntities          = 10000
)

func (b *Broker) handleAlterClientQuotas(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterClientQuotasRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil && !req.ValidateOnly {
				// So the client's next DescribeClientQuotas here sees the change.
				var applied []metadata.QuotaChange
				for i, e := range resp.(*kmsg.AlterClientQuotasResponse).Entries {
					if e.ErrorCode == 0 && i < len(req.Entries) {
						applied = append(applied, requestedQuotaChanges(req.Entries[i])...)
					}
				}
				b.waitForImage(cc.ctx, func() bool { return b.quotasApplied(applied) })
			}
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	allowed := cc.authorizedCluster(kmsg.ACLOperationAlterConfigs)
	var changes []metadata.QuotaChange
	entities := len(b.quorum.Image().ClientQuotas)
	for i, re := range req.Entries {
		se := kmsg.NewAlterClientQuotasResponseEntry()
		var entity metadata.QuotaEntity
		for _, p := range re.Entity {
			entity = append(entity, metadata.QuotaEntityPart{Type: p.Type, Name: p.Name})
			pe := kmsg.NewAlterClientQuotasResponseEntryEntity()
			pe.Type, pe.Name = p.Type, p.Name
			se.Entity = append(se.Entity, pe)
		}
		err := func() error {
			if !allowed {
				return kerr.ClusterAuthorizationFailed
			}
			if i >= maxQuotaEntriesPerRequest {
				return kafkaErr(kerr.PolicyViolation, fmt.Sprintf("more than %d entries in one request", maxQuotaEntriesPerRequest))
			}
			e, err := metadata.NormalizeQuotaEntity(entity)
			if err != nil {
				return kafkaErr(kerr.InvalidRequest, err.Error())
			}
			var ops []metadata.QuotaChange
			for _, op := range re.Ops {
				if err := validQuotaOp(op); err != nil {
					return err
				}
				ops = append(ops, metadata.QuotaChange{Entity: e, Key: op.Key, Value: op.Value, Remove: op.Remove})
			}
			if _, exists := b.quorum.Image().ClientQuotas[e.Key()]; !exists && len(ops) > 0 {
				if entities >= maxQuotaEntities {
					return kafkaErr(kerr.PolicyViolation, fmt.Sprintf("more than %d entities with quotas", maxQuotaEntities))
				}
				entities++
			}
			changes = append(changes, ops...)
			return nil
		}()
		se.ErrorCode, se.ErrorMessage = errCode(err), errMessage(err)
		resp.Entries = append(resp.Entries, se)
	}
	if req.ValidateOnly || len(changes) == 0 {
		return resp, nil
	}
	if err := b.quorum.AlterClientQuotas(cc.ctx, changes); err != nil {
		for i := range resp.Entries {
			if resp.Entries[i].ErrorCode == 0 {
				resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = errCode(err), errMessage(err)
			}
		}
		return resp, nil
	}
	b.waitForImage(cc.ctx, func() bool { return b.quotasApplied(changes) })
	return resp, nil
}

// requestedQuotaChanges are the changes of a request entry that was applied.
func requestedQuotaChanges(re kmsg.AlterClientQuotasRequestEntry) []metadata.QuotaChange {
	var entity metadata.QuotaEntity
	for _, p := range re.Entity {
		entity = append(entity, metadata.QuotaEntityPart{Type: p.Type, Name: p.Name})
	}
	e, err := metadata.NormalizeQuotaEntity(entity)
	if err != nil {
		return nil
	}
	var out []metadata.QuotaChange
	for _, op := range re.Ops {
		out = append(out, metadata.QuotaChange{Entity: e, Key: op.Key, Value: op.Value, Remove: op.Remove})
	}
	return out
}

// validQuotaOp checks one quota key and value.
func validQuotaOp(op kmsg.AlterClientQuotasRequestEntryOp) error {
	switch op.Key {
	case metadata.QuotaProducerByteRate, metadata.QuotaConsumerByteRate, metadata.QuotaRequestPercentage, metadata.QuotaControllerMutationRate:
	default:
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("unknown quota key %.100q", op.Key))
	}
	if op.Remove {
		return nil
	}
	if math.IsNaN(op.Value) || math.IsInf(op.Value, 0) || op.Value <= 0 {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: value must be positive and finite", op.Key))
	}
	if (op.Key == metadata.QuotaProducerByteRate || op.Key == metadata.QuotaConsumerByteRate) && op.Value != math.Trunc(op.Value) {
		return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: value must be a whole number of bytes per second", op.Key))
	}
	return nil
}

// quotasApplied reports whether this broker's image shows every change.
func (b *Broker) quotasApplied(changes []metadata.QuotaChange) bool {
	img := b.quorum.Image()
	last := map[[2]string]metadata.QuotaChange{}
	for _, c := range changes {
		last[[2]string{c.Entity.Key(), c.Key}] = c // a later op on the same key wins
	}
	for _, c := range last {
		v, ok := img.ClientQuotas[c.Entity.Key()].Values[c.Key]
		if c.Remove == ok || (!c.Remove && v != c.Value) {
			return false
		}
	}
	return true
}
