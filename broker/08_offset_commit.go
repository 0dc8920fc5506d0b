package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// OffsetCommit: v0-9
//
// Behavior:
//   - Served by the group coordinator (package group) for groups whose
//     __consumer_offsets partition this broker leads.
//   - Commits are appended to the group's __consumer_offsets partition and are
//     durable before the response is sent; they survive restarts.
//   - Generation -1 commits to an empty group (simple consumers, admin tools).
//   - Unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION.
//   - Authorization: READ on the group (else GROUP_AUTHORIZATION_FAILED for every
//     partition) and on each topic (else TOPIC_AUTHORIZATION_FAILED for its partitions).

func init() { register(8, 0, 9, (*Broker).handleOffsetCommit) }

func (b *Broker) handleOffsetCommit(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp, denied := cc.authorizeOffsetCommit(req)
	if resp != nil {
		return resp, nil
	}
	resp = b.groups.OffsetCommit(cc.groupCtx(), req)
	resp.Topics = append(resp.Topics, denied...)
	return resp, nil
}
