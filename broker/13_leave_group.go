package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup: v0-5
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Removes members and starts a rebalance; v3+ removes several (KIP-345).

func init() { register(13, 0, 5, (*Broker).handleLeaveGroup) }

func (b *Broker) handleLeaveGroup(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.LeaveGroup(cc.groupCtx(), kreq.(*kmsg.LeaveGroupRequest)), nil
}
