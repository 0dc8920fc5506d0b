package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// BrokerHeartbeat: v0
//
// Behavior:
//   - Broker-to-controller: renews a broker's session. A broker that misses
//     heartbeats for broker.session.timeout.ms is fenced and its leaderships move.
//     WantFence asks to be fenced now (controlled shutdown). Served only by the
//     active controller (else NOT_CONTROLLER).
//   - When the broker's side closes the connection that carried its last
//     heartbeat (a killed process closes its sockets), the controller fences the
//     broker at once instead of after the session timeout.
//   - Authorization: CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(63, 0, 0, (*Broker).handleBrokerHeartbeat) }

func (b *Broker) handleBrokerHeartbeat(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.BrokerHeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	fenced, err := b.quorum.Heartbeat(cc.ctx, metadata.HeartbeatRequest{
		BrokerID: req.BrokerID, BrokerEpoch: req.BrokerEpoch,
		AppliedIndex: uint64(max(req.CurrentMetadataOffset, 0)), WantFence: req.WantFence, Conn: cc.id,
	})
	if err == nil {
		cc.heartbeats, cc.heartbeatOf = true, req.BrokerID
	}
	resp.ErrorCode = errCode(err)
	resp.IsFenced = fenced
	resp.IsCaughtUp = !fenced
	return resp, nil
}
