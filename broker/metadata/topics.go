package metadata

import (
	"context"
	"crypto/rand"
	"maps"
	"regexp"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

var legalTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func checkTopicName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return kafkaErrf(kerr.InvalidTopicException, "Topic name %q is illegal, it cannot be empty, '.' or '..'.", name)
	case len(name) > 249:
		return kafkaErrf(kerr.InvalidTopicException, "Topic name is illegal, it can't be longer than 249 characters, topic name: %s", name)
	case !legalTopicName.MatchString(name):
		return kafkaErrf(kerr.InvalidTopicException, "Topic name %q is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'", name)
	}
	return nil
}

// CreateTopic creates a topic (Kafka's CreateTopics) and returns it as applied. Either assignment
// lists each partition's replicas (partitions and replicationFactor must then be -1), or the controller
// assigns partitions x replicationFactor replicas over the live brokers, preferred leaders round robin
// from a random start. Partitions -1 means Config.DefaultPartitions; replicationFactor -1 means 3 when at
// least three brokers are live and otherwise as many as are live (a broker with its own
// `default.replication.factor` passes that instead). Errors are Kafka's: TOPIC_ALREADY_EXISTS,
// INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT,
// INVALID_REQUEST, or ErrNotController.
func (q *Quorum) CreateTopic(ctx context.Context, name string, partitions int32, replicationFactor int16, assignment [][]int32, configs map[string]string) (Topic, error) {
	if err := checkTopicName(name); err != nil {
		return Topic{}, err
	}
	c, err := q.lockController()
	if err != nil {
		return Topic{}, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	if img.Topic(name) != nil {
		return Topic{}, kafkaErrf(kerr.TopicAlreadyExists, "Topic '%s' already exists.", name)
	}
	if len(assignment) > 0 {
		if partitions != -1 || replicationFactor != -1 {
			return Topic{}, kafkaErrf(kerr.InvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
		}
		if err := checkAssignment(img, assignment, 0); err != nil {
			return Topic{}, err
		}
	} else {
		if partitions == -1 {
			partitions = q.cfg.DefaultPartitions
		}
		if partitions < 1 {
			return Topic{}, kafkaErrf(kerr.InvalidPartitions, "Number of partitions was set to an invalid non-positive value.")
		}
		live := img.assignableBrokerIDs() // autobalance.go: not on cordoned brokers
		rf := int(replicationFactor)
		if rf == -1 {
			rf = max(1, min(3, len(live)))
		}
		if rf < 1 {
			return Topic{}, kafkaErrf(kerr.InvalidReplicationFactor, "Replication factor must be larger than 0, or -1 to use the default value.")
		}
		if rf > len(live) {
			return Topic{}, kafkaErrf(kerr.InvalidReplicationFactor, "Replication factor: %d larger than available brokers: %d.", rf, len(live))
		}
		assignment = assignReplicas(live, partitions, rf, 0, c.rng)
	}
	id := newTopicID(img)
	img, err = q.proposeLocked(ctx, []record{createTopicRecord{Name: name, TopicID: id, Configs: maps.Clone(configs), Partitions: assignment}})
	if err != nil {
		return Topic{}, err
	}
	return *img.TopicByID(id), nil
}

// newTopicID returns a random topic ID that is neither zero nor in use.
func newTopicID(img *Image) [16]byte {
	for {
		var id [16]byte
		rand.Read(id[:])
		if id != [16]byte{} && img.TopicByID(id) == nil {
			return id
		}
	}
}

// DeleteTopic deletes the topic with the given ID (Kafka's DeleteTopics); UNKNOWN_TOPIC_ID if there is
// none.
func (q *Quorum) DeleteTopic(ctx context.Context, id [16]byte) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	if q.Image().TopicByID(id) == nil {
		return kafkaErrf(kerr.UnknownTopicID, "Topic ID %x does not exist.", id)
	}
	_, err := q.proposeLocked(ctx, []record{deleteTopicRecord{TopicID: id}})
	return err
}

// CreatePartitions grows topic name to count partitions (Kafka's CreatePartitions) and returns it as
// applied. assignment, if not nil, gives the replicas of each new partition, with the topic's
// replication factor; otherwise the controller assigns them over the live brokers.
func (q *Quorum) CreatePartitions(ctx context.Context, name string, count int32, assignment [][]int32) (Topic, error) {
	c, err := q.lockController()
	if err != nil {
		return Topic{}, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	t := img.Topic(name)
	if t == nil {
		return Topic{}, kafkaErrf(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", name)
	}
	cur := int32(len(t.Partitions))
	switch {
	case count == cur:
		return Topic{}, kafkaErrf(kerr.InvalidPartitions, "Topic already has %d partitions.", cur)
	case count < cur:
		return Topic{}, kafkaErrf(kerr.InvalidPartitions, "Topic currently has %d partitions, which is higher than the requested %d.", cur, count)
	}
	rf := len(t.Partitions[0].TargetReplicas()) // not the union of a reassignment in progress
	if assignment != nil {
		if int32(len(assignment)) != count-cur {
			return Topic{}, kafkaErrf(kerr.InvalidReplicaAssignment, "Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", count-cur, len(assignment))
		}
		if err := checkAssignment(img, assignment, rf); err != nil {
			return Topic{}, err
		}
	} else {
		live := img.assignableBrokerIDs() // autobalance.go: not on cordoned brokers
		if rf > len(live) {
			return Topic{}, kafkaErrf(kerr.InvalidReplicationFactor, "Replication factor: %d larger than available brokers: %d.", rf, len(live))
		}
		assignment = assignReplicas(live, count-cur, rf, int(cur), c.rng)
	}
	img, err = q.proposeLocked(ctx, []record{createPartitionsRecord{TopicID: t.ID, NewReplicas: assignment}})
	if err != nil {
		return Topic{}, err
	}
	return *img.TopicByID(t.ID), nil
}

// AlterTopicConfigs replaces topic name's config overrides with configs (the full set, as Kafka's
// AlterConfigs; IncrementalAlterConfigs is merged by the caller). Enabling unclean leader election
// elects leaders for offline partitions in the same entry.
func (q *Quorum) AlterTopicConfigs(ctx context.Context, name string, configs map[string]string) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	t := q.Image().Topic(name)
	if t == nil {
		return kafkaErrf(kerr.UnknownTopicOrPartition, "Topic '%s' does not exist.", name)
	}
	_, err := q.proposeWithPlan(ctx, []record{alterTopicConfigsRecord{TopicID: t.ID, Configs: maps.Clone(configs)}})
	return err
}

// AlterPartition changes a partition's ISR at the request of its leader (Kafka's AlterPartition) and
// returns the new state. The leader names the state it knows: a leader epoch that is not the current
// one gets FENCED_LEADER_EPOCH, a partition epoch that is not the current one INVALID_UPDATE_VERSION
// (unless the ISR asked for is already the current one: a retry gets the current state). The new ISR
// must contain the leader and only live replicas (INELIGIBLE_REPLICA otherwise).
func (q *Quorum) AlterPartition(ctx context.Context, topicID [16]byte, partition int32, leaderID int32, leaderEpoch int32, partitionEpoch int32, newISR []int32) (Partition, error) {
	if _, err := q.lockController(); err != nil {
		return Partition{}, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	t := img.TopicByID(topicID)
	if t == nil {
		return Partition{}, kafkaErrf(kerr.UnknownTopicID, "Topic ID %x does not exist.", topicID)
	}
	if partition < 0 || int(partition) >= len(t.Partitions) {
		return Partition{}, kafkaErrf(kerr.UnknownTopicOrPartition, "Partition %s-%d does not exist.", t.Name, partition)
	}
	p := t.Partitions[partition]
	switch {
	case leaderID != p.Leader:
		return Partition{}, kafkaErrf(kerr.NotLeaderForPartition, "Broker %d is not the leader of %s-%d (leader %d).", leaderID, t.Name, partition, p.Leader)
	case leaderEpoch != p.LeaderEpoch:
		return Partition{}, kafkaErrf(kerr.FencedLeaderEpoch, "Leader epoch %d of %s-%d is not the current %d.", leaderEpoch, t.Name, partition, p.LeaderEpoch)
	case slices.Equal(newISR, p.ISR):
		return p, nil
	case partitionEpoch != p.PartitionEpoch:
		return Partition{}, kafkaErrf(kerr.InvalidUpdateVersion, "Partition epoch %d of %s-%d is not the current %d.", partitionEpoch, t.Name, partition, p.PartitionEpoch)
	case !slices.Contains(newISR, leaderID):
		return Partition{}, kafkaErrf(kerr.InvalidRequest, "The new ISR %v of %s-%d does not contain its leader %d.", newISR, t.Name, partition, leaderID)
	}
	seen := map[int32]bool{}
	for _, id := range newISR {
		if seen[id] || !slices.Contains(p.Replicas, id) || !img.Live(id) {
			return Partition{}, kafkaErrf(kerr.IneligibleReplica, "Replica %d of the new ISR %v of %s-%d is repeated, not a replica, or not live.", id, newISR, t.Name, partition)
		}
		seen[id] = true
	}
	reason := reasonISRChange
	switch added, removed := setDiff(newISR, p.ISR), setDiff(p.ISR, newISR); {
	case len(removed) == 0:
		reason = reasonISRExpand
	case len(added) == 0:
		reason = reasonISRShrink
	}
	img, err := q.proposeLocked(ctx, []record{partitionChangeRecord{TopicID: topicID, Partition: partition, Leader: p.Leader,
		LeaderEpoch: p.LeaderEpoch, ISR: slices.Clone(newISR), PartitionEpoch: p.PartitionEpoch + 1, Reason: reason}})
	if err != nil {
		return Partition{}, err
	}
	np := img.TopicByID(topicID).Partitions[partition]
	if pref := np.Replicas[0]; pref != np.Leader && slices.Contains(np.ISR, pref) && !slices.Contains(p.ISR, pref) {
		q.kick()
	}
	if np.Reassigning() {
		q.kick() // an adding replica may have caught up
	}
	return np, nil
}

// CheckAssignment validates an explicit replica assignment against the current image, as CreateTopic
// (replicationFactor 0: all partitions alike) and CreatePartitions (the topic's replication factor)
// do, so a ValidateOnly request gets the same answer as a real one.
func (q *Quorum) CheckAssignment(assignment [][]int32, replicationFactor int) error {
	return checkAssignment(q.Image(), assignment, replicationFactor)
}

// AlterBrokerConfigs replaces the dynamic configs of a broker (resource is its node id) or, with resource
// empty, the cluster-wide broker defaults (Kafka's AlterConfigs and IncrementalAlterConfigs on a BROKER
// resource, the latter merged by the caller). An empty configs removes them all. The caller validates
// names and values: brokers apply what the log says.
func (q *Quorum) AlterBrokerConfigs(ctx context.Context, resource string, configs map[string]string) error {
	if _, err := q.lockController(); err != nil {
		return err
	}
	defer q.ctlMu.Unlock()
	_, err := q.proposeLocked(ctx, []record{alterBrokerConfigsRecord{Resource: resource, Configs: maps.Clone(configs)}})
	return err
}
