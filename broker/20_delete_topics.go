package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics: v0-6
//
// Behavior:
//   - Deletes topics and their data; fetches waiting on them return at once.
//   - v6+ names topics by name or ID.
//   - With delete.topic.enable=false every topic gets TOPIC_DELETION_DISABLED.
//   - The internal __consumer_offsets topic cannot be deleted.

func init() { register(20, 0, 6, (*Broker).handleDeleteTopics) }

func (b *Broker) handleDeleteTopics(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type named struct {
		name *string
		id   [16]byte
	}
	var targets []named
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, named{t.Topic, t.TopicID})
		}
	} else {
		for _, name := range req.TopicNames {
			targets = append(targets, named{name: &name})
		}
	}
	for _, tgt := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tgt.name, tgt.id
		var t *topic
		if tgt.name != nil {
			t = b.topicByName(*tgt.name)
		} else {
			t = b.topicByID(tgt.id)
		}
		var err error
		switch {
		case !*b.cfg.DeleteTopicEnable:
			err = kerr.TopicDeletionDisabled
		case t == nil && tgt.name == nil:
			err = kerr.UnknownTopicID
		case t == nil:
			err = kerr.UnknownTopicOrPartition
		case t.internal:
			err = kafkaErr(kerr.InvalidTopicException, "internal topics cannot be deleted")
		default:
			name := t.name
			st.Topic, st.TopicID = &name, t.id
			err = b.deleteTopic(t)
		}
		st.ErrorCode = errCode(err)
		if err != nil && req.Version >= 5 {
			st.ErrorMessage = errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
