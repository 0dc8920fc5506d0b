package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteGroups: v0-2
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Deletes empty groups and their offsets (tombstones in __consumer_offsets);
//     NON_EMPTY_GROUP for groups with members.
//   - Authorization: DELETE on each group, else GROUP_AUTHORIZATION_FAILED.

func init() { register(42, 0, 2, (*Broker).handleDeleteGroups) }

func (b *Broker) handleDeleteGroups(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	denied := cc.authorizeDeleteGroups(req)
	resp := b.groups.DeleteGroups(cc.groupCtx(), req)
	resp.Groups = append(resp.Groups, denied...)
	return resp, nil
}
