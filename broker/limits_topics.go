package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Bounds on topic config names and values: every known name is short, and no
// valid value needs more (a list of cleanup policies repeated a million times
// would otherwise pass).
const (
	maxTopicConfigNameBytes  = 255
	maxTopicConfigValueBytes = 4096
)

// topicLimitErrors checks a CreateTopics request against the topic limits
// before anything is assigned or written to the metadata log, and returns the
// error of each topic that breaks one: more partitions than
// max.partitions.per.topic (INVALID_PARTITIONS), a replication factor or
// replica list longer than the registered brokers (INVALID_REPLICATION_FACTOR,
// INVALID_REPLICA_ASSIGNMENT), config names or values that are too long
// (INVALID_CONFIG), or partitions past max.partitions.per.request or
// max.partitions.per.broker counted over the request in order
// (POLICY_VIOLATION). The controller runs it, so forwarded requests are checked
// there too.
func (b *Broker) topicLimitErrors(req *kmsg.CreateTopicsRequest) map[string]error {
	errs := map[string]error{}
	img := b.quorum.Image()
	budget := b.newPartitionBudget()
	for _, rt := range req.Topics {
		partitions, rf := int64(rt.NumPartitions), int64(rt.ReplicationFactor)
		if len(rt.ReplicaAssignment) > 0 {
			partitions, rf = int64(len(rt.ReplicaAssignment)), 0
			for _, a := range rt.ReplicaAssignment {
				if len(a.Replicas) > len(img.Brokers) {
					errs[rt.Topic] = kafkaErr(kerr.InvalidReplicaAssignment, fmt.Sprintf(
						"partition %d lists %d replicas, more than the %d registered brokers", a.Partition, len(a.Replicas), len(img.Brokers)))
					break
				}
				rf = max(rf, int64(len(a.Replicas)))
			}
			if errs[rt.Topic] != nil {
				continue
			}
		}
		if partitions == -1 {
			partitions = int64(b.cfg.NumPartitions)
		}
		if rf == -1 {
			rf = int64(b.cfg.DefaultReplicationFactor)
			if rf == -1 {
				rf = int64(min(3, max(1, len(img.LiveBrokers()))))
			}
		}
		if err := b.checkTopicSize(partitions, rf, len(img.Brokers)); err != nil {
			errs[rt.Topic] = err
			continue
		}
		for _, c := range rt.Configs {
			if len(c.Name) > maxTopicConfigNameBytes {
				errs[rt.Topic] = kafkaErr(kerr.InvalidConfig, fmt.Sprintf("config name longer than %d bytes", maxTopicConfigNameBytes))
				break
			}
			if c.Value != nil && len(*c.Value) > maxTopicConfigValueBytes {
				errs[rt.Topic] = kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s: value longer than %d bytes", c.Name, maxTopicConfigValueBytes))
				break
			}
		}
		if errs[rt.Topic] != nil || partitions <= 0 || rf <= 0 {
			continue // the handler reports non-positive counts
		}
		if err := budget.tenants.take(rt.Topic, partitions); err != nil { // tenant.go
			errs[rt.Topic] = err
		} else if err := budget.take(partitions, rf); err != nil {
			errs[rt.Topic] = err
		}
	}
	return errs
}

// createPartitionsLimitError checks one topic of a CreatePartitions request
// against the topic limits, counting what earlier topics of the request add.
func (b *Broker) createPartitionsLimitError(budget *partitionBudget, rt *kmsg.CreatePartitionsRequestTopic) error {
	img := b.quorum.Image()
	mt := img.Topic(rt.Topic)
	if mt == nil || int(rt.Count) <= len(mt.Partitions) {
		return nil // the handler reports these
	}
	rf := int64(len(mt.Partitions[0].Replicas))
	if err := b.checkTopicSize(int64(rt.Count), rf, len(img.Brokers)); err != nil {
		return err
	}
	for _, a := range rt.Assignment {
		if len(a.Replicas) > len(img.Brokers) {
			return kafkaErr(kerr.InvalidReplicaAssignment, fmt.Sprintf("an assignment lists %d replicas, more than the %d registered brokers", len(a.Replicas), len(img.Brokers)))
		}
	}
	if err := budget.tenants.take(rt.Topic, int64(rt.Count)-int64(len(mt.Partitions))); err != nil { // tenant.go
		return err
	}
	return budget.take(int64(rt.Count)-int64(len(mt.Partitions)), rf)
}

// checkTopicSize checks a topic's partition count and replication factor
// against max.partitions.per.topic and the registered brokers.
func (b *Broker) checkTopicSize(partitions, rf int64, brokers int) error {
	if partitions > int64(b.cfg.MaxPartitionsPerTopic) {
		return kafkaErr(kerr.InvalidPartitions, fmt.Sprintf("%d partitions exceed max.partitions.per.topic=%d", partitions, b.cfg.MaxPartitionsPerTopic))
	}
	if rf > int64(brokers) && brokers > 0 {
		return kafkaErr(kerr.InvalidReplicationFactor, fmt.Sprintf("Replication factor: %d larger than the %d registered brokers.", rf, brokers))
	}
	return nil
}

// partitionBudget counts the partitions and replicas one request creates
// against max.partitions.per.request and max.partitions.per.broker.
type partitionBudget struct {
	perRequest       int64
	replicas, maxRep int64 // replicas after the request so far, and the most the live brokers may hold
	maxPerBroker     int32
	live             int
	// tenants checks the partitions of tenants' plans.
	tenants tenantPartitionCheck
}

func (b *Broker) newPartitionBudget() *partitionBudget {
	img := b.quorum.Image()
	var replicas int64
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			replicas += int64(len(p.Replicas))
		}
	}
	live := max(1, len(img.LiveBrokers()))
	return &partitionBudget{replicas: replicas, maxRep: int64(live) * int64(b.cfg.MaxPartitionsPerBroker),
		maxPerBroker: b.cfg.MaxPartitionsPerBroker, live: live, perRequest: int64(b.cfg.MaxPartitionsPerRequest),
		tenants: tenantPartitionCheck{img: img}}
}

// take counts partitions with rf replicas each, or returns POLICY_VIOLATION
// if that passes a limit.
func (pb *partitionBudget) take(partitions, rf int64) error {
	if partitions > pb.perRequest {
		return kafkaErr(kerr.PolicyViolation, fmt.Sprintf("the request would create more partitions than max.partitions.per.request allows (%d more, %d left)",
			partitions, max(pb.perRequest, 0)))
	}
	if pb.replicas+partitions*rf > pb.maxRep {
		return kafkaErr(kerr.PolicyViolation, fmt.Sprintf("%d partitions of %d replicas would put more than max.partitions.per.broker=%d replicas on each of the %d live brokers",
			partitions, rf, pb.maxPerBroker, pb.live))
	}
	pb.perRequest -= partitions
	pb.replicas += partitions * rf
	return nil
}
