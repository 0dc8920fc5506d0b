package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetFetch: v0-9
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Returns committed offsets of a group, all partitions when topics are null (v2+).
//   - v8+: several groups in one request.

func init() { register(9, 0, 9, (*Broker).handleOffsetFetch) }

func (b *Broker) handleOffsetFetch(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.OffsetFetch(cc.groupCtx(), kreq.(*kmsg.OffsetFetchRequest)), nil
}
