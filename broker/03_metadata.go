package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metadata: v0-13
//
// Behavior:
//   - Lists this broker, the cluster id and the controller (this broker).
//   - A null topic list (an empty one before v1) asks for every topic.
//   - Unknown topics are created when auto.create.topics.enable is on and the
//     request allows it (always before v4), else UNKNOWN_TOPIC_OR_PARTITION.
//   - Topic IDs are stable for a topic's life (v10+, needed by Produce v13 and
//     Fetch v13+); v10+ may ask by ID.
//   - Invalid names get INVALID_TOPIC_EXCEPTION.

func init() { register(3, 0, 13, (*Broker).handleMetadata) }

func (b *Broker) handleMetadata(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	host, port := b.advertisedAddr()
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, host, port
	resp.Brokers = append(resp.Brokers, br)
	resp.ClusterID = &b.cfg.ClusterID
	resp.ControllerID = b.cfg.NodeID

	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, t := range b.sortedTopics() {
			resp.Topics = append(resp.Topics, b.metadataTopic(t))
		}
		return resp, nil
	}
	autoCreate := *b.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		var t *topic
		var name string
		switch {
		case rt.Topic != nil && *rt.Topic != "":
			name = *rt.Topic
			t = b.topicByName(name)
		case rt.TopicID != [16]byte{}:
			t = b.topicByID(rt.TopicID)
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if t == nil && name != "" && autoCreate {
			var err error
			t, err = b.createTopic(name, b.cfg.NumPartitions, nil)
			if errCode(err) == kerr.TopicAlreadyExists.Code {
				t, err = b.topicByName(name), nil
			}
			if err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = &name
				mt.ErrorCode = errCode(err)
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if name != "" && validTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(t))
	}
	return resp, nil
}

func (b *Broker) metadataTopic(t *topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.name
	mt.Topic = &name
	mt.TopicID = t.id
	mt.IsInternal = t.internal
	for _, p := range b.partitionsOf(t) {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.index
		mp.Leader = b.cfg.NodeID
		mp.LeaderEpoch = p.leaderEpoch
		mp.Replicas = []int32{b.cfg.NodeID}
		mp.ISR = []int32{b.cfg.NodeID}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

// partitionsOf snapshots a topic's partitions.
func (b *Broker) partitionsOf(t *topic) []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return t.partitions
}
