package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat: v0-4
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

func init() { register(12, 0, 4, (*Broker).handleHeartbeat) }

func (b *Broker) handleHeartbeat(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.Heartbeat(cc.groupCtx(), kreq.(*kmsg.HeartbeatRequest)), nil
}
