package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics: v0-7
//
// Behavior:
//   - NumPartitions -1 uses num.partitions; ReplicationFactor -1 uses
//     default.replication.factor. A replication factor above the number of
//     brokers gets INVALID_REPLICATION_FACTOR; explicit replica assignments must
//     name live brokers only.
//   - Configs use Kafka's topic config names; unknown names or bad values get
//     INVALID_CONFIG and create nothing.
//   - ValidateOnly (v1+) checks without creating.
//   - v5+ returns the resulting partitions, replication factor and configs; v7+
//     the topic ID.

func init() { register(19, 0, 7, (*Broker).handleCreateTopics) }

func (b *Broker) handleCreateTopics(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := make(map[string]int)
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		var err error
		if seen[rt.Topic] > 1 {
			err = kafkaErr(kerr.InvalidRequest, "topic named more than once in one request")
		} else {
			err = b.createTopicFromRequest(req.ValidateOnly, &rt, &st)
		}
		if err != nil {
			st.ErrorCode = errCode(err)
			if req.Version >= 1 {
				st.ErrorMessage = errMessage(err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) createTopicFromRequest(validateOnly bool, rt *kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) error {
	if rt.Topic == offsetsTopic {
		return kafkaErr(kerr.InvalidRequest, "the internal topic is created by the broker")
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	if len(rt.ReplicaAssignment) > 0 {
		if partitions != -1 || rf != -1 {
			return kafkaErr(kerr.InvalidRequest, "both replica assignment and partition count or replication factor given")
		}
		partitions = int32(len(rt.ReplicaAssignment))
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return kafkaErr(kerr.InvalidReplicaAssignment, "partitions must be numbered from 0 without gaps")
			}
			for _, r := range a.Replicas {
				if r != b.cfg.NodeID {
					return kafkaErr(kerr.InvalidReplicaAssignment, fmt.Sprintf("broker %d is not part of the cluster", r))
				}
			}
			rf = int16(len(a.Replicas))
		}
	}
	if partitions == -1 {
		partitions = b.cfg.NumPartitions
	}
	if rf == -1 {
		rf = b.cfg.DefaultReplicationFactor
	}
	if partitions <= 0 {
		return kafkaErr(kerr.InvalidPartitions, "number of partitions must be larger than 0")
	}
	if rf <= 0 {
		return kafkaErr(kerr.InvalidReplicationFactor, "replication factor must be larger than 0")
	}
	if rf > 1 {
		return kafkaErr(kerr.InvalidReplicationFactor, fmt.Sprintf("replication factor: %d larger than available brokers: 1", rf))
	}
	configs := make(map[string]string)
	for _, c := range rt.Configs {
		if c.Value == nil {
			continue
		}
		if err := validateTopicConfig(c.Name, *c.Value); err != nil {
			return err
		}
		configs[c.Name] = *c.Value
	}
	if err := validTopicName(rt.Topic); err != nil {
		return kafkaErr(kerr.InvalidTopicException, err.Error())
	}
	if validateOnly {
		if b.topicByName(rt.Topic) != nil {
			return kafkaErr(kerr.TopicAlreadyExists, fmt.Sprintf("topic %q already exists", rt.Topic))
		}
	} else {
		t, err := b.createTopic(rt.Topic, partitions, configs)
		if err != nil {
			return err
		}
		st.TopicID = t.id
	}
	st.NumPartitions, st.ReplicationFactor = partitions, rf
	for _, d := range topicConfigDefs {
		v, override := b.topicConfigValue(configs, &d)
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value = d.name, &v
		c.Source = int8(kmsg.ConfigSourceDefaultConfig)
		if override {
			c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
		}
		st.Configs = append(st.Configs, c)
	}
	return nil
}
