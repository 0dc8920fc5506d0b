package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// JoinGroup: v0-9
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - The classic rebalance protocol: the request waits until every member has
//     rejoined or the rebalance timeout ends; the leader gets the member list.
//   - v4+: a first join without member id gets MEMBER_ID_REQUIRED (KIP-394).
//   - v5+: static membership through group.instance.id (KIP-345).
//   - v0 is served because librdkafka only enables its group consumer when it is.

func init() { register(11, 0, 9, (*Broker).handleJoinGroup) }

func (b *Broker) handleJoinGroup(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.JoinGroup(cc.groupCtx(), kreq.(*kmsg.JoinGroupRequest)), nil
}
