package gateway

// Client authentication. With --client-security-protocol SASL_PLAINTEXT the
// gateway's clients authenticate with SASL and the brokers decide: the gateway
// relays each client's SaslHandshake and SaslAuthenticate, verbatim, to a broker
// on a connection of the client's own (no gateway credentials on it), and
// answers the client with the broker's answers. When the broker accepts the
// exchange, the gateway names the principal from the exchange's first message
// exactly as the broker does (broker/saslprincipal: PLAIN's authcid, SCRAM's
// n=) and from then on wraps every request it forwards for that client in an
// Envelope carrying that principal and the client's address. The brokers serve
// those Envelopes only from their gateway.principals, as the client: ACLs,
// quotas and tenant plans apply per client, exactly as on a direct connection.
//
// The relay connection stays open with the client's: the broker counts it
// against the client's tenant connection cap, and a re-authentication
// (KIP-368) is relayed on it, so the broker itself refuses a changed
// principal. The session lifetime the broker grants (connections.max.reauth.ms)
// binds the client at the gateway: after it, anything but re-authentication
// closes the connection, as a broker does.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/time/rate"

	"github.com/sluicemq/sluice/broker/envelope"
	"github.com/sluicemq/sluice/broker/saslprincipal"
	"github.com/sluicemq/sluice/internal/tlsfiles"
)

// Client listener security protocols (Kafka's names).
const (
	protoPlaintext     = "PLAINTEXT"
	protoSASLPlaintext = "SASL_PLAINTEXT"
	protoSASLSSL       = "SASL_SSL"
)

// SASL mechanisms the gateway relays: those whose principal it can name from
// the exchange the same way the broker does. OAUTHBEARER's principal depends on
// the brokers' sasl.oauthbearer.sub.claim.name, so it is not relayed.
var relayedMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

const (
	// maxUnauthenticatedFrame bounds a request frame before authentication,
	// like Kafka's sasl.server.max.receive.size (512 KiB).
	maxUnauthenticatedFrame = 512 << 10
	// maxSASLMessage bounds one SASL message, as the broker does.
	maxSASLMessage = 64 << 10
)

// authState is where a client connection is in its authentication.
type authState uint8

const (
	needHandshake    authState = iota // SaslHandshake (or ApiVersions) expected
	needAuthenticate                  // SaslAuthenticate expected
	authenticated
)

// clientAuth is a client connection's SASL state. Only the connection's read
// loop uses it, except principal, clientID and host, which are set before the
// first request is forwarded and never change after.
type clientAuth struct {
	state     authState
	reauth    bool   // a re-authentication is under way (the connection stays authenticated)
	mech      string // the exchange's mechanism
	step      int    // SaslAuthenticate requests of the exchange so far
	claimed   string // the user the exchange's first message names
	relay     *backend
	principal string
	clientID  string
	host      string
	expiry    time.Time // zero: the session never has to be renewed
	done      atomic.Bool
	slot      bool // holds one of g.unauthenticated
	timer     *time.Timer
}

// authMetrics are the gateway's authentication series.
type authMetrics struct {
	ok, failed *prometheus.CounterVec
	rejected   prometheus.Counter
}

func newAuthMetrics(reg prometheus.Registerer) *authMetrics {
	f := promauto.With(reg)
	return &authMetrics{
		ok: f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_gateway_authentications_total",
			Help: "Client SASL authentications the brokers accepted through the gateway, by mechanism."}, []string{"mechanism"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_gateway_authentication_failures_total",
			Help: "Client SASL authentications that failed through the gateway, by mechanism."}, []string{"mechanism"}),
		rejected: f.NewCounter(prometheus.CounterOpts{Name: "sluice_gateway_unauthenticated_rejected_total",
			Help: "Client connections closed at once because max.unauthenticated.connections had not authenticated yet."}),
	}
}

// clientSASL reports whether clients must authenticate.
func (g *Gateway) clientSASL() bool {
	return g.cfg.ClientSecurityProtocol == protoSASLPlaintext || g.cfg.ClientSecurityProtocol == protoSASLSSL
}

