package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetDelete: v0-0
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Deletes committed offsets of partitions the group is not subscribed to.

func init() { register(47, 0, 0, (*Broker).handleOffsetDelete) }

func (b *Broker) handleOffsetDelete(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.OffsetDelete(cc.groupCtx(), kreq.(*kmsg.OffsetDeleteRequest)), nil
}
