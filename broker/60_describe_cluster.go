package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
)

// DescribeCluster: v0-2
//
// Behavior:
//   - The cluster id, the active controller and the live brokers with their
//     addresses on the client's listener, like Metadata;
//     v2+ fenced brokers too when asked.
//   - v1+: endpoint type 1 (brokers) only; controller endpoints (2) get
//     UNSUPPORTED_ENDPOINT_TYPE.
//   - Authorization: none, as in Kafka; the authorized operations on the cluster
//     when asked for (KIP-430), 0 without DESCRIBE on the cluster.

func init() { register(60, 0, 2, (*Broker).handleDescribeCluster) }

func (b *Broker) handleDescribeCluster(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp, nil
	}
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = 0
		if cc.authorizedCluster(kmsg.ACLOperationDescribe) {
			resp.ClusterAuthorizedOperations = cc.authorizedOperations(kmsg.ACLResourceTypeCluster, acl.ClusterName)
		}
	}
	resp.EndpointType = 1
	resp.ClusterID = b.cfg.ClusterID
	img := b.quorum.Image()
	resp.ControllerID = b.clientControllerID(img)
	for _, mb := range img.LiveBrokers() {
		host, port, ok := mb.Endpoint(cc.listener.name)
		if !ok {
			continue
		}
		br := kmsg.NewDescribeClusterResponseBroker()
		br.NodeID, br.Host, br.Port = mb.ID, host, port
		if mb.Rack != "" {
			rack := mb.Rack
			br.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, br)
	}
	if req.Version >= 2 && req.IncludeFencedBrokers {
		for _, mb := range img.Brokers {
			host, port, ok := mb.Endpoint(cc.listener.name)
			if mb.Fenced && ok {
				br := kmsg.NewDescribeClusterResponseBroker()
				br.NodeID, br.Host, br.Port, br.IsFenced = mb.ID, host, port, true
				resp.Brokers = append(resp.Brokers, br)
			}
		}
	}
	return resp, nil
}
