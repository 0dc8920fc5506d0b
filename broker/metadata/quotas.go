package metadata

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
)

// Client quota entity types and keys, Kafka's names (KIP-13, KIP-124, KIP-599).
const (
	QuotaEntityUser     = "user"
	QuotaEntityClientID = "client-id"

	QuotaProducerByteRate       = "producer_byte_rate"
	QuotaConsumerByteRate       = "consumer_byte_rate"
	QuotaRequestPercentage      = "request_percentage"
	QuotaControllerMutationRate = "controller_mutation_rate"
)

// QuotaEntityPart is one part of a client quota entity: its type (user or client-id) and name; a
// nil Name is the default entity of that type.
type QuotaEntityPart struct {
	Type string  `json:"type"`
	Name *string `json:"name"`
}

// QuotaEntity names what a client quota applies to: a user, a client id, or both, each either named
// or the default. Parts are sorted by type, at most one of each.
type QuotaEntity []QuotaEntityPart

// Key is the entity's canonical string, e.g. "client-id=<default>,user=alice".
func (e QuotaEntity) Key() string {
	parts := make([]string, len(e))
	for i, p := range e {
		name := "<default>"
		if p.Name != nil {
			name = "'" + *p.Name + "'"
		}
		parts[i] = p.Type + "=" + name
	}
	return strings.Join(parts, ",")
}

// Part returns the part of the given type and whether there is one.
func (e QuotaEntity) Part(typ string) (QuotaEntityPart, bool) {
	for _, p := range e {
		if p.Type == typ {
			return p, true
		}
	}
	return QuotaEntityPart{}, false
}

// NormalizeQuotaEntity sorts an entity's parts and checks them: known types, each at most once, at
// least one part.
func NormalizeQuotaEntity(e QuotaEntity) (QuotaEntity, error) {
	if len(e) == 0 {
		return nil, fmt.Errorf("empty quota entity")
	}
	out := append(QuotaEntity(nil), e...)
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	for i, p := range out {
		if p.Type != QuotaEntityUser && p.Type != QuotaEntityClientID {
			return nil, fmt.Errorf("unknown quota entity type %q (user and client-id are supported)", p.Type)
		}
		if i > 0 && out[i-1].Type == p.Type {
			return nil, fmt.Errorf("quota entity type %q given twice", p.Type)
		}
		if p.Name != nil && len(*p.Name) > maxQuotaEntityName {
			return nil, fmt.Errorf("quota entity name longer than %d bytes", maxQuotaEntityName)
		}
	}
	return out, nil
}

// maxQuotaEntityName bounds a user or client id name in a quota entity.
const maxQuotaEntityName = 1024

// ClientQuota is the quota values set for one entity.
type ClientQuota struct {
	Entity QuotaEntity        `json:"entity"`
	Values map[string]float64 `json:"values"`
}

// QuotaChange sets (Remove false) or removes one quota value of an entity.
type QuotaChange struct {
	Entity QuotaEntity
	Key    string
	Value  float64
	Remove bool
}

type clientQuotaRecord struct {
	Entity QuotaEntity `json:"entity"`
	Key    string      `json:"key"`
	Value  float64     `json:"value,omitempty"`
	Remove bool        `json:"remove,omitempty"`
}

func (clientQuotaRecord) recordType() string { return "client_quota" }

// AlterClientQuotas applies quota changes, already validated by the caller, as one metadata log
// entry (Kafka's AlterClientQuotas).
func (q *Quorum) AlterClientQuotas(ctx context.Context, changes []QuotaChange) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	recs := make([]record, 0, len(changes))
	for _, c := range changes {
		e, err := NormalizeQuotaEntity(c.Entity)
		if err != nil {
			return err
		}
		recs = append(recs, clientQuotaRecord{Entity: e, Key: c.Key, Value: c.Value, Remove: c.Remove})
	}
	if len(recs) == 0 {
		return nil
	}
	_, err := q.proposeLocked(ctx, recs)
	return err
}

// applyClientQuota applies a client_quota record.
func (b *builder) applyClientQuota(r clientQuotaRecord) error {
	e, err := NormalizeQuotaEntity(r.Entity)
	if err != nil {
		return err
	}
	if r.Key == "" {
		return fmt.Errorf("client quota without a key")
	}
	if !b.quotasCloned {
		b.next.ClientQuotas = maps.Clone(b.next.ClientQuotas)
		if b.next.ClientQuotas == nil {
			b.next.ClientQuotas = map[string]ClientQuota{}
		}
		b.quotasCloned = true
	}
	k := e.Key()
	cq := ClientQuota{Entity: e, Values: maps.Clone(b.next.ClientQuotas[k].Values)}
	if cq.Values == nil {
		cq.Values = map[string]float64{}
	}
	if r.Remove {
		delete(cq.Values, r.Key)
	} else {
		cq.Values[r.Key] = r.Value
	}
	if len(cq.Values) == 0 {
		delete(b.next.ClientQuotas, k)
	} else {
		b.next.ClientQuotas[k] = cq
	}
	return nil
}

// SortedClientQuotas returns every entity's quotas sorted by entity key.
func (img *Image) SortedClientQuotas() []ClientQuota {
	out := make([]ClientQuota, 0, len(img.ClientQuotas))
	for _, cq := range img.ClientQuotas {
		out = append(out, cq)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Entity.Key() < out[j].Entity.Key() })
	return out
}
