package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeCluster: v0-2
//
// Behavior:
//   - The cluster id, the controller and the brokers, like Metadata.
//   - v1+: endpoint type 1 (brokers) only; controller endpoints (2) get
//     UNSUPPORTED_ENDPOINT_TYPE.

func init() { register(60, 0, 2, (*Broker).handleDescribeCluster) }

func (b *Broker) handleDescribeCluster(_ *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return resp, nil
	}
	resp.EndpointType = 1
	resp.ClusterID = b.cfg.ClusterID
	resp.ControllerID = b.cfg.NodeID
	host, port := b.advertisedAddr()
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.cfg.NodeID, host, port
	resp.Brokers = append(resp.Brokers, br)
	return resp, nil
}
