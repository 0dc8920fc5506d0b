package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup: v0-5
//
// Behavior:
//   - Authorization: READ on the group, else GROUP_AUTHORIZATION_FAILED.
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Removes members and starts a rebalance; v3+ removes several (KIP-345).

func init() { register(13, 0, 5, (*Broker).handleLeaveGroup) }

func (b *Broker) handleLeaveGroup(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	if !cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group) {
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	return b.groups.LeaveGroup(cc.groupCtx(), req), nil
}
