package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AllocateProducerIds: v0
//
// Behavior:
//   - Broker-to-controller: hands a broker a block of producer ids, recorded in the
//     metadata log so that blocks never overlap, across controller changes too.
//     Served only by the active controller (else NOT_CONTROLLER).
//   - Authorization: CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(67, 0, 0, (*Broker).handleAllocateProducerIDs) }

func (b *Broker) handleAllocateProducerIDs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AllocateProducerIDsRequest)
	resp := req.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	start, count, err := b.quorum.AllocateProducerIDs(cc.ctx)
	resp.ErrorCode = errCode(err)
	if err == nil {
		resp.ProducerIDStart, resp.ProducerIDLen = start, int32(count)
	}
	return resp, nil
}