// validateAuth checks the client authentication settings.
func (c *Config) validateAuth() error {
	switch c.ClientSecurityProtocol {
	case protoPlaintext, protoSASLPlaintext, protoSASLSSL:
	default:
		return fmt.Errorf("--client-security-protocol %q: PLAINTEXT, SASL_PLAINTEXT or SASL_SSL", c.ClientSecurityProtocol)
	}
	if (c.ClientSecurityProtocol == protoSASLSSL) != (c.SSLKeystoreLocation != "") {
		return fmt.Errorf("--ssl-keystore-location %q: required with --client-security-protocol SASL_SSL, and only then", c.SSLKeystoreLocation)
	}
	if c.MaxUnauthenticatedConnections < 1 {
		return fmt.Errorf("--max-unauthenticated-connections %d: at least 1", c.MaxUnauthenticatedConnections)
	}
	if c.AuthenticationTimeout < time.Second {
		return fmt.Errorf("--authentication-timeout %v: at least 1s", c.AuthenticationTimeout)
	}
	return nil
}

// initAuth sets up client authentication once the backend credentials are
// known: the gateway must itself authenticate to the brokers, as one of their
// gateway.principals, for its Envelopes to be served.
func (g *Gateway) initAuth(reg prometheus.Registerer, backendAuthenticates bool) error {
	if !g.clientSASL() {
		return nil
	}
	if !backendAuthenticates {
		return errors.New("--client-security-protocol SASL_PLAINTEXT: the gateway must authenticate to the brokers (--sasl-mechanism or --tls-cert) as a principal of their gateway.principals")
	}
	if g.cfg.ClientSecurityProtocol == protoSASLSSL {
		src, err := tlsfiles.New(g.cfg.SSLKeystoreLocation, "")
		if err != nil {
			return fmt.Errorf("--ssl-keystore-location: %w", err)
		}
		g.tls = src
	}
	g.auth = newAuthMetrics(reg)
	g.unauthenticated = make(chan struct{}, g.cfg.MaxUnauthenticatedConnections)
	g.authFailLog = rate.NewLimiter(rate.Every(time.Second), 5)
	return nil
}

// admitClient sets up a new connection's authentication; false means the
// connection must be closed at once (too many connections are authenticating).
func (cc *clientConn) admitClient() bool {
	g := cc.g
	if !g.clientSASL() {
		return true
	}
	select {
	case g.unauthenticated <- struct{}{}:
	default:
		g.auth.rejected.Inc()
		return false
	}
	a := &clientAuth{slot: true}
	if h, _, err := net.SplitHostPort(cc.nc.RemoteAddr().String()); err == nil {
		a.host = h
	}
	// A connection that does not authenticate in time gives its slot back.
	a.timer = time.AfterFunc(g.cfg.AuthenticationTimeout, func() {
		if !a.done.Load() {
			cc.nc.Close()
		}
	})
	cc.auth = a
	return true
}

// releaseAuth frees what a closed connection's authentication held.
func (cc *clientConn) releaseAuth() {
	a := cc.auth
	if a == nil {
		return
	}
	a.timer.Stop()
	cc.freeSlot()
	if a.relay != nil {
		a.relay.close(errors.New("client gone"))
	}
}

func (cc *clientConn) freeSlot() {
	if cc.auth.slot {
		cc.auth.slot = false
		<-cc.g.unauthenticated
	}
}

// frameLimit is the largest request frame the connection accepts now.
func (cc *clientConn) frameLimit() int32 {
	if cc.auth != nil && cc.auth.state != authenticated {
		return min(cc.g.cfg.MaxRequestBytes, maxUnauthenticatedFrame)
	}
	return cc.g.cfg.MaxRequestBytes
}

var (
	errBeforeAuth     = errors.New("request before SASL authentication completed")
	errSessionExpired = errors.New("SASL session expired without re-authentication (the brokers' connections.max.reauth.ms)")
)

