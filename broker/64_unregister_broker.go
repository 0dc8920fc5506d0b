package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// UnregisterBroker: v0
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it): removes a
//     stopped broker that holds no replica from the metadata, with its dynamic
//     configs (KIP-631's UnregisterBroker); afterwards nothing in the metadata
//     refers to it except past cluster events.
//   - BROKER_ID_NOT_REGISTERED for an unknown broker; INVALID_REQUEST while it runs
//     (stop it first) or holds replicas (drain it first).
//   - Authorization: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(64, 0, 0, (*Broker).handleUnregisterBroker) }

func (b *Broker) handleUnregisterBroker(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.UnregisterBrokerRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationAlter) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	err := b.quorum.UnregisterBroker(cc.ctx, req.BrokerID)
	resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
	if err == nil {
		b.logger.Info("broker unregistered", "broker", req.BrokerID, "principal", cc.principal)
	}
	return resp, nil
}
