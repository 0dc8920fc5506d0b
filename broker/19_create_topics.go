package broker

import (
	"errors"
	"fmt"
	"time"

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
//     balanced.
//   - An explicit ReplicaAssignment needs NumPartitions and ReplicationFactor -1
//     (else INVALID_REQUEST, Kafka's message), as librdkafka and the Java admin
//     client send it; partitions in any order numbered 0..n-1, the same replica
//     count each, registered brokers, at least one live per partition (else
//     INVALID_REPLICA_ASSIGNMENT).
//   - Configs: every topic config of Kafka 3.9 (configs.go; those Sluice does not
//     act on are accepted and logged); unknown names, bad values and null values
//     get INVALID_CONFIG with Kafka's message and create nothing.
//   - ValidateOnly (v1+) checks without creating.
//   - The answer waits (up to 5 s) until every new partition's leader has applied
//     the topic, so a client never learns of a leader that cannot serve the
//     partition yet (Kafka's ZooKeeper-era brokers waited for the metadata to
//     reach every broker the same way).
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
	readyBy := time.Now().Add(leadersReadyTimeout)
	seen := make(map[string]int)
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	limitErrs := b.topicLimitErrors(req) // limits_topics.go
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
		case limitErrs[rt.Topic] != nil:
			err = limitErrs[rt.Topic]
		default:
			err = b.createTopicFromRequest(cc, req.ValidateOnly, &rt, &st, readyBy)
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

// requestedAssignment returns a request's explicit replica assignment indexed by
// partition, or nil without one. Like Kafka, the partitions may come in any order
// but must number 0 to n-1, and NumPartitions and ReplicationFactor must then
// both be -1 (what librdkafka and the Java admin client send).
func requestedAssignment(rt *kmsg.CreateTopicsRequestTopic) ([][]int32, error) {
	if len(rt.ReplicaAssignment) == 0 {
		return nil, nil
	}
	if rt.ReplicationFactor != -1 {
		return nil, kafkaErr(kerr.InvalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
	}
	if rt.NumPartitions != -1 {
		return nil, kafkaErr(kerr.InvalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
	}
	assignment := make([][]int32, len(rt.ReplicaAssignment))
	for _, a := range rt.ReplicaAssignment {
		if a.Partition < 0 || int(a.Partition) >= len(assignment) {
			return nil, kafkaErr(kerr.InvalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
		}
		if assignment[a.Partition] != nil {
			return nil, kafkaErr(kerr.InvalidReplicaAssignment, fmt.Sprintf("Found multiple manual partition assignments for partition %d", a.Partition))
		}
		if len(a.Replicas) == 0 {
			return nil, kafkaErr(kerr.InvalidReplicaAssignment, "The manual partition assignment includes an empty replica list.")
		}
		assignment[a.Partition] = a.Replicas
	}
	return assignment, nil
}

func (b *Broker) createTopicFromRequest(cc *conn, validateOnly bool, rt *kmsg.CreateTopicsRequestTopic, st *kmsg.CreateTopicsResponseTopic, readyBy time.Time) error {
	if internalTopic(rt.Topic) {
		return kafkaErr(kerr.InvalidRequest, "the internal topic is created by the broker")
	}
	if err := validTopicName(rt.Topic); err != nil {
		return kafkaErr(kerr.InvalidTopicException, err.Error())
	}
	partitions, rf := rt.NumPartitions, rt.ReplicationFactor
	assignment, err := requestedAssignment(rt)
	if err != nil {
		return err
	}
	if assignment == nil {
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
	} else if err := b.quorum.CheckAssignment(assignment, 0); err != nil {
		return err
	}
	configs := make(map[string]string)
	for _, c := range rt.Configs {
		if c.Value == nil {
			return nullTopicConfig(c.Name)
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
		if assignment != nil {
			partitions, rf = int32(len(assignment)), int16(len(assignment[0]))
		} else if int(rf) > live {
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
		b.waitLeadersReady(cc.ctx, t.ID, readyBy)
		partitions = int32(len(t.Partitions))
		if len(t.Partitions) > 0 {
			rf = int16(len(t.Partitions[0].Replicas))
		}
		b.waitForImage(cc.ctx, func() bool { return b.topicByName(rt.Topic) != nil })
		b.logIgnoredConfigs(rt.Topic, configs)
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
