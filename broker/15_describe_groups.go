package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups: v0-5
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - State, protocol and members with their metadata and assignment.

func init() { register(15, 0, 5, (*Broker).handleDescribeGroups) }

func (b *Broker) handleDescribeGroups(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	return b.groups.DescribeGroups(cc.groupCtx(), kreq.(*kmsg.DescribeGroupsRequest)), nil
}
