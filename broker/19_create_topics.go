package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreateTopics: v0-7
//
// Behavior:
//   - Carried out by the controller, which records the topic in the metadata log;
//     other brokers forward the request to it and answer once their own metadata
//     shows the topic.
//   - NumPartitions -1 uses num.partitions; ReplicationFactor -1 uses
//     default.replication.factor (by default 3 when three or more brokers are live,
//     else all live brokers). More replicas than live brokers get
//     INVALID_REPLICATION_FACTOR; replicas are spread over the brokers with leaders
//     balanced. Explicit assignments must name registered brokers.
//   - Configs use Kafka's topic config names; unknown names or bad values get
//     INVALID_CONFIG and create nothing.
//   - ValidateOnly (v1+) checks without creating.
//   - v5+ returns the resulting partitions, replication factor and configs; v7+
//     the topic ID.
//   - Authorization: CREATE on the cluster, else CREATE on each topic, else
//     TOPIC_AUTHORIZATION_FAILED. The configs are returned only with DESCRIBE_CONFIGS
//     on the topic (else TopicConfigErrorCode TOPIC_AUTHORIZATION_FAILED).

func init() { register(19, 0, 7, (*Broker).handleCreateTopics) }

func (b *Broker) handleCreateTopics(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				b.waitForImage(cc.ctx, func() bool {
					for _, t := range resp.(*kmsg.CreateTopicsResponse).Topics {
						if t.ErrorCode == 0 && b.topicByName(t.Topic) == nil && !req.ValidateOnly {
							return false
						}
					}
					return true
				})
			}
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := make(map[string]int)
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	clusterCreate := cc.authorizedCluster(kmsg.ACLOperationCreate)
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		var err error
		switch {
		case seen[rt.Topic] > 1:
			err = kafkaErr(kerr.InvalidRequest, "topic named more than once in one request")
		case !clusterCreate && !cc.authorized(kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, rt.Topic):
			err = kerr.TopicAuthorizationFailed
		default:
			err = b.createTopicFromRequest(cc, req.ValidateOnly, &rt, &st)
			if err == nil && req.Version >= 5 && !cc.authorized(kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, rt.Topic) {
				st.Configs, st.ConfigErrorCode = nil, kerr.TopicAuthorizationFailed.Code
			}
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

func (b *Broker) createTopicFromRequest(cc *conn, validateOnly bool, rt *kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic) error {
	if rt.Topic == offsetsTopic {
		return kafkaErr(kerr.InvalidRequest, "the internal topic is created by the broker")
	}
	if err := validTopicName(rt.Topic); err != nil {
		return kafkaErr(kerr.InvalidTopicException, err.Error())
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	var assignment [][]int32
	if len(rt.ReplicaAssignment) > 0 {
		if partitions != -1 || rf != -1 {
			return kafkaErr(kerr.InvalidRequest, "both replica assignment and partition count or replication factor given")
		}
		for i, a := range rt.ReplicaAssignment {
			if a.Partition != int32(i) {
				return kafkaErr(kerr.InvalidReplicaAssignment, "partitions must be numbered from 0 without gaps")
			}
			assignment = append(assignment, a.Replicas)
		}
		partitions, rf = int32(len(assignment)), int16(len(assignment[0]))
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
	if rf == 0 || rf < -1 {
		return kafkaErr(kerr.InvalidReplicationFactor, "replication factor must be larger than 0")
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
	live := len(b.quorum.Image().LiveBrokers())
	if validateOnly {
		if b.quorum.Image().Topic(rt.Topic) != nil {
			return kafkaErr(kerr.TopicAlreadyExists, fmt.Sprintf("topic %q already exists", rt.Topic))
		}
		if int(rf) > live {
			return kafkaErr(kerr.InvalidReplicationFactor, fmt.Sprintf("Replication factor: %d larger than available brokers: %d.", rf, live))
		}
		if rf == -1 {
			rf = int16(min(3, live))
		}
	} else {
		t, err := b.quorum.CreateTopic(cc.ctx, rt.Topic, partitions, rf, assignment, configs)
		if err != nil {
			return err
		}
		st.TopicID = t.ID
		if len(t.Partitions) > 0 {
			rf = int16(len(t.Partitions[0].Replicas))
		}
		b.waitForImage(cc.ctx, func() bool { return b.topicByName(rt.Topic) != nil })
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
