package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteTopics: v0-6
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it): the deletion is
//     recorded in the metadata log and every replica deletes its data; fetches
//     waiting on the topic return at once.
//   - v6+ names topics by name or ID.
//   - With delete.topic.enable=false every topic gets TOPIC_DELETION_DISABLED.
//   - The internal __consumer_offsets topic cannot be deleted.
//   - Authorization: DELETE on each topic, else TOPIC_AUTHORIZATION_FAILED (a topic
//     named by ID also needs DESCRIBE, so its name is not disclosed).

func init() { register(20, 0, 6, (*Broker).handleDeleteTopics) }

func (b *Broker) handleDeleteTopics(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				b.waitForImage(cc.ctx, func() bool {
					for _, t := range resp.(*kmsg.DeleteTopicsResponse).Topics {
						if t.ErrorCode == 0 && b.topicByID(t.TopicID) != nil {
							return false
						}
					}
					return true
				})
			}
			return resp, err
		}
	}
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
		case !cc.authorizedDeleteTopic(tgt.name, t):
			err = kerr.TopicAuthorizationFailed
			if tgt.name == nil {
				st.Topic = nil // an ID the principal may not describe keeps its name
			}
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
			err = b.quorum.DeleteTopic(cc.ctx, t.id)
			if err == nil {
				b.waitForImage(cc.ctx, func() bool { return b.topicByID(t.id) == nil })
			}
		}
		st.ErrorCode = errCode(err)
		if err != nil && req.Version >= 5 {
			st.ErrorMessage = errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
