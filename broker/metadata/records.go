package metadata

import (
	"encoding/json"
	"fmt"
	"time"
)

// A log entry is a JSON envelope holding a batch of records that apply atomically: either every record
// of the entry applies or none does (the controller proposes a broker fencing together with the
// elections it causes). Each record carries its own type tag and version so records can evolve: a
// decoder accepts every version up to the one it knows, and new fields are optional.
const entryVersion = 1

type entry struct {
	V       int          `json:"v"`
	Records []wireRecord `json:"records"`
}

type wireRecord struct {
	Type string          `json:"type"`
	V    int             `json:"v"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// record is the payload of one metadata record.
type record interface {
	recordType() string
}

// stamped is a decoded record with the time its proposer stamped on it.
type stamped struct {
	time time.Time
	rec  record
}

// Reasons of a partition change, kept in the record for the event log.
const (
	reasonClean     = "clean_election"
	reasonUnclean   = "unclean_election"
	reasonPreferred = "preferred_election"
	reasonOffline   = "leader_lost"
	reasonISRShrink = "isr_shrink"
	reasonISRExpand = "isr_expand"
	reasonISRChange = "isr_change"
)

type registerBrokerRecord struct {
	ID            int32    `json:"id"`
	Host          string   `json:"host"`
	Port          int32    `json:"port"`
	Rack          string   `json:"rack,omitempty"`
	IncarnationID [16]byte `json:"incarnation_id"`
	// Listeners are the broker's advertised endpoints by listener name; absent in records written
	// before listeners existed, whose Host and Port are the only endpoint.
	Listeners []Endpoint `json:"listeners,omitempty"`
}

type fenceBrokerRecord struct {
	ID     int32  `json:"id"`
	Epoch  int64  `json:"epoch"`
	Reason string `json:"reason,omitempty"`
}

type unfenceBrokerRecord struct {
	ID    int32 `json:"id"`
	Epoch int64 `json:"epoch"`
}

type createTopicRecord struct {
	Name       string            `json:"name"`
	TopicID    [16]byte          `json:"topic_id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions [][]int32         `json:"partitions"`
}

type deleteTopicRecord struct {
	TopicID [16]byte `json:"topic_id"`
}

type createPartitionsRecord struct {
	TopicID     [16]byte  `json:"topic_id"`
	NewReplicas [][]int32 `json:"new_replicas"`
}

type alterTopicConfigsRecord struct {
	TopicID [16]byte          `json:"topic_id"`
	Configs map[string]string `json:"configs"`
}

// alterBrokerConfigsRecord replaces the dynamic configs of one broker (Resource is its node id) or, with
// Resource empty, the cluster-wide defaults of every broker (Kafka's BROKER config resource).
type alterBrokerConfigsRecord struct {
	Resource string            `json:"resource"`
	Configs  map[string]string `json:"configs"`
}

type partitionChangeRecord struct {
	TopicID        [16]byte `json:"topic_id"`
	Partition      int32    `json:"partition"`
	Leader         int32    `json:"leader"`
	LeaderEpoch    int32    `json:"leader_epoch"`
	ISR            []int32  `json:"isr"`
	PartitionEpoch int32    `json:"partition_epoch"`
	Reason         string   `json:"reason"`
}

type allocateProducerIDsRecord struct {
	BlockStart     int64 `json:"block_start"`
	NextBlockStart int64 `json:"next_block_start"`
}

func (registerBrokerRecord) recordType() string      { return "register_broker" }
func (fenceBrokerRecord) recordType() string         { return "fence_broker" }
func (unfenceBrokerRecord) recordType() string       { return "unfence_broker" }
func (createTopicRecord) recordType() string         { return "create_topic" }
func (deleteTopicRecord) recordType() string         { return "delete_topic" }
func (createPartitionsRecord) recordType() string    { return "create_partitions" }
func (alterTopicConfigsRecord) recordType() string   { return "alter_topic_configs" }
func (partitionChangeRecord) recordType() string     { return "partition_change" }
func (alterBrokerConfigsRecord) recordType() string  { return "alter_broker_configs" }
func (allocateProducerIDsRecord) recordType() string { return "allocate_producer_ids" }