// authGate runs before a request is routed: SASL requests are relayed here
// (handled, with p their answer), ApiVersions passes, and anything else passes
// only on an authenticated connection whose session has not expired.
func (cc *clientConn) authGate(req kmsg.Request, corr int32, frame []byte) (p *pending, handled bool, err error) {
	a := cc.auth
	switch req.Key() {
	case 18:
		return nil, false, nil
	case 17:
		p, err = cc.saslHandshake(req.(*kmsg.SASLHandshakeRequest), corr, frame)
		return p, true, err
	case 36:
		p, err = cc.saslAuthenticate(req.(*kmsg.SASLAuthenticateRequest), corr, frame)
		return p, true, err
	}
	if a.state != authenticated {
		return nil, true, errBeforeAuth
	}
	if !a.expiry.IsZero() && time.Now().After(a.expiry) {
		return nil, true, errSessionExpired
	}
	return nil, false, nil
}

// saslVersions are the SASL versions the gateway serves: SaslHandshake v0-1
// (librdkafka requires v0 in the range; a v0 handshake, whose raw SASL frames
// the gateway does not relay, closes the connection: clients that know v1 use
// it) and SaslAuthenticate v0-2 (relayed to the brokers at v1).
func (g *Gateway) saslVersions(key int16) (lo, hi int16, ok bool) {
	if !g.clientSASL() {
		return 0, 0, false
	}
	switch key {
	case 17:
		return 0, 1, true
	case 36:
		return 0, 2, true
	}
	return 0, 0, false
}

// answered is a SASL request's answer; closeAfter, when set, closes the
// connection once it is written, as a broker does after a failed exchange.
func answered(req kmsg.Request, corr int32, frame []byte, resp kmsg.Response, closeAfter error) *pending {
	return &pending{corr: corr, key: req.Key(), flexHdr: req.IsFlexible(), size: int64(len(frame)),
		resp: resp, closeAfter: closeAfter}
}

// relayConn returns the connection the exchange is relayed on: the one kept
// from the last exchange while it works (a re-authentication then happens on
// the broker's connection that authenticated the client), else a new one to
// any broker, with the backend TLS settings but no gateway credentials.
func (cc *clientConn) relayConn(ctx context.Context) (*backend, error) {
	a := cc.auth
	if a.relay != nil && a.relay.failed() == nil {
		return a.relay, nil
	}
	if a.relay != nil {
		a.relay.close(errors.New("replaced"))
		a.relay = nil
	}
	d := *cc.g.dialer
	d.mech = nil
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		cc.seq++
		_, addr, ok := cc.g.cluster.anyBroker(cc.seq)
		if !ok {
			return nil, errors.New("no broker known")
		}
		b, err := d.dial(ctx, addr)
		if err == nil {
			a.relay = b
			return b, nil
		}
		last = err
	}
	return nil, last
}

