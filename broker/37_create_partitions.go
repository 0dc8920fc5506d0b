package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions: v0-3
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it): grows a topic to
//     Count partitions with the topic's replication factor; shrinking or keeping
//     the count gets INVALID_PARTITIONS. Assignments must name registered brokers.
//   - ValidateOnly checks without creating.
//   - Like CreateTopics, the answer waits (up to 5 s) until the new partitions'
//     leaders have applied them.
//   - Authorization: ALTER on each topic, else TOPIC_AUTHORIZATION_FAILED.

func init() { register(37, 0, 3, (*Broker).handleCreatePartitions) }

func (b *Broker) handleCreatePartitions(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				b.waitForImage(cc.ctx, func() bool {
					for _, rt := range req.Topics {
						t := b.topicByName(rt.Topic)
						if t != nil && int32(len(b.partitionsOf(t))) < rt.Count {
							return false
						}
					}
					return true
				})
			}
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	budget := b.newPartitionBudget() // limits_topics.go
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := error(kerr.TopicAuthorizationFailed)
		if cc.authorized(kmsg.ACLOperationAlter, kmsg.ACLResourceTypeTopic, rt.Topic) {
			err = b.createPartitionsLimitError(budget, &rt)
		}
		if err == nil {
			err = b.createPartitions(cc, &rt, req.ValidateOnly)
		}
		st.ErrorCode, st.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) createPartitions(cc *conn, rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	mt := b.quorum.Image().Topic(rt.Topic)
	if mt == nil {
		return kerr.UnknownTopicOrPartition
	}
	if internalTopic(rt.Topic) {
		return kafkaErr(kerr.InvalidRequest, "partitions of internal topics cannot be added")
	}
	have := int32(len(mt.Partitions))
	if rt.Count <= have {
		return kafkaErr(kerr.InvalidPartitions, fmt.Sprintf("topic has %d partitions; the new count must be larger", have))
	}
	var assignment [][]int32
	for _, a := range rt.Assignment {
		assignment = append(assignment, a.Replicas)
	}
	if rt.Assignment != nil && int32(len(assignment)) != rt.Count-have {
		return kafkaErr(kerr.InvalidReplicaAssignment, "one assignment per new partition is required")
	}
	if validateOnly {
		if assignment != nil {
			return b.quorum.CheckAssignment(assignment, len(mt.Partitions[0].Replicas))
		}
		return nil
	}
	t, err := b.quorum.CreatePartitions(cc.ctx, rt.Topic, rt.Count, assignment)
	if err != nil {
		return err
	}
	b.waitLeadersReady(cc.ctx, t.ID, time.Now().Add(leadersReadyTimeout))
	b.waitForImage(cc.ctx, func() bool {
		t := b.topicByName(rt.Topic)
		return t != nil && int32(len(b.partitionsOf(t))) >= rt.Count
	})
	b.logger.Info("partitions added", "topic", rt.Topic, "partitions", rt.Count)
	return nil
}
