package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// BrokerRegistration: v0
//
// Behavior:
//   - Broker-to-controller: a starting broker registers its id, incarnation and
//     Kafka listener. Served only by the active controller (else NOT_CONTROLLER).
//     The broker epoch returned identifies this registration in heartbeats.
//   - A different cluster id gets INCONSISTENT_CLUSTER_ID.
//   - Authorization: CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(62, 0, 0, (*Broker).handleBrokerRegistration) }

func (b *Broker) handleBrokerRegistration(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.BrokerRegistrationRequest)
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	resp.BrokerEpoch = -1
	if req.ClusterID != b.cfg.ClusterID {
		resp.ErrorCode = kerr.InconsistentClusterID.Code
		return resp, nil
	}
	if len(req.Listeners) == 0 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	// The first listener is the client listener (Host and Port); all of them are
	// kept so that clients of each listener are told that listener's addresses.
	l := req.Listeners[0]
	br := metadata.Broker{ID: req.BrokerID, Host: l.Host, Port: int32(l.Port), IncarnationID: req.IncarnationID}
	for _, rl := range req.Listeners {
		br.Listeners = append(br.Listeners, metadata.Endpoint{Name: rl.Name, Host: rl.Host, Port: int32(rl.Port),
			SecurityProtocol: securityProtocolName(rl.SecurityProtocol)})
	}
	if req.Rack != nil {
		br.Rack = *req.Rack
	}
	epoch, err := b.quorum.RegisterBroker(cc.ctx, br)
	resp.ErrorCode = errCode(err)
	if err == nil {
		resp.BrokerEpoch = epoch
	}
	return resp, nil
}
