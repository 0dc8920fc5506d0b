package metadata

import (
	"sort"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// Image is the cluster metadata after applying the log up to Index. It is an immutable value: a new
// Image replaces it after every applied entry, and unchanged topics are shared between images, so
// nothing reachable from an Image may be modified.
type Image struct {
	// Index is the Raft log index of the last applied metadata entry (0 for an empty log).
	Index uint64
	// Brokers holds every registered broker by ID, fenced or not.
	Brokers map[int32]Broker
	// Topics holds every topic by name.
	Topics map[string]*Topic
	// BrokerConfigs holds the dynamic broker configs (Kafka's BROKER config resource) by resource
	// name: a node id for one broker, "" for the cluster-wide defaults. Absent when none are set.
	BrokerConfigs map[string]map[string]string
	// NextProducerIDBlock is the first producer ID of the next block the controller hands out.
	NextProducerIDBlock int64
	// Events are the most recent cluster events derived from applied records, oldest first, at most
	// MaxEvents of them.
	Events []Event
	// ClientQuotas holds the client quotas (KIP-13, KIP-124, KIP-599) by QuotaEntity.Key.
	ClientQuotas map[string]ClientQuota
	// ACLs are the cluster's access control lists; nil until the first is created.
	ACLs *ACLSet
	// ScramCredentials holds the SCRAM credentials of every user, by user name and then mechanism
	// ("SCRAM-SHA-256", "SCRAM-SHA-512"). Only salted keys are stored, never a password.
	ScramCredentials map[string]map[string]ScramCredential
	// Tenants holds the tenants (tenants.go) by name; nil until the first is created.
	Tenants map[string]TenantState
	// Plans holds the tenants' plans by name; nil until the first is created.
	Plans map[string]adminapi.Plan
	// AllocatedNodeIDs holds every node id the controller allocated (nodes.go), with the principal
	// that asked for it ("" on an unauthenticated controller listener). Ids are never reused.
	AllocatedNodeIDs map[int32]string
	// NextNodeID is the next node id the controller allocates (0: FirstAllocatedNodeID).
	NextNodeID int32
	// Controllers holds the Kafka endpoints of controller-only nodes (process.roles=controller),
	// which brokers send their controller requests to; other controllers are in Brokers.
	Controllers map[int32][]Endpoint
	// ControllerCapable holds the observers with the controller role, which AddController may
	// make voters, and voters that were added or removed dynamically.
	ControllerCapable map[int32]bool

	topicsByID map[[16]byte]*Topic
}

// MaxEvents is how many cluster events an Image keeps.
const MaxEvents = 10000

// Broker is a registered broker.
type Broker struct {
	ID int32
	// Host and Port are the broker's Kafka listener, as advertised in Metadata responses.
	Host string
	Port int32
	// Rack is the broker's `broker.rack`, empty if unset.
	Rack string
	// IncarnationID is chosen randomly by a broker process when it starts, so a restart is told apart
	// from a retried registration.
	IncarnationID [16]byte
	// Epoch is the broker epoch: the log index of the registration record.
	Epoch int64
	// Fenced brokers lead nothing and are not in any ISR unless they were its last member. A broker is
	// registered fenced and unfenced by its first heartbeat after it has applied its registration.
	Fenced bool
	// Listeners are the broker's advertised endpoints, one per listener name. Brokers registered
	// before listeners existed have none; Host and Port are then their only endpoint.
	Listeners []Endpoint `json:",omitempty"`
}

// Topic is a topic and its partitions.
type Topic struct {
	Name string
	ID   [16]byte
	// Configs are the topic's config overrides (e.g. `retention.ms`), not the broker defaults.
	Configs map[string]string
	// Partitions are indexed by partition number.
	Partitions []Partition
}

// Partition is the replication state of one partition.
type Partition struct {
	// Replicas are the assigned broker IDs; the first is the preferred leader.
	Replicas []int32
	// ISR is the set of in-sync replicas, in replica order as the leader or controller wrote it.
	ISR []int32
	// Leader is the leader's broker ID, or -1 while the partition is offline.
	Leader int32
	// LeaderEpoch grows on every leader change (including to and from -1).
	LeaderEpoch int32
	// PartitionEpoch grows on every change of leader or ISR; AlterPartition requests must name it.
	PartitionEpoch int32
	// AddingReplicas and RemovingReplicas describe a reassignment in progress (KIP-455): Replicas
	// is then the target replicas followed by the removing ones. Both are empty when none is.
	AddingReplicas   []int32 `json:",omitempty"`
	RemovingReplicas []int32 `json:",omitempty"`
}

// EventType names what happened in a cluster event; the names are those of the admin interface.
type EventType = adminapi.EventType

// Cluster event types, derived from applied records (adminapi holds the one list of names).
const (
	EventBrokerJoined         = adminapi.EventBrokerJoined
	EventBrokerFenced         = adminapi.EventBrokerFenced
	EventBrokerUnfenced       = adminapi.EventBrokerUnfenced
	EventLeaderElected        = adminapi.EventLeaderElected
	EventUncleanLeaderElected = adminapi.EventUncleanLeaderElected
	EventPartitionOffline     = adminapi.EventPartitionOffline
	EventISRShrink            = adminapi.EventISRShrink
	EventISRExpand            = adminapi.EventISRExpand
	EventTopicCreated         = adminapi.EventTopicCreated
	EventTopicDeleted         = adminapi.EventTopicDeleted
	EventConfigChanged        = adminapi.EventConfigChanged
	EventPartitionsCreated    = adminapi.EventPartitionsCreated
	EventScramChanged         = adminapi.EventScramChanged
	EventNodeIDAllocated      = adminapi.EventNodeIDAllocated
	EventObserverJoined       = adminapi.EventObserverJoined
	EventControllerAdded      = adminapi.EventControllerAdded
	EventControllerRemoved    = adminapi.EventControllerRemoved
	// Reassignment events (reassign.go).
	EventReassignmentStarted   = adminapi.EventReassignmentStarted
	EventReassignmentCompleted = adminapi.EventReassignmentCompleted
	EventReassignmentCancelled = adminapi.EventReassignmentCancelled
	EventBrokerUnregistered    = adminapi.EventBrokerUnregistered
)

// Event is a cluster event with the time its record was proposed, as the admin interface
// publishes it.
type Event = adminapi.Event

// emptyImage is the image of an empty log.
func emptyImage() *Image {
	return &Image{
		Brokers:    map[int32]Broker{},
		Topics:     map[string]*Topic{},
		topicsByID: map[[16]byte]*Topic{},
	}
}

// Topic returns the topic called name, or nil.
func (img *Image) Topic(name string) *Topic { return img.Topics[name] }

// TopicByID returns the topic with the given ID, or nil.
func (img *Image) TopicByID(id [16]byte) *Topic { return img.topicsByID[id] }

// Partition returns the state of a partition and whether it exists.
func (img *Image) Partition(topic string, partition int32) (Partition, bool) {
	t := img.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[partition], true
}

// Live reports whether broker id is registered and not fenced.
func (img *Image) Live(id int32) bool {
	b, ok := img.Brokers[id]
	return ok && !b.Fenced
}

// LiveBrokers returns the registered, unfenced brokers sorted by ID.
func (img *Image) LiveBrokers() []Broker {
	var out []Broker
	for _, b := range img.Brokers {
		if !b.Fenced {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SortedTopics returns every topic sorted by name.
func (img *Image) SortedTopics() []*Topic {
	out := make([]*Topic, 0, len(img.Topics))
	for _, t := range img.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EventsSince returns the retained events with an index above index, oldest first.
func (img *Image) EventsSince(index uint64) []Event {
	i := sort.Search(len(img.Events), func(i int) bool { return img.Events[i].Index > index })
	return img.Events[i:]
}

// liveBrokerIDs returns the IDs of the live brokers, sorted.
func (img *Image) liveBrokerIDs() []int32 {
	var ids []int32
	for _, b := range img.LiveBrokers() {
		ids = append(ids, b.ID)
	}
	return ids
}
