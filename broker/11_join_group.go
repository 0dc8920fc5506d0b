package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: v0-9
//
// Behavior:
//   - Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - The classic rebalance protocol: the request waits until every member has
//     rejoined or the rebalance timeout ends; the leader gets the member list.
//   - v4+: a first join without member id gets MEMBER_ID_REQUIRED (KIP-394).
//   - v5+: static membership through group.instance.id (KIP-345).
//   - v0 is served because librdkafka only enables its group consumer when it is.

func init() { register(11, 0, 9, (*Broker).handleJoinGroup) }

func (b *Broker) handleJoinGroup(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.JoinGroupRequest)
	if !cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	return b.groups.JoinGroup(cc.groupCtx(), req), nil
}
