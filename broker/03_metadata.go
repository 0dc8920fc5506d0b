package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// Metadata: v0-13
//
// Behavior:
//   - Answered from this broker's copy of the metadata log: the live (unfenced)
//     brokers with their addresses on the listener the client connected to, the
//     cluster id, a controller (the active one when live, else this broker, which
//     forwards controller requests; never -1), and per partition its
//     leader, leader epoch, replicas, ISR and offline replicas. A partition without
//     a leader gets LEADER_NOT_AVAILABLE.
//   - A null topic list (an empty one before v1) asks for every topic.
//   - Unknown topics are created (through the controller) when
//     auto.create.topics.enable is on and the request allows it (always before v4),
//     else UNKNOWN_TOPIC_OR_PARTITION.
//   - Topic IDs are stable for a topic's life (v10+, needed by Produce v13 and
//     Fetch v13+); v10+ may ask by ID.
//   - Invalid names get INVALID_TOPIC_EXCEPTION.
//   - Authorization: only topics the principal may DESCRIBE are listed; a named one
//     it may not gets TOPIC_AUTHORIZATION_FAILED (by ID: without its name), whether
//     it exists or not. Auto-creation needs CREATE on the cluster or on the topic,
//     else TOPIC_AUTHORIZATION_FAILED.
//   - v8+: authorized operations of topics and (v8-10) of the cluster (KIP-430)
//     when asked for.

func init() { register(3, 0, 13, (*Broker).handleMetadata) }

func (b *Broker) handleMetadata(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)

	autoCreate := *b.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	if autoCreate && req.Topics != nil {
		b.autoCreate(cc, req)
	}
	img := b.quorum.Image()
	for _, br := range img.LiveBrokers() {
		host, port, ok := br.Endpoint(cc.listener.name)
		if !ok {
			continue
		}
		mb := kmsg.NewMetadataResponseBroker()
		mb.NodeID, mb.Host, mb.Port = br.ID, host, port
		if br.Rack != "" {
			rack := br.Rack
			mb.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, mb)
	}
	resp.ClusterID = &b.cfg.ClusterID
	resp.ControllerID = b.clientControllerID(img)

	defer cc.metadataAuthorizedOperations(req, resp)
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, t := range img.SortedTopics() {
			if cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Name) {
				resp.Topics = append(resp.Topics, metadataTopic(img, t))
			}
		}
		return resp, nil
	}
	for _, rt := range req.Topics {
		var t *metadata.Topic
		var name string
		switch {
		case rt.Topic != nil && *rt.Topic != "":
			name = *rt.Topic
			t = img.Topic(name)
		case rt.TopicID != [16]byte{}:
			if t = img.TopicByID(rt.TopicID); t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
		}
		if denied, ok := cc.metadataTopicDenied(rt, t, autoCreate); ok {
			resp.Topics = append(resp.Topics, denied)
			continue
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			if name != "" && validTopicName(name) != nil {
				mt.ErrorCode = kerr.InvalidTopicException.Code
			} else if autoCreate && name != "" {
				mt.ErrorCode = kerr.LeaderNotAvailable.Code // being created; retriable
			}
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(img, t))
	}
	return resp, nil
}

// autoCreate creates the unknown, validly named topics of a Metadata request.
func (b *Broker) autoCreate(cc *conn, req *kmsg.MetadataRequest) {
	img := b.quorum.Image()
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version = 4
	create.TimeoutMillis = 5000
	for _, rt := range req.Topics {
		if rt.Topic == nil || *rt.Topic == "" || img.Topic(*rt.Topic) != nil || validTopicName(*rt.Topic) != nil {
			continue
		}
		if _, denied := cc.metadataTopicDenied(rt, nil, true); denied {
			continue
		}
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = *rt.Topic, -1, -1
		create.Topics = append(create.Topics, ct)
	}
	if len(create.Topics) == 0 {
		return
	}
	if _, err := b.handleCreateTopics(cc, create); err != nil {
		b.logger.Debug("auto-creating topics", "err", err)
	}
}

func metadataTopic(img *metadata.Image, t *metadata.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = internalTopic(t.Name)
	for i, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = int32(i)
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		mp.Replicas = slices.Clone(p.Replicas)
		mp.ISR = slices.Clone(p.ISR)
		for _, r := range p.Replicas {
			if !img.Live(r) {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if p.Leader < 0 {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
