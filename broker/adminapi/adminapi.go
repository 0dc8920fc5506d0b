// Package adminapi is the JSON document of a broker's admin interface (GET /api/v1/cluster and
// /api/v1/events): the broker writes it and the ticket service's fault snapshots read it, both
// through these types, so the two cannot drift apart. Broker epochs and incarnation ids are not part
// of it: a broker's heartbeats are checked against them.
//
// The package also holds the typed answers of the Kafka admin requests that several of Sluice's
// tools send (DescribeQuorum), so that each is built and read in one place.
package adminapi

import "time"

// Cluster is the answer of GET /api/v1/cluster: the broker's copy of the cluster metadata.
type Cluster struct {
	ClusterID    string `json:"cluster_id"`
	ControllerID int32  `json:"controller_id"`
	// MetadataIndex is the metadata log index the answer reflects; it goes backwards only when
	// the cluster's state was cleared.
	MetadataIndex uint64   `json:"metadata_index"`
	Brokers       []Broker `json:"brokers"`
	Topics        []Topic  `json:"topics"`
}

// Broker is a registered broker and its Kafka address.
type Broker struct {
	ID     int32  `json:"id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
	Fenced bool   `json:"fenced"`
}

// Topic is a topic with its configs and partitions.
type Topic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []Partition       `json:"partitions"`
}

// Partition is one partition's leader (-1: offline), replicas and in-sync replicas.
type Partition struct {
	Partition   int     `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
}

// Event is one entry of GET /api/v1/events: a cluster event derived from the metadata log. Broker
// and Partition are -1 and Topic is empty where they do not apply.
type Event struct {
	// Index is the log index of the entry the event comes from; several events can share one.
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Type      EventType `json:"type"`
	Broker    int32     `json:"broker,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	Partition int32     `json:"partition"`
	// Detail says what changed for people, e.g. "clean: leader 1 -> 2, leader epoch 3, isr [2 3]".
	Detail string `json:"detail,omitempty"`
}

// EventType names what happened in a cluster event.
type EventType string

// The cluster event types: the one list of their names.
const (
	EventBrokerJoined         EventType = "broker_joined"
	EventBrokerFenced         EventType = "broker_fenced"
	EventBrokerUnfenced       EventType = "broker_unfenced"
	EventLeaderElected        EventType = "leader_elected"
	EventUncleanLeaderElected EventType = "unclean_leader_elected"
	EventPartitionOffline     EventType = "partition_offline"
	EventISRShrink            EventType = "isr_shrink"
	EventISRExpand            EventType = "isr_expand"
	EventTopicCreated         EventType = "topic_created"
	EventTopicDeleted         EventType = "topic_deleted"
	EventConfigChanged        EventType = "config_changed"
	EventPartitionsCreated    EventType = "partitions_created"
	EventScramChanged         EventType = "scram_credential_changed"
	// Nodes and the metadata quorum: a node id handed out by the controller, a node that follows
	// the metadata log as a Raft non-voter (an observer), a controller added to or removed from
	// the voters.
	EventNodeIDAllocated   EventType = "node_id_allocated"
	EventObserverJoined    EventType = "observer_joined"
	EventControllerAdded   EventType = "controller_added"
	EventControllerRemoved EventType = "controller_removed"
	// A partition reassignment (KIP-455) started, completed or was cancelled; the detail names the
	// replicas and the cause (admin, balance, drain, disk).
	EventReassignmentStarted   EventType = "reassignment_started"
	EventReassignmentCompleted EventType = "reassignment_completed"
	EventReassignmentCancelled EventType = "reassignment_cancelled"
	// A drained, stopped broker was removed from the metadata (UnregisterBroker).
	EventBrokerUnregistered EventType = "broker_unregistered"
)
