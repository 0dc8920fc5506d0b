package broker

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RemoveRaftVoter: v0
//
// Behavior:
//   - KIP-853: node VoterID stops being a voter of the metadata quorum. It stays in the
//     Raft configuration as an observer, so a node that is also a broker keeps serving;
//     stop it to take it out for good. Refused with INVALID_REQUEST when it would leave
//     fewer than three voters (metadata.MinVoters); VOTER_NOT_FOUND when it is not a
//     voter. Asked to remove itself, the active controller hands leadership to another
//     voter and forwards the request to it. Carried out by the
//     active controller; other brokers forward it.
//   - A ClusterID other than this cluster's: INCONSISTENT_CLUSTER_ID.
//   - Authorization: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(81, 0, 0, (*Broker).handleRemoveRaftVoter) }

func (b *Broker) handleRemoveRaftVoter(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.RemoveRaftVoterRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.RemoveRaftVoterResponse)
	err := b.quorumChangeAllowed(cc, req.ClusterID)
	if err == nil {
		ctx, cancel := context.WithTimeout(cc.ctx, quorumChangeTimeout(0))
		err = b.quorum.RemoveController(ctx, req.VoterID)
		cancel()
		if errors.Is(err, kerr.NotController) && !b.quorum.IsController() {
			// This controller was asked to remove itself and handed leadership over: the
			// new controller carries it out.
			return b.forwardToController(cc, req)
		}
	}
	resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
	return resp, nil
}
