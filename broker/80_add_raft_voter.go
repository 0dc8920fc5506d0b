package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddRaftVoter: v0-1
//
// Behavior:
//   - KIP-853: makes node VoterID a voter of the metadata quorum (a controller). The node
//     must already follow the metadata log as an observer (started with
//     controller.quorum.bootstrap.servers and its own controller listener) and have caught
//     up; its Raft address is the one it joined with, so Listeners are not used.
//     Otherwise INVALID_REQUEST, or REQUEST_TIMED_OUT while it is catching up (retry).
//     A voter already: DUPLICATE_VOTER. Carried out by the active controller; other
//     brokers forward it. The answer comes once the new configuration is committed
//     (AckWhenCommitted is always honoured).
//   - A ClusterID other than this cluster's: INCONSISTENT_CLUSTER_ID.
//   - Authorization: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(80, 0, 1, (*Broker).handleAddRaftVoter) }

func (b *Broker) handleAddRaftVoter(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AddRaftVoterRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.AddRaftVoterResponse)
	err := b.quorumChangeAllowed(cc, req.ClusterID)
	if err == nil {
		ctx, cancel := context.WithTimeout(cc.ctx, quorumChangeTimeout(req.TimeoutMillis))
		err = b.quorum.AddController(ctx, req.VoterID)
		cancel()
	}
	resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
	return resp, nil
}

// quorumChangeAllowed checks ALTER on the cluster and the cluster id of a quorum change.
func (b *Broker) quorumChangeAllowed(cc *conn, clusterID *string) error {
	if !cc.authorizedCluster(kmsg.ACLOperationAlter) {
		return kerr.ClusterAuthorizationFailed
	}
	if clusterID != nil && *clusterID != b.cfg.ClusterID {
		return kafkaErr(kerr.InconsistentClusterID, "this cluster is "+b.cfg.ClusterID)
	}
	return nil
}

// quorumChangeTimeout is the request's timeout, within [5s, 60s].
func quorumChangeTimeout(ms int32) time.Duration {
	return min(max(time.Duration(ms)*time.Millisecond, 5*time.Second), time.Minute)
}
