package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetDelete: v0-0
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Deletes committed offsets of partitions the group is not subscribed to.
//   - Authorization: DELETE on the group, else GROUP_AUTHORIZATION_FAILED; READ on
//     each topic, else TOPIC_AUTHORIZATION_FAILED for its partitions.

func init() { register(47, 0, 0, (*Broker).handleOffsetDelete) }

func (b *Broker) handleOffsetDelete(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp, denied := cc.authorizeOffsetDelete(req)
	if resp != nil {
		return resp, nil
	}
	resp = b.groups.OffsetDelete(cc.groupCtx(), req)
	resp.Topics = append(resp.Topics, denied...)
	return resp, nil
}
