package broker

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	envelopepkg "github.com/sluicemq/sluice/broker/envelope"
)

// Envelope: v0
//
// Behavior:
//   - A broker-only API: a broker forwarding a client's admin request to the
//     controller wraps it with the client's principal and address, so the
//     controller authorizes the request as the client, as KRaft brokers do.
//   - Needs CLUSTER_ACTION on the cluster (the forwarding broker's principal), else
//     CLUSTER_AUTHORIZATION_FAILED and the inner request is not looked at.
//   - Any client API may travel inside (brokers forward CreateTopics, DeleteTopics,
//     CreatePartitions, AlterConfigs, IncrementalAlterConfigs, CreateAcls,
//     DeleteAcls, AlterUserScramCredentials and whatever admin API is added later),
//     since it is authorized as the client; but not the data path (Produce, Fetch),
//     the connection's own (ApiVersions, SASL), another Envelope, or a broker-only
//     API, which must come from the broker itself. Those, or a malformed inner
//     request, get INVALID_REQUEST.
//   - Served only on the inter-broker and controller listeners, as Kafka serves it
//     only on privileged listeners; elsewhere CLUSTER_AUTHORIZATION_FAILED.
//   - The principal travels as its Kafka string ("User:alice"); both ends are Sluice.
//   - On a client listener, from a principal of gateway.principals: the requests
//     of clients `sluice gateway` authenticated, data path included
//     (gateway_envelope.go).

func init() { register(58, 0, 0, (*Broker).handleEnvelope) }

// notForwardable are the API keys an Envelope may not carry.
var notForwardable = map[int16]bool{0: true, 1: true, 17: true, 18: true, 23: true, 36: true, 56: true, 58: true,
	62: true, 63: true, 67: true}

func (b *Broker) handleEnvelope(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.EnvelopeRequest)
	if b.isGatewayConn(cc) {
		return b.handleGatewayEnvelope(cc, req) // gateway_envelope.go
	}
	resp := req.ResponseKind().(*kmsg.EnvelopeResponse)
	if (cc.listener != nil && !cc.listener.brokerOnly()) || !cc.authorizedCluster(kmsg.ACLOperationClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	rd := kbin.Reader{Src: req.RequestData}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	clientID := rd.NullableString()
	if rd.Complete() != nil || key < 0 || int(key) >= len(apis) || apis[key] == nil || notForwardable[key] ||
		version < apis[key].min || version > apis[key].max ||
		len(req.RequestPrincipal) == 0 || len(req.RequestPrincipal) > 1024 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	inner := kmsg.RequestForKey(key)
	inner.SetVersion(version)
	if inner.IsFlexible() {
		kmsg.SkipTags(&rd)
	}
	if rd.Complete() != nil || inner.ReadFrom(rd.Src) != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	host := net.IP(req.ClientHostAddress).String()
	if len(req.ClientHostAddress) != net.IPv4len && len(req.ClientHostAddress) != net.IPv6len {
		host = "unknown"
	}
	forwarded := &conn{b: b, ctx: cc.ctx, remote: net.JoinHostPort(host, "0"), host: host, principal: string(req.RequestPrincipal),
		listener: cc.listener}
	if clientID != nil {
		forwarded.clientID = *clientID
	}
	innerResp, err := apis[key].handle(b, forwarded, inner)
	if err != nil {
		return nil, fmt.Errorf("forwarded %s: %w", kmsg.NameForKey(key), err)
	}
	buf := binary.BigEndian.AppendUint32(nil, uint32(corr))
	if inner.IsFlexible() {
		buf = append(buf, 0)
	}
	resp.ResponseData = innerResp.AppendTo(buf)
	return resp, nil
}

// envelope wraps a client's request for the controller with the client's principal
// and address.
func envelope(cc *conn, req kmsg.Request) *kmsg.EnvelopeRequest {
	return envelopepkg.Wrap(req, cc.clientID, cc.principalName(), cc.clientHost())
}

// unwrapEnvelope returns the response inside an Envelope response to req.
func unwrapEnvelope(req kmsg.Request, resp kmsg.Response) (kmsg.Response, error) {
	return envelopepkg.Unwrap(req, resp.(*kmsg.EnvelopeResponse))
}
