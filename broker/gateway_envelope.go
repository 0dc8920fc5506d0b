package broker

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	envelopepkg "github.com/sluicemq/sluice/broker/envelope"
)

// Gateway Envelopes: `sluice gateway` authenticates its clients (relaying their
// SASL exchange to a broker, which decides) and sends each client's requests
// wrapped in an Envelope carrying the client's principal and address, on a
// client listener, authenticated as one of gateway.principals. The inner request
// is then served exactly as if the client had sent it on this connection: the
// broker-only guard, the controller mutation quota, the handler's ACL checks,
// the client quotas and the tenant plan all see the client's principal and
// host; throttle times go into the inner response, and the gateway's backend
// connection (one per client and broker) is muted for them. Envelopes from any
// other principal on a client listener get CLUSTER_AUTHORIZATION_FAILED, as
// before. SASL, ApiVersions, another Envelope and broker-only APIs are never
// served inside (INVALID_REQUEST): the gateway answers ApiVersions and relays
// SASL itself.

// notGatewayForwardable are the API keys a gateway Envelope may not carry.
var notGatewayForwardable = map[int16]bool{17: true, 18: true, 36: true, 58: true,
	27: true, 56: true, 62: true, 63: true, 67: true}

// gatewayPrincipals splits gateway.principals at semicolons, as super.users.
func (s *Security) gatewayPrincipals() []string {
	var out []string
	for _, p := range strings.Split(s.GatewayPrincipals, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validateGatewayPrincipals checks gateway.principals: each is TYPE:name and
// none is the anonymous principal, which would let any unauthenticated client
// claim to be anyone.
func (s *Security) validateGatewayPrincipals() error {
	for _, p := range s.gatewayPrincipals() {
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return fmt.Errorf("gateway.principals: %q is not TYPE:name (e.g. User:gateway)", p)
		}
		if p == anonymous {
			return fmt.Errorf("gateway.principals: %s is every unauthenticated client; name the principal the gateway authenticates as", p)
		}
	}
	return nil
}

// isGatewayConn reports whether cc is a gateway's connection on a client
// listener: authenticated as one of gateway.principals.
func (b *Broker) isGatewayConn(cc *conn) bool {
	if cc.listener == nil || cc.listener.brokerOnly() || !cc.authenticated {
		return false
	}
	for _, p := range b.sec.gateways {
		if p == cc.principal {
			return true
		}
	}
	return false
}

// handleGatewayEnvelope serves the client request inside a gateway's Envelope
// as the client.
func (b *Broker) handleGatewayEnvelope(cc *conn, req *kmsg.EnvelopeRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.EnvelopeResponse)
	rd := kbin.Reader{Src: req.RequestData}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	clientID := rd.NullableString()
	if rd.Complete() != nil || key < 0 || int(key) >= len(apis) || apis[key] == nil || notGatewayForwardable[key] ||
		version < apis[key].min || version > apis[key].max ||
		len(req.RequestPrincipal) == 0 || len(req.RequestPrincipal) > envelopepkg.MaxPrincipal ||
		!strings.Contains(string(req.RequestPrincipal), ":") {
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
	host := "unknown"
	if n := len(req.ClientHostAddress); n == net.IPv4len || n == net.IPv6len {
		host = net.IP(req.ClientHostAddress).String()
	}
	fc := cc.gatewayClient(string(req.RequestPrincipal), host)
	fc.clientID = ""
	if clientID != nil {
		fc.clientID = *clientID
	}
	now := time.Now()
	t := &requestTiming{api: kmsg.NameForKey(key), read: now, started: now}
	fc.timing = t
	innerResp, err := b.brokerOnlyGuard(fc, inner)
	if innerResp == nil && err == nil {
		innerResp, err = fc.handleWithMutationQuota(apis[key], inner)
	}
	fc.timing = nil
	t.handled = time.Now()
	if err != nil {
		return nil, fmt.Errorf("%s from gateway client %s: %w", kmsg.NameForKey(key), fc.principal, err)
	}
	fc.throttleResponse(inner, innerResp, len(req.RequestData), t)
	fc.afterTenantRequest(inner, innerResp, len(req.RequestData))
	b.metrics.observeHandled(t, version, innerResp)
	if fc.muteUntil.After(cc.muteUntil) {
		cc.muteUntil = fc.muteUntil
	}
	fc.muteUntil = time.Time{}
	if innerResp == nil {
		return resp, nil // acks=0: an empty ResponseData says so
	}
	buf := binary.BigEndian.AppendUint32(nil, uint32(corr))
	if inner.IsFlexible() {
		buf = append(buf, 0)
	}
	resp.ResponseData = innerResp.AppendTo(buf)
	return resp, nil
}

// gatewayClient is the connection state of the gateway client served through
// cc: kept while the same client's requests come (a gateway backend connection
// carries one client's requests), so its quota and tenant caches last.
func (cc *conn) gatewayClient(principal, host string) *conn {
	if fc := cc.gatewayInner; fc != nil && fc.principal == principal && fc.host == host {
		return fc
	}
	fc := &conn{b: cc.b, ctx: cc.ctx, remote: net.JoinHostPort(host, "0"), host: host, principal: principal,
		listener: cc.listener, id: cc.id}
	fc.authenticated = true
	cc.gatewayInner = fc
	return fc
}
