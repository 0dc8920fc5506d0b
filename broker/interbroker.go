package broker

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// brokerOnlyRequest reports whether req is a broker-to-broker request, and the broker
// id it claims to come from: BrokerRegistration, BrokerHeartbeat, AlterPartition,
// AllocateProducerIds, and replica fetches (Fetch and OffsetForLeaderEpoch with a
// replica id).
func brokerOnlyRequest(req kmsg.Request) (id int32, ok bool) {
	switch r := req.(type) {
	case *kmsg.BrokerRegistrationRequest:
		return r.BrokerID, true
	case *kmsg.BrokerHeartbeatRequest:
		return r.BrokerID, true
	case *kmsg.AlterPartitionRequest:
		return r.BrokerID, true
	case *kmsg.AllocateProducerIDsRequest:
		return r.BrokerID, true
	case *kmsg.FetchRequest:
		id := replicaID(r)
		return id, id >= 0
	case *kmsg.OffsetForLeaderEpochRequest:
		return r.ReplicaID, r.Version >= 3 && r.ReplicaID >= 0
	}
	return 0, false
}

// brokerOnlyGuard answers a broker-to-broker request with CLUSTER_AUTHORIZATION_FAILED
// unless it came in on the inter-broker or a controller listener, from a broker
// principal (broker.principals), naming the broker id that principal is bound to. It
// returns nil for every other request, which is then served as usual; the connection
// stays open either way.
func (b *Broker) brokerOnlyGuard(cc *conn, req kmsg.Request) (kmsg.Response, error) {
	id, ok := brokerOnlyRequest(req)
	if !ok {
		return nil, nil
	}
	why := b.brokerOnlyDenied(cc, id)
	if why == "" {
		return nil, nil
	}
	b.logger.Warn("broker-only request refused", "api", kmsg.NameForKey(req.Key()), "remote", cc.remote,
		"listener", cc.listener.name, "principal", cc.principal, "broker_id", id, "reason", why)
	return clusterAuthorizationFailed(req), nil
}

// brokerOnlyDenied is why the connection may not act as broker id, or "".
func (b *Broker) brokerOnlyDenied(cc *conn, id int32) string {
	l := cc.listener
	if l == nil || !l.brokerOnly() {
		return "not the inter-broker or a controller listener"
	}
	if !l.authenticates() {
		// A loopback-bound unauthenticated inter-broker listener (the `listen`
		// shorthand's BROKER listener): the machine is the trust boundary.
		return ""
	}
	if id < 0 {
		return "negative broker id"
	}
	want, bound := b.sec.brokers[id]
	if !bound {
		// A node id the controller allocated belongs to the broker principal that asked
		// for it ("": asked on a loopback-trusted controller listener, any broker
		// principal).
		if owner, ok := b.quorum.Image().NodePrincipal(id); ok && b.isBrokerPrincipal(cc.principal) && (owner == "" || owner == cc.principal) {
			return ""
		}
		return "broker id " + strconv.Itoa(int(id)) + " has no principal in broker.principals"
	}
	if want != cc.principal {
		return "principal is not bound to broker id " + strconv.Itoa(int(id))
	}
	return ""
}

// clusterAuthorizationFailed is req's response with CLUSTER_AUTHORIZATION_FAILED
// wherever it carries an error code.
func clusterAuthorizationFailed(req kmsg.Request) kmsg.Response {
	code := kerr.ClusterAuthorizationFailed.Code
	switch r := req.(type) {
	case *kmsg.BrokerRegistrationRequest:
		resp := r.ResponseKind().(*kmsg.BrokerRegistrationResponse)
		resp.ErrorCode, resp.BrokerEpoch = code, -1
		return resp
	case *kmsg.BrokerHeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
		resp.ErrorCode, resp.IsFenced = code, true
		return resp
	case *kmsg.AlterPartitionRequest:
		resp := r.ResponseKind().(*kmsg.AlterPartitionResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.AllocateProducerIDsRequest:
		resp := r.ResponseKind().(*kmsg.AllocateProducerIDsResponse)
		resp.ErrorCode = code
		return resp
	case *kmsg.FetchRequest:
		resp := r.ResponseKind().(*kmsg.FetchResponse)
		resp.ErrorCode = code
		resp.SessionID = 0
		for _, rt := range r.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	case *kmsg.OffsetForLeaderEpochRequest:
		resp := r.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetForLeaderEpochResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.LeaderEpoch, sp.EndOffset = rp.Partition, code, -1, -1
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}
	panic(fmt.Sprintf("no broker-only response for %T", req))
}

// dialPeer connects to another broker's inter-broker listener with this broker's
// inter-broker security: TLS with its own certificate (mTLS) for SSL and SASL_SSL, and
// a SASL exchange with its own credentials for SASL_PLAINTEXT and SASL_SSL.
func (b *Broker) dialPeer(ctx context.Context, addr string) (net.Conn, time.Duration, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	ib := b.interBrokerListener()
	if ib.tls() {
		cfg := b.sec.tls.ClientConfig()
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, 0, fmt.Errorf("TLS to %s: %w", addr, err)
		}
		nc = tc
	}
	var lifetime time.Duration
	if ib.sasl() {
		if lifetime, err = b.peerAuthenticate(ctx, nc, addr); err != nil {
			nc.Close()
			return nil, 0, err
		}
	}
	return nc, lifetime, nil
}

// peerAuthenticate runs SaslHandshake v1 and SaslAuthenticate v1 as a client.
func (b *Broker) peerAuthenticate(ctx context.Context, nc net.Conn, addr string) (lifetime time.Duration, err error) {
	ps := b.sec.peerSASL
	var mech sasl.Mechanism
	switch ps.mechanism {
	case mechPlain:
		mech = plain.Auth{User: ps.user, Pass: string(ps.password)}.AsMechanism()
	case mechSCRAM256:
		mech = scram.Auth{User: ps.user, Pass: string(ps.password)}.AsSha256Mechanism()
	default:
		mech = scram.Auth{User: ps.user, Pass: string(ps.password)}.AsSha512Mechanism()
	}
	p := &peer{addr: addr, clientID: "sluice-broker-" + strconv.Itoa(int(b.cfg.NodeID)), nc: nc, r: bufio.NewReader(nc)}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech.Name()
	resp, err := p.roundTrip(ctx, hs)
	if err != nil {
		return 0, fmt.Errorf("SASL handshake with %s: %w", addr, err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return 0, fmt.Errorf("SASL handshake with %s: %w", addr, err)
	}
	session, msg, err := mech.Authenticate(ctx, addr)
	if err != nil {
		return 0, err
	}
	for {
		ar := kmsg.NewPtrSASLAuthenticateRequest()
		ar.Version, ar.SASLAuthBytes = 1, msg
		resp, err := p.roundTrip(ctx, ar)
		if err != nil {
			return 0, fmt.Errorf("SASL authenticate with %s: %w", addr, err)
		}
		r := resp.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return 0, fmt.Errorf("SASL authenticate with %s as %s: %w", addr, ps.user, err)
		}
		done, next, err := session.Challenge(r.SASLAuthBytes)
		if err != nil {
			return 0, err
		}
		if done {
			return time.Duration(r.SessionLifetimeMillis) * time.Millisecond, nil
		}
		msg = next
	}
}
