package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch: v0-9
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Returns committed offsets of a group, all partitions when topics are null (v2+).
//   - v8+: several groups in one request.
//   - Authorization: DESCRIBE on the group, else GROUP_AUTHORIZATION_FAILED; DESCRIBE
//     on each topic, else it is left out (all topics asked for) or its partitions get
//     TOPIC_AUTHORIZATION_FAILED.

func init() { register(9, 0, 9, (*Broker).handleOffsetFetch) }

func (b *Broker) handleOffsetFetch(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := b.groups.OffsetFetch(cc.groupCtx(), req)
	cc.filterOffsetFetch(req, resp)
	return resp, nil
}