func (cc *clientConn) saslHandshake(req *kmsg.SASLHandshakeRequest, corr int32, frame []byte) (*pending, error) {
	a := cc.auth
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = slices.Clone(relayedMechanisms)
	if req.Version < 1 {
		return nil, errors.New("SaslHandshake v0 (raw SASL frames) is not relayed by the gateway")
	}
	illegal := func(why string) (*pending, error) {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return answered(req, corr, frame, resp, errors.New(why)), nil
	}
	switch {
	case a.state == needHandshake:
	case a.state == authenticated && !a.reauth:
		// KIP-368 re-authentication keeps the mechanism.
		if req.Mechanism != a.mech {
			return illegal("re-authentication with another mechanism")
		}
	default:
		return illegal("SaslHandshake in the middle of an exchange")
	}
	if !slices.Contains(relayedMechanisms, req.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return answered(req, corr, frame, resp, fmt.Errorf("SASL mechanism %q is not relayed by the gateway", req.Mechanism)), nil
	}
	ctx, cancel := context.WithTimeout(cc.ctx, 10*time.Second)
	defer cancel()
	relay, err := cc.relayConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("relaying SASL to a broker: %w", err)
	}
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = req.Mechanism
	bresp, err := relay.roundTrip(ctx, hs)
	if err != nil {
		return nil, fmt.Errorf("relaying SaslHandshake: %w", err)
	}
	hr := bresp.(*kmsg.SASLHandshakeResponse)
	resp.ErrorCode = hr.ErrorCode
	resp.SupportedMechanisms = slices.DeleteFunc(slices.Clone(hr.SupportedMechanisms), func(m string) bool {
		return !slices.Contains(relayedMechanisms, m)
	})
	if resp.ErrorCode != 0 {
		return answered(req, corr, frame, resp, fmt.Errorf("SaslHandshake %s: %v", req.Mechanism, kerr.ErrorForCode(resp.ErrorCode))), nil
	}
	a.mech, a.step, a.claimed = req.Mechanism, 0, ""
	if a.state == authenticated {
		a.reauth = true
	} else {
		a.state = needAuthenticate
		if cid := requestClientID(frame); cid != "" {
			a.clientID = cid
		}
	}
	return answered(req, corr, frame, resp, nil), nil
}

func (cc *clientConn) saslAuthenticate(req *kmsg.SASLAuthenticateRequest, corr int32, frame []byte) (*pending, error) {
	a := cc.auth
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	fail := func(code int16, msg string) (*pending, error) {
		cc.g.auth.failed.WithLabelValues(a.mech).Inc()
		cc.logAuthFailure(a.mech, msg)
		resp.ErrorCode = code
		resp.ErrorMessage = &msg
		resp.SASLAuthBytes = nil
		return answered(req, corr, frame, resp, errors.New(msg)), nil
	}
	if (a.state != needAuthenticate && !a.reauth) || a.relay == nil {
		return fail(kerr.IllegalSaslState.Code, "SaslAuthenticate without a SaslHandshake v1 naming the mechanism")
	}
	if len(req.SASLAuthBytes) > maxSASLMessage {
		return fail(kerr.SaslAuthenticationFailed.Code, "SASL message too large")
	}
	if a.step == 0 {
		a.claimed = claimedUser(a.mech, req.SASLAuthBytes)
	}
	a.step++
	br := kmsg.NewPtrSASLAuthenticateRequest()
	br.SetVersion(1)
	br.SASLAuthBytes = req.SASLAuthBytes
	ctx, cancel := context.WithTimeout(cc.ctx, 10*time.Second)
	defer cancel()
	bresp, err := a.relay.roundTrip(ctx, br)
	if err != nil {
		return nil, fmt.Errorf("relaying SaslAuthenticate: %w", err)
	}
	ar := bresp.(*kmsg.SASLAuthenticateResponse)
	if ar.ErrorCode != 0 {
		msg := kerr.ErrorForCode(ar.ErrorCode).Error()
		if ar.ErrorMessage != nil {
			msg = *ar.ErrorMessage
		}
		return fail(ar.ErrorCode, msg)
	}
	resp.SASLAuthBytes = ar.SASLAuthBytes
	last := a.step == 1 && a.mech == "PLAIN" || a.step == 2 && strings.HasPrefix(a.mech, "SCRAM-")
	if !last {
		return answered(req, corr, frame, resp, nil), nil
	}
	if a.claimed == "" {
		// The broker accepted an exchange whose user the gateway cannot name:
		// it must not forward anything for it.
		return fail(kerr.SaslAuthenticationFailed.Code, "Authentication failed: the gateway could not name the principal")
	}
	principal := "User:" + a.claimed
	if a.state == authenticated && principal != a.principal {
		return fail(kerr.SaslAuthenticationFailed.Code, "Cannot change principals during re-authentication from "+a.principal+" to "+principal)
	}
	if a.state != authenticated {
		a.principal = principal
	}
	a.state, a.reauth = authenticated, false
	a.expiry = time.Time{}
	if ar.SessionLifetimeMillis > 0 {
		a.expiry = time.Now().Add(time.Duration(ar.SessionLifetimeMillis) * time.Millisecond)
	}
	if req.Version >= 1 {
		resp.SessionLifetimeMillis = ar.SessionLifetimeMillis
	}
	a.done.Store(true)
	cc.freeSlot()
	cc.g.auth.ok.WithLabelValues(a.mech).Inc()
	return answered(req, corr, frame, resp, nil), nil
}

