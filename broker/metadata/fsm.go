package metadata

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/adminapi"
)

// imageState is an image and the channel closed when it is replaced.
type imageState struct {
	img     *Image
	changed chan struct{}
}

// fsm applies committed log entries to the image. raft calls Apply, Snapshot and Restore from one
// goroutine, one at a time.
type fsm struct {
	state atomic.Pointer[imageState]
	log   *slog.Logger
}

func newFSM(log *slog.Logger) *fsm {
	f := &fsm{log: log}
	f.state.Store(&imageState{img: emptyImage(), changed: make(chan struct{})})
	return f
}

func (f *fsm) image() *Image { return f.state.Load().img }

// swap publishes img and wakes every waiter on the previous one.
func (f *fsm) swap(img *Image) {
	old := f.state.Swap(&imageState{img: img, changed: make(chan struct{})})
	close(old.changed)
}

// Apply applies one entry and returns nil or the error that rejected it as a whole. A rejected entry
// still advances the image's Index, so waiters on that index return.
func (f *fsm) Apply(l *raft.Log) any {
	prev := f.image()
	recs, err := decodeEntry(l.Data)
	var next *Image
	if err == nil {
		next, err = applyEntry(prev, l.Index, recs, true)
	}
	if err != nil {
		f.log.Error("metadata entry rejected", "index", l.Index, "err", err)
		n := *prev
		n.Index = l.Index
		next = &n
	}
	f.swap(next)
	return err
}

// Snapshot captures the current image; it is immutable, so no copy is needed.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) { return &fsmSnapshot{img: f.image()}, nil }

// Restore replaces the image with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s snapshotData
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("decode metadata snapshot: %w", err)
	}
	if s.V < 1 || s.V > snapshotVersion {
		return fmt.Errorf("decode metadata snapshot: version %d, this node knows up to %d", s.V, snapshotVersion)
	}
	img := emptyImage()
	img.Index = s.Index
	img.NextProducerIDBlock = s.NextProducerIDBlock
	img.Events = s.Events
	img.BrokerConfigs = s.BrokerConfigs
	img.AllocatedNodeIDs, img.NextNodeID, img.Controllers = s.AllocatedNodeIDs, s.NextNodeID, s.Controllers
	img.ControllerCapable = s.ControllerCapable
	for _, cq := range s.ClientQuotas {
		if img.ClientQuotas == nil {
			img.ClientQuotas = map[string]ClientQuota{}
		}
		img.ClientQuotas[cq.Entity.Key()] = cq
	}
	for _, b := range s.Brokers {
		img.Brokers[b.ID] = b
	}
	if s.ScramCredentials != nil {
		img.ScramCredentials = s.ScramCredentials
	}
	for _, t := range s.Topics {
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		img.Topics[t.Name] = t
		img.topicsByID[t.ID] = t
	}
	if len(s.ACLs) > 0 {
		img.ACLs = &ACLSet{ByID: make(map[[16]byte]acl.Binding, len(s.ACLs))}
		for _, a := range s.ACLs {
			img.ACLs.ByID[a.ID] = a.Binding
		}
	}
	for _, t := range s.Tenants {
		if img.Tenants == nil {
			img.Tenants = map[string]TenantState{}
		}
		img.Tenants[t.Name] = t
	}
	for _, p := range s.Plans {
		if img.Plans == nil {
			img.Plans = map[string]adminapi.Plan{}
		}
		img.Plans[p.Name] = p
	}
	f.swap(img)
	return nil
}

// snapshotVersion is the version of the snapshot format.
const snapshotVersion = 1

type snapshotData struct {
	V                   int         `json:"v"`
	Index               uint64      `json:"index"`
	Brokers             []Broker    `json:"brokers"`
	Topics              []*Topic    `json:"topics"`
	NextProducerIDBlock int64       `json:"next_producer_id_block"`
	Events              []Event     `json:"events"`
	ACLs                []aclWithID `json:"acls,omitempty"`
	// ScramCredentials is absent in snapshots written before SCRAM existed.
	ScramCredentials map[string]map[string]ScramCredential `json:"scram_credentials,omitempty"`
	// BrokerConfigs is Image.BrokerConfigs; absent in snapshots written before it existed.
	BrokerConfigs map[string]map[string]string `json:"broker_configs,omitempty"`
	// ClientQuotas was added without a version change: it is only set once client_quota records
	// were applied, which an older node would already have refused to decode.
	ClientQuotas []ClientQuota `json:"client_quotas,omitempty"`
	// Tenants and Plans, like ClientQuotas, are only set once their records were applied.
	Tenants []TenantState   `json:"tenants,omitempty"`
	Plans   []adminapi.Plan `json:"plans,omitempty"`
	// AllocatedNodeIDs and NextNodeID are absent before node ids were allocated (nodes.go).
	AllocatedNodeIDs map[int32]string `json:"allocated_node_ids,omitempty"`
	NextNodeID       int32            `json:"next_node_id,omitempty"`
	// Controllers is absent before controller-only nodes existed.
	Controllers map[int32][]Endpoint `json:"controllers,omitempty"`
	// ControllerCapable is absent before observers existed.
	ControllerCapable map[int32]bool `json:"controller_capable,omitempty"`
}

type fsmSnapshot struct{ img *Image }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	d := snapshotData{V: snapshotVersion, Index: s.img.Index, NextProducerIDBlock: s.img.NextProducerIDBlock, Events: s.img.Events,
		ScramCredentials: s.img.ScramCredentials, BrokerConfigs: s.img.BrokerConfigs,
		AllocatedNodeIDs: s.img.AllocatedNodeIDs, NextNodeID: s.img.NextNodeID, Controllers: s.img.Controllers,
		ControllerCapable: s.img.ControllerCapable}
	for _, b := range s.img.Brokers {
		d.Brokers = append(d.Brokers, b)
	}
	sort.Slice(d.Brokers, func(i, j int) bool { return d.Brokers[i].ID < d.Brokers[j].ID })
	d.Topics = s.img.SortedTopics()
	d.ClientQuotas = s.img.SortedClientQuotas()
	d.Tenants, d.Plans = s.img.SortedTenants(), s.img.SortedPlans()
	if s.img.ACLs != nil {
		for id, b := range s.img.ACLs.ByID {
			d.ACLs = append(d.ACLs, aclWithID{ID: id, Binding: b})
		}
		sort.Slice(d.ACLs, func(i, j int) bool { return string(d.ACLs[i].ID[:]) < string(d.ACLs[j].ID[:]) })
	}
	if err := json.NewEncoder(sink).Encode(&d); err != nil {
		sink.Cancel()
		return fmt.Errorf("write metadata snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
