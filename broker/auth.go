package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/config"
)

// security is a broker's TLS, SASL and principal state shared by its connections.
type security struct {
	tls      *tlsSource // nil without ssl.keystore.location
	rules    []principalRule
	oauth    *oauthValidator // nil without OAUTHBEARER
	reauth   time.Duration
	brokers  map[int32]string // broker.principals
	gateways []string         // gateway.principals
	peerSASL *peerSASL        // this broker's own credentials on a SASL inter-broker listener

	authOK, authFailed *prometheus.CounterVec
	failLog            *rate.Limiter
	failSuppressed     atomic.Int64
}

// peerSASL is how this broker authenticates to its peers' inter-broker listeners.
type peerSASL struct {
	mechanism, user string
	password        []byte
}

func newSecurity(cfg *Config, reg prometheus.Registerer, specs []listenerSpec) (*security, error) {
	s := &security{
		reauth:   time.Duration(cfg.ConnectionsMaxReauthMs) * time.Millisecond,
		brokers:  cfg.BrokerPrincipals,
		gateways: cfg.gatewayPrincipals(),
		failLog:  rate.NewLimiter(rate.Every(time.Second), 5),
	}
	var err error
	if s.rules, err = parsePrincipalRules(cfg.SSLPrincipalMappingRules); err != nil {
		return nil, fmt.Errorf("ssl.principal.mapping.rules: %w", err)
	}
	needTLS, needOAuth := cfg.SSLKeystoreLocation != "", false
	for _, sp := range specs {
		needTLS = needTLS || sp.tls()
		for _, m := range sp.mechanisms {
			needOAuth = needOAuth || (sp.sasl() && m == mechOAuthBearer)
		}
	}
	if needTLS {
		if s.tls, err = newTLSSource(cfg.SSLKeystoreLocation, cfg.SSLTruststoreLocation); err != nil {
			return nil, err
		}
	}
	if needOAuth {
		s.oauth = newOAuthValidator(cfg.OAuthBearer)
	}
	for _, sp := range specs {
		if sp.interBroker && sp.sasl() {
			pass, err := config.Secret{FileKey: "sasl.inter.broker.password.file", File: cfg.SASLInterBrokerPasswordFile}.Read("")
			if err != nil {
				return nil, err
			}
			m := cfg.SASLMechanismInterBrokerProtocol
			if m == "" {
				m = mechSCRAM512
			}
			s.peerSASL = &peerSASL{mechanism: m, user: cfg.SASLInterBrokerUsername, password: []byte(pass)}
		}
	}
	f := promauto.With(reg)
	s.authOK = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_authentications_total",
		Help: "Successful authentications by listener and mechanism (SASL mechanism, or SSL for client certificates), like Kafka's successful-authentication-total.",
	}, []string{"listener", "mechanism"})
	s.authFailed = f.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_broker_authentication_failures_total",
		Help: "Failed authentications by listener and mechanism, like Kafka's failed-authentication-total.",
	}, []string{"listener", "mechanism"})
	return s, nil
}

// initialSCRAM reads the passwords of scram.initial.users into metadata changes.
func initialSCRAM(users []InitialSCRAMUser) ([]metadata.ScramChange, error) {
	var out []metadata.ScramChange
	for i, u := range users {
		pass, err := config.Secret{FileKey: fmt.Sprintf("scram.initial.users[%d].password.file", i),
			EnvKey: fmt.Sprintf("scram.initial.users[%d].password.env", i), File: u.PasswordFile, Env: u.PasswordEnv}.Read("")
		if err != nil {
			return nil, err
		}
		if pass == "" {
			return nil, fmt.Errorf("scram.initial.users[%d]: %q has no password.file or password.env", i, u.Name)
		}
		mech := u.Mechanism
		if mech == "" {
			mech = mechSCRAM512
		}
		iters := u.Iterations
		if iters == 0 {
			iters = defaultSCRAMIterations
		}
		out = append(out, metadata.ScramChange{User: u.Name, Mechanism: mech, Credential: newSCRAMCredential(mech, []byte(pass), iters)})
	}
	return out, nil
}

