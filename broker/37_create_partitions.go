package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions: v0-3
//
// Behavior:
//   - Grows a topic to Count partitions; shrinking or keeping the count gets
//     INVALID_PARTITIONS. Assignments may only name this broker.
//   - ValidateOnly checks without creating.

func init() { register(37, 0, 3, (*Broker).handleCreatePartitions) }

func (b *Broker) handleCreatePartitions(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := b.createPartitions(&rt, req.ValidateOnly)
		st.ErrorCode, st.ErrorMessage = errCode(err), errMessage(err)
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) createPartitions(rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[rt.Topic]
	if t == nil {
		return kerr.UnknownTopicOrPartition
	}
	if t.internal {
		return kafkaErr(kerr.InvalidRequest, "partitions of internal topics cannot be added")
	}
	have := int32(len(t.partitions))
	if rt.Count <= have {
		return kafkaErr(kerr.InvalidPartitions, fmt.Sprintf("topic has %d partitions; the new count must be larger", have))
	}
	if rt.Assignment != nil && int32(len(rt.Assignment)) != rt.Count-have {
		return kafkaErr(kerr.InvalidReplicaAssignment, "one assignment per new partition is required")
	}
	for _, a := range rt.Assignment {
		for _, r := range a.Replicas {
			if r != b.cfg.NodeID {
				return kafkaErr(kerr.InvalidReplicaAssignment, fmt.Sprintf("broker %d is not part of the cluster", r))
			}
		}
	}
	if validateOnly {
		return nil
	}
	grown := &topic{name: t.name, id: t.id, configs: t.configs, partitions: append([]*partition(nil), t.partitions...)}
	if err := b.openPartitions(grown, rt.Count); err != nil {
		return err
	}
	for _, p := range grown.partitions[have:] {
		p.topic = t
	}
	t.partitions = grown.partitions
	if err := b.meta.save(b.topics); err != nil {
		return err
	}
	b.logger.Info("partitions added", "topic", t.name, "partitions", rt.Count)
	return nil
}
