package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups: v0-5
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - State, protocol and members with their metadata and assignment.
//   - Authorization: DESCRIBE on each group, else GROUP_AUTHORIZATION_FAILED. v3+
//     returns the authorized operations on the group when asked (KIP-430).

func init() { register(15, 0, 5, (*Broker).handleDescribeGroups) }

func (b *Broker) handleDescribeGroups(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := b.groups.DescribeGroups(cc.groupCtx(), req)
	cc.filterDescribeGroups(req, resp)
	return resp, nil
}