// handshakeTLS runs the server side of TLS on a new connection of a TLS listener and
// sets the principal from the client certificate, if one was sent.
func (cc *conn) handshakeTLS() error {
	l, sec := cc.listener, cc.b.sec
	tc := tls.Server(cc.nc, sec.tls.ServerConfig(l.clientAuth))
	ctx, cancel := context.WithTimeout(cc.ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		sec.authFailed.WithLabelValues(l.name, "SSL").Inc()
		cc.logAuthFailure("SSL", err)
		return fmt.Errorf("TLS handshake: %w", err)
	}
	cc.b.connMu.Lock() // closeConns reads nc
	cc.nc = tc
	cc.b.connMu.Unlock()
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		name, err := mapPrincipal(sec.rules, certs[0].Subject.String())
		if err != nil {
			sec.authFailed.WithLabelValues(l.name, "SSL").Inc()
			cc.logAuthFailure("SSL", err)
			return err
		}
		if !l.sasl() {
			if err := cc.admitTenantConn("User:" + name); err != nil { // tenant.go
				cc.logAuthFailure("SSL", err)
				return err
			}
			cc.setPrincipal("User:" + name)
			sec.authOK.WithLabelValues(l.name, "SSL").Inc()
		}
	}
	return nil
}

// logAuthFailure logs a failed authentication with the remote address, at most a few
// lines a second; the lines left out are counted in the next one. Never a password.
func (cc *conn) logAuthFailure(mech string, err error) {
	sec := cc.b.sec
	if !sec.failLog.Allow() {
		sec.failSuppressed.Add(1)
		return
	}
	cc.b.logger.Warn("authentication failed", "remote", cc.remote, "listener", cc.listener.name,
		"mechanism", mech, "reason", err, "suppressed_since_last", sec.failSuppressed.Swap(0))
}

func (cc *conn) setPrincipal(p string) {
	cc.principal = p
	cc.authenticated = true
}

// saslState is where a connection of a SASL listener is in its authentication.
type saslState uint8

const (
	saslNeedHandshake    saslState = iota // SaslHandshake expected
	saslNeedAuthenticate                  // SaslAuthenticate expected (handshake v1)
	saslRaw                               // raw SASL tokens expected (handshake v0)
	saslDone                              // authenticated
)

// errBeforeAuth ends a connection that sent a request before authenticating.
var errBeforeAuth = errors.New("request before SASL authentication completed")

// gate decides whether a request may be served on this connection now: before SASL
// authentication completes only ApiVersions, SaslHandshake and SaslAuthenticate are,
// and after a session expires (connections.max.reauth.ms, or the token's expiry) only
// re-authentication is. Anything else closes the connection, as Kafka does.
func (cc *conn) gate(key int16) error {
	if cc.listener == nil || !cc.listener.sasl() {
		return nil
	}
	switch key {
	case 18, 17, 36:
		return nil
	}
	if cc.sasl != saslDone {
		return errBeforeAuth
	}
	if !cc.sessionExpiry.IsZero() && time.Now().After(cc.sessionExpiry) {
		return errors.New("SASL session expired without re-authentication (connections.max.reauth.ms)")
	}
	return nil
}

