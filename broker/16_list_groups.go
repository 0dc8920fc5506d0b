package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// ListGroups: v0-5
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - v4+: filter by state; v5+: filter by type (classic only).
//   - Authorization: DESCRIBE on the cluster lists every group; without it only the
//     groups the principal may DESCRIBE are listed, never an error.

func init() { register(16, 0, 5, (*Broker).handleListGroups) }

func (b *Broker) handleListGroups(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	resp := b.groups.ListGroups(cc.groupCtx(), kreq.(*kmsg.ListGroupsRequest))
	cc.filterListGroups(resp)
	return resp, nil
}