// recordKinds maps a type tag to a constructor and the newest version this code decodes.
var recordKinds = map[string]struct {
	newRec  func() record
	version int
}{
	"register_broker":       {func() record { return &registerBrokerRecord{} }, 1},
	"fence_broker":          {func() record { return &fenceBrokerRecord{} }, 1},
	"unfence_broker":        {func() record { return &unfenceBrokerRecord{} }, 1},
	"create_topic":          {func() record { return &createTopicRecord{} }, 1},
	"delete_topic":          {func() record { return &deleteTopicRecord{} }, 1},
	"create_partitions":     {func() record { return &createPartitionsRecord{} }, 1},
	"alter_topic_configs":   {func() record { return &alterTopicConfigsRecord{} }, 1},
	"partition_change":      {func() record { return &partitionChangeRecord{} }, 1},
	"allocate_producer_ids": {func() record { return &allocateProducerIDsRecord{} }, 1},
	"alter_broker_configs":  {func() record { return &alterBrokerConfigsRecord{} }, 1},
	"client_quota":          {func() record { return &clientQuotaRecord{} }, 1},
	"create_acls":           {func() record { return &createACLsRecord{} }, 1},
	"delete_acls":           {func() record { return &deleteACLsRecord{} }, 1},
	// Node ids and the Raft quorum (nodes.go).
	"allocate_node_id":    {func() record { return &allocateNodeIDRecord{} }, 1},
	"quorum_change":       {func() record { return &quorumChangeRecord{} }, 1},
	"register_controller": {func() record { return &registerControllerRecord{} }, 1},
	// Reassignment (reassign.go).
	"reassign_partition": {func() record { return &reassignPartitionRecord{} }, 1},
	"unregister_broker":  {func() record { return &unregisterBrokerRecord{} }, 1},
}

// encodeEntry encodes records stamped with t as one log entry.
func encodeEntry(t time.Time, recs []record) ([]byte, error) {
	e := entry{V: entryVersion, Records: make([]wireRecord, 0, len(recs))}
	for _, r := range recs {
		data, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("encode %s record: %w", r.recordType(), err)
		}
		kind := recordKinds[r.recordType()]
		e.Records = append(e.Records, wireRecord{Type: r.recordType(), V: kind.version, Time: t.UTC(), Data: data})
	}
	return json.Marshal(e)
}

// decodeEntry decodes a log entry. Unknown entry or record versions and unknown record types are
// errors: applying part of a batch, or skipping a record a newer node understood, would let images
// diverge silently.
func decodeEntry(data []byte) ([]stamped, error) {
	var e entry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("decode metadata entry: %w", err)
	}
	if e.V < 1 || e.V > entryVersion {
		return nil, fmt.Errorf("decode metadata entry: version %d, this node knows up to %d", e.V, entryVersion)
	}
	out := make([]stamped, 0, len(e.Records))
	for i, w := range e.Records {
		kind, ok := recordKinds[w.Type]
		if !ok {
			return nil, fmt.Errorf("decode metadata record %d: unknown type %q", i, w.Type)
		}
		if w.V < 1 || w.V > kind.version {
			return nil, fmt.Errorf("decode metadata record %d (%s): version %d, this node knows up to %d", i, w.Type, w.V, kind.version)
		}
		r := kind.newRec()
		if err := json.Unmarshal(w.Data, r); err != nil {
			return nil, fmt.Errorf("decode metadata record %d (%s): %w", i, w.Type, err)
		}
		out = append(out, stamped{time: w.Time, rec: deref(r)})
	}
	return out, nil
}

// deref turns the pointer a decoder filled into the value type the rest of the package switches on.
func deref(r record) record {
	switch r := r.(type) {
	case *registerBrokerRecord:
		return *r
	case *fenceBrokerRecord:
		return *r
	case *unfenceBrokerRecord:
		return *r
	case *createTopicRecord:
		return *r
	case *deleteTopicRecord:
		return *r
	case *createPartitionsRecord:
		return *r
	case *alterTopicConfigsRecord:
		return *r
	case *partitionChangeRecord:
		return *r
	case *allocateProducerIDsRecord:
		return *r
	case *alterBrokerConfigsRecord:
		return *r
	case *clientQuotaRecord:
		return *r
	case *createACLsRecord:
		return *r
	case *deleteACLsRecord:
		return *r
	case *scramCredentialRecord:
		return *r
	case *removeScramCredentialRecord:
		return *r
	case *tenantRecord:
		return *r
	case *removeTenantRecord:
		return *r
	case *planRecord:
		return *r
	case *allocateNodeIDRecord:
		return *r
	case *quorumChangeRecord:
		return *r
	case *registerControllerRecord:
		return *r
	case *reassignPartitionRecord:
		return *r
	case *unregisterBrokerRecord:
		return *r
	}
	return r
}