// saslStep runs one client message through the exchange. On success it records the
// principal and returns the session lifetime to announce (0: unlimited).
func (cc *conn) saslStep(in []byte) (out []byte, done bool, lifetime time.Duration, err error) {
	sec, l := cc.b.sec, cc.listener
	if len(in) > maxSASLMessage {
		err = &errAuthFailed{msg: "SASL message too large"}
	} else {
		out, done, err = cc.saslEx.step(in)
	}
	if err != nil {
		sec.authFailed.WithLabelValues(l.name, cc.saslMech).Inc()
		cc.logAuthFailure(cc.saslMech, err)
		return nil, false, 0, err
	}
	if !done {
		return out, false, 0, nil
	}
	p := cc.saslEx.principal()
	if err := cc.admitTenantConn(p); err != nil { // tenant.go: the plan's connections
		err = &errAuthFailed{msg: err.Error()}
		sec.authFailed.WithLabelValues(l.name, cc.saslMech).Inc()
		cc.logAuthFailure(cc.saslMech, err)
		return nil, false, 0, err
	}
	if cc.sasl == saslDone || cc.reauthenticating {
		if p != cc.principal {
			err = &errAuthFailed{msg: "Cannot change principals during re-authentication from " + cc.principal + " to " + p}
			sec.authFailed.WithLabelValues(l.name, cc.saslMech).Inc()
			cc.logAuthFailure(cc.saslMech, err)
			return nil, false, 0, err
		}
	}
	cc.principal = p
	cc.authenticated = true
	cc.sasl = saslDone
	cc.reauthenticating = false
	cc.lastTokenExpiry = cc.saslEx.expires()
	cc.saslEx = nil
	sec.authOK.WithLabelValues(l.name, cc.saslMech).Inc()

	now := time.Now()
	cc.sessionExpiry = time.Time{}
	if sec.reauth > 0 {
		cc.sessionExpiry = now.Add(sec.reauth)
	}
	if exp := cc.tokenExpiry(); !exp.IsZero() && (cc.sessionExpiry.IsZero() || exp.Before(cc.sessionExpiry)) {
		cc.sessionExpiry = exp
	}
	if !cc.sessionExpiry.IsZero() {
		lifetime = max(cc.sessionExpiry.Sub(now), time.Millisecond)
	}
	return out, true, lifetime, nil
}

// tokenExpiry is when the credential just used expires (OAUTHBEARER), else zero. Only
// with connections.max.reauth.ms set does Kafka end sessions at the token's expiry; so
// do we.
func (cc *conn) tokenExpiry() time.Time {
	if cc.b.sec.reauth <= 0 {
		return time.Time{}
	}
	return cc.lastTokenExpiry
}

// handleRawSASL serves one raw SASL token frame after a SaslHandshake v0: the answer is
// written as a raw length-prefixed frame, and a failure closes the connection.
func (cc *conn) handleRawSASL(frame []byte) error {
	out, _, _, err := cc.saslStep(frame)
	if err != nil {
		return err
	}
	buf := make([]byte, 4, 4+len(out))
	buf[0], buf[1], buf[2], buf[3] = byte(len(out)>>24), byte(len(out)>>16), byte(len(out)>>8), byte(len(out))
	buf = append(buf, out...)
	select {
	case cc.out <- outFrame{buf: buf}:
		return nil
	case <-cc.ctx.Done():
		return cc.ctx.Err()
	}
}

// connAuth is a connection's SASL state.
type connAuth struct {
	authenticated    bool
	sasl             saslState
	saslMech         string
	saslEx           saslExchange
	reauthenticating bool
	sessionExpiry    time.Time // zero: the session never has to be renewed
	lastTokenExpiry  time.Time
	// closeAfterSend, when set by a handler, closes the connection once its
	// response is queued (a failed authentication).
	closeAfterSend error
}

// start runs the TLS handshake of a TLS listener's connection; it runs on the
// connection's own goroutine so that a slow client never holds up accept.
func (cc *conn) start() error {
	if cc.listener == nil || !cc.listener.tls() {
		return nil
	}
	return cc.handshakeTLS()
}

// ReloadTLS reads the keystore and truststore files again (the broker calls it on
// SIGHUP, and by itself when they change on disk); new connections use them, open ones
// keep theirs. On error the previous certificates stay in use.
func (b *Broker) ReloadTLS() error {
	if b.sec.tls == nil {
		return nil
	}
	if err := b.sec.tls.Reload(); err != nil {
		b.logger.Error("TLS reload failed; keeping the previous certificates", "err", err)
		return err
	}
	keystore, truststore := b.sec.tls.Files()
	b.logger.Info("TLS certificates reloaded", "keystore", keystore, "truststore", truststore)
	return nil
}

// tlsCheckInterval is how often the keystore and truststore files are checked for changes.
const tlsCheckInterval = 10 * time.Second

// watchTLS reloads the certificates when their files change, until ctx is done.
func (b *Broker) watchTLS(ctx context.Context) {
	if b.sec.tls == nil {
		return
	}
	t := time.NewTicker(tlsCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if b.sec.tls.Changed() {
				b.ReloadTLS()
			}
		}
	}
}