// claimedUser is the user an exchange's first message names, "" when it names
// none; the broker parses it with the same code.
func claimedUser(mech string, msg []byte) string {
	switch mech {
	case "PLAIN":
		user, _, err := saslprincipal.Plain(msg)
		if err != nil {
			return ""
		}
		return user
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		first, err := saslprincipal.ParseSCRAMClientFirst(string(msg))
		if err != nil {
			return ""
		}
		return first.User
	}
	return ""
}

// logAuthFailure logs a failed authentication with the remote address, at most
// a few lines a second. Never a credential: msg is the broker's answer, which
// never carries one.
func (cc *clientConn) logAuthFailure(mech, msg string) {
	if !cc.g.authFailLog.Allow() {
		return
	}
	cc.g.logger.Warn("client authentication failed", "remote", cc.nc.RemoteAddr().String(), "mechanism", mech, "reason", msg)
}

// requestClientID is the client id in a request frame's header, "" for none.
func requestClientID(frame []byte) string {
	if len(frame) < 10 {
		return ""
	}
	n := int(int16(uint16(frame[8])<<8 | uint16(frame[9])))
	if n <= 0 || len(frame) < 10+n {
		return ""
	}
	return string(frame[10 : 10+n])
}

// forwardedAs is who a backend connection's requests are sent for: each is
// wrapped in an Envelope carrying the client's principal and address.
type forwardedAs struct {
	principal, clientID, host string
}

// wrap returns req in an Envelope.
func (f *forwardedAs) wrap(req kmsg.Request) kmsg.Request {
	return envelope.Wrap(req, f.clientID, f.principal, f.host)
}

// unwrapResponse returns the response to inner from its Envelope's response;
// nil for a Produce with acks=0.
func unwrapResponse(inner kmsg.Request, resp kmsg.Response) (kmsg.Response, error) {
	r, err := envelope.Unwrap(inner, resp.(*kmsg.EnvelopeResponse))
	if errors.Is(err, envelope.ErrNoResponse) {
		return nil, nil
	}
	if errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return nil, fmt.Errorf("the broker refuses this gateway's Envelopes: its principal must be in the brokers' gateway.principals: %w", err)
	}
	return r, err
}

// forwardedAs is who the connection's backend requests are sent for; nil when
// the gateway does not authenticate clients (they go as the gateway).
func (cc *clientConn) forwardedAs() *forwardedAs {
	if cc.auth == nil {
		return nil
	}
	return &forwardedAs{principal: cc.auth.principal, clientID: cc.auth.clientID, host: cc.auth.host}
}

// wrapTLS returns a new client connection of a SASL_SSL listener as a TLS
// server connection (the handshake runs on the connection's first read, bounded
// by the authentication timeout); it first reloads the keystore if the file
// changed, so a renewed certificate is used without a restart.
func (g *Gateway) wrapTLS(nc net.Conn) net.Conn {
	if g.tls == nil {
		return nc
	}
	if g.tls.Changed() {
		if err := g.tls.Reload(); err != nil {
			g.logger.Error("TLS reload failed; keeping the previous certificate", "err", err)
		}
	}
	return tls.Server(nc, g.tls.ServerConfig("none"))
}

// authDescription says how clients are authenticated, for the ready line.
func (g *Gateway) authDescription() string {
	if g.clientSASL() {
		return g.cfg.ClientSecurityProtocol + " (relayed to the brokers; requests in Envelopes as each client)"
	}
	return "none (loopback or --allow-unauthenticated)"
}
