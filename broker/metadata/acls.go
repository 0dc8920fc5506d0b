package metadata

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker/acl"
)

// Limits on ACLs, which clients create: Kafka's controller refuses more than 10,000 records in one
// operation; the total bounds the memory every broker spends on its index.
const (
	// MaxACLsPerRequest is how many ACLs one CreateAcls may add, or one DeleteAcls may remove.
	MaxACLsPerRequest = 10000
	// MaxACLs is how many ACLs the cluster holds at most.
	MaxACLs = 100000
)

// ACLSet is the cluster's ACLs by ID. It is immutable and replaced as a whole on every change, so its
// pointer tells whether the ACLs changed between two images.
type ACLSet struct {
	ByID map[[16]byte]acl.Binding
}

// Bindings returns the ACLs in a stable order (by ID).
func (s *ACLSet) Bindings() []acl.Binding {
	if s == nil {
		return nil
	}
	ids := slices.SortedFunc(maps.Keys(s.ByID), func(a, b [16]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	out := make([]acl.Binding, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.ByID[id])
	}
	return out
}

// Len is the number of ACLs.
func (s *ACLSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.ByID)
}

// aclWithID is one ACL as records carry it; Kafka's AccessControlEntryRecord.
type aclWithID struct {
	ID [16]byte `json:"id"`
	acl.Binding
}

type createACLsRecord struct {
	ACLs []aclWithID `json:"acls"`
}

type deleteACLsRecord struct {
	IDs [][16]byte `json:"ids"`
}

func (createACLsRecord) recordType() string { return "create_acls" }
func (deleteACLsRecord) recordType() string { return "delete_acls" }

// applyACLs applies an ACL record to the builder's image.
func (b *builder) applyACLs(rec record) error {
	next := &ACLSet{ByID: map[[16]byte]acl.Binding{}}
	if b.next.ACLs != nil {
		next.ByID = maps.Clone(b.next.ACLs.ByID)
	}
	switch r := rec.(type) {
	case createACLsRecord:
		for _, a := range r.ACLs {
			if err := a.Validate(); err != nil {
				return err
			}
			if _, ok := next.ByID[a.ID]; ok || a.ID == [16]byte{} {
				return fmt.Errorf("acl id %x exists or is zero", a.ID)
			}
			next.ByID[a.ID] = a.Binding
		}
	case deleteACLsRecord:
		for _, id := range r.IDs {
			if _, ok := next.ByID[id]; !ok {
				return fmt.Errorf("unknown acl id %x", id)
			}
			delete(next.ByID, id)
		}
	}
	b.next.ACLs = next
	return nil
}

// CreateACLs stores bindings (Kafka's CreateAcls) and returns, for each, nil or why it was refused:
// INVALID_REQUEST for a binding Validate refuses. A binding equal to a stored one is accepted and not
// stored twice, as Kafka does. The accepted ones are applied together, in one entry.
func (q *Quorum) CreateACLs(ctx context.Context, bindings []acl.Binding) ([]error, error) {
	if len(bindings) > MaxACLsPerRequest {
		return nil, kafkaErrf(kerr.InvalidRequest, "at most %d acls can be created in one request", MaxACLsPerRequest)
	}
	if _, err := q.lockController(); err != nil {
		return nil, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	have := map[acl.Binding]bool{}
	if img.ACLs != nil {
		for _, b := range img.ACLs.ByID {
			have[b] = true
		}
	}
	errs := make([]error, len(bindings))
	var rec createACLsRecord
	for i, b := range bindings {
		if err := b.Validate(); err != nil {
			errs[i] = &kafkaError{code: kerr.InvalidRequest, msg: err.Error()}
			continue
		}
		if have[b] {
			continue
		}
		have[b] = true
		rec.ACLs = append(rec.ACLs, aclWithID{ID: newACLID(img), Binding: b})
	}
	if len(rec.ACLs) == 0 {
		return errs, nil
	}
	if img.ACLs.Len()+len(rec.ACLs) > MaxACLs {
		return nil, kafkaErrf(kerr.PolicyViolation, "the cluster holds at most %d acls", MaxACLs)
	}
	if _, err := q.proposeLocked(ctx, []record{rec}); err != nil {
		return nil, err
	}
	return errs, nil
}

// DeleteACLs removes the ACLs each filter matches (Kafka's DeleteAcls) and returns, per filter, the
// bindings it removed. An ACL matched by several filters is reported under each. Filters must be valid.
func (q *Quorum) DeleteACLs(ctx context.Context, filters []acl.Filter) ([][]acl.Binding, error) {
	if _, err := q.lockController(); err != nil {
		return nil, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	out := make([][]acl.Binding, len(filters))
	var rec deleteACLsRecord
	seen := map[[16]byte]bool{}
	if img.ACLs != nil {
		ids := slices.SortedFunc(maps.Keys(img.ACLs.ByID), func(a, b [16]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
		for i, f := range filters {
			for _, id := range ids {
				b := img.ACLs.ByID[id]
				if !f.Matches(b) {
					continue
				}
				out[i] = append(out[i], b)
				if !seen[id] {
					seen[id] = true
					rec.IDs = append(rec.IDs, id)
				}
			}
		}
	}
	if len(rec.IDs) > MaxACLsPerRequest {
		return nil, kafkaErrf(kerr.InvalidRequest, "the filters match %d acls; at most %d can be deleted in one request", len(rec.IDs), MaxACLsPerRequest)
	}
	if len(rec.IDs) == 0 {
		return out, nil
	}
	if _, err := q.proposeLocked(ctx, []record{rec}); err != nil {
		return nil, err
	}
	return out, nil
}

// newACLID returns a random ACL ID that is neither zero nor in use.
func newACLID(img *Image) [16]byte {
	for {
		var id [16]byte
		rand.Read(id[:])
		if id == [16]byte{} {
			continue
		}
		if img.ACLs != nil {
			if _, ok := img.ACLs.ByID[id]; ok {
				continue
			}
		}
		return id
	}
}
