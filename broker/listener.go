package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sluicemq/sluice/broker/metadata"
)

// Security protocols of a listener, Kafka's listener.security.protocol.map values.
const (
	protoPlaintext     = "PLAINTEXT"
	protoSSL           = "SSL"
	protoSASLPlaintext = "SASL_PLAINTEXT"
	protoSASLSSL       = "SASL_SSL"
)

// implicitBrokerListener is the inter-broker listener a broker configured only with the
// `listen` shorthand adds: PLAINTEXT on a loopback port of its own, so broker-only APIs
// are never served on the client listener.
const implicitBrokerListener = "BROKER"

// Security holds the listener, TLS and SASL settings of a broker, with Kafka's names.
// It is inlined into Config (broker.yaml); see docs/security.md.
type Security struct {
	// Listeners lists the Kafka listeners, Kafka's `listeners`: "NAME://host:port,..."
	// (an empty host binds every interface). Empty: one PLAINTEXT listener on `listen`
	// and an inter-broker listener BROKER on 127.0.0.1 with a port of its own.
	Listeners string `yaml:"listeners"`
	// AdvertisedListeners are the addresses clients are told, Kafka's
	// `advertised.listeners`, by listener name. Default: each listener's bound address.
	AdvertisedListeners string `yaml:"advertised.listeners"`
	// ListenerSecurityProtocolMap maps listener names to security protocols, Kafka's
	// `listener.security.protocol.map`: "CLIENT:SASL_SSL,BROKER:SSL". Names that are
	// themselves protocols (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) map to themselves.
	ListenerSecurityProtocolMap string `yaml:"listener.security.protocol.map"`
	// InterBrokerListenerName is the listener other brokers connect to for replica
	// fetches and controller requests, Kafka's `inter.broker.listener.name`. Empty: a
	// PLAINTEXT listener BROKER on 127.0.0.1 with a port of its own, which only serves
	// brokers on the same machine; a cluster across machines must name one.
	InterBrokerListenerName string `yaml:"inter.broker.listener.name"`
	// ControllerListenerNames are further listeners that serve the broker-to-controller
	// APIs, Kafka's `controller.listener.names`. A name that is not in `listeners` names
	// the Raft transport (controller.listen): with protocol SSL it uses mTLS.
	ControllerListenerNames string `yaml:"controller.listener.names"`

	// SSLKeystoreLocation is a PEM file holding this broker's private key and certificate
	// chain, Kafka's `ssl.keystore.location` with `ssl.keystore.type: PEM`. Reloaded on
	// SIGHUP and when the file changes.
	SSLKeystoreLocation string `yaml:"ssl.keystore.location"`
	// SSLKeystoreType must be PEM (the default).
	SSLKeystoreType string `yaml:"ssl.keystore.type"`
	// SSLTruststoreLocation is a PEM file of CA certificates that client and broker
	// certificates are checked against, Kafka's `ssl.truststore.location`.
	SSLTruststoreLocation string `yaml:"ssl.truststore.location"`
	// SSLTruststoreType must be PEM (the default).
	SSLTruststoreType string `yaml:"ssl.truststore.type"`
	// SSLClientAuth is none, requested or required, Kafka's `ssl.client.auth`. Default none.
	SSLClientAuth string `yaml:"ssl.client.auth"`
	// SSLPrincipalMappingRules maps a client certificate's subject to a principal name,
	// Kafka's `ssl.principal.mapping.rules`. Default DEFAULT (the whole subject).
	SSLPrincipalMappingRules string `yaml:"ssl.principal.mapping.rules"`

	// SASLEnabledMechanisms are the SASL mechanisms SASL listeners accept, Kafka's
	// `sasl.enabled.mechanisms`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER.
	// Default SCRAM-SHA-256,SCRAM-SHA-512.
	SASLEnabledMechanisms string `yaml:"sasl.enabled.mechanisms"`
	// SASLMechanismInterBrokerProtocol is the mechanism this broker uses on a SASL
	// inter-broker listener, Kafka's `sasl.mechanism.inter.broker.protocol`. Default
	// SCRAM-SHA-512.
	SASLMechanismInterBrokerProtocol string `yaml:"sasl.mechanism.inter.broker.protocol"`
	// SASLInterBrokerUsername and SASLInterBrokerPasswordFile are this broker's own SASL
	// credentials on a SASL inter-broker listener (Kafka takes them from JAAS).
	SASLInterBrokerUsername     string `yaml:"sasl.inter.broker.username"`
	SASLInterBrokerPasswordFile string `yaml:"sasl.inter.broker.password.file"`

	// OAuthBearer configures OAUTHBEARER token validation.
	OAuthBearer OAuthBearerConfig `yaml:",inline"`

	// ConnectionsMaxReauthMs is the longest a SASL session lasts before the client must
	// re-authenticate (KIP-368), Kafka's `connections.max.reauth.ms`. Default 0: never.
	ConnectionsMaxReauthMs int64 `yaml:"connections.max.reauth.ms"`

	// BrokerPrincipals binds each broker id to the principal it authenticates as on the
	// inter-broker listener ("1": "User:broker1", or the mapped certificate subject).
	// Broker-only APIs are served only to these principals, and a broker may register
	// and heartbeat only under its own id. Required when the inter-broker listener
	// authenticates. The entry -1 names the principal of brokers started without a
	// node.id (process.roles=broker): it may ask the controller for node ids, and
	// each allocated id is then bound to it.
	BrokerPrincipals map[int32]string `yaml:"broker.principals"`

	// GatewayPrincipals are the principals `sluice gateway` instances authenticate as
	// on client listeners, separated by semicolons like super.users ("User:gateway").
	// Their Envelopes carry the requests of the clients the gateway authenticated,
	// which are then served, authorized, quota'd and metered as those clients. Default
	// empty: nobody; User:ANONYMOUS is refused.
	GatewayPrincipals string `yaml:"gateway.principals"`

	// ControllerListener, when set, is a bound listener the Raft transport uses instead
	// of binding controller.listen (tests bind port 0 this way).
	ControllerListener net.Listener `yaml:"-"`

	// InitialSCRAMUsers are written to a new cluster's metadata log by its first
	// controller, like `kafka-storage format --add-scram`.
	InitialSCRAMUsers []InitialSCRAMUser `yaml:"scram.initial.users"`

	// ListenerOverrides are per-listener settings by lower-case listener name, like
	// Kafka's `listener.name.<name>.<setting>`.
	ListenerOverrides map[string]ListenerOverride `yaml:"listener.name"`
}

// ListenerOverride overrides settings for one listener.
type ListenerOverride struct {
	// SSLClientAuth overrides ssl.client.auth.
	SSLClientAuth string `yaml:"ssl.client.auth"`
	// SASLEnabledMechanisms overrides sasl.enabled.mechanisms.
	SASLEnabledMechanisms string `yaml:"sasl.enabled.mechanisms"`
}

// InitialSCRAMUser is a SCRAM user created at first start. The password comes from a
// file or an environment variable, never from the YAML file itself.
type InitialSCRAMUser struct {
	Name string `yaml:"name"`
	// Mechanism is SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-512).
	Mechanism    string `yaml:"mechanism"`
	PasswordFile string `yaml:"password.file"`
	PasswordEnv  string `yaml:"password.env"`
	// Iterations default to 8192.
	Iterations int `yaml:"iterations"`
}

// listenerSpec is one parsed listener.
type listenerSpec struct {
	name       string
	protocol   string
	bind       string // host:port to bind
	advertised string // host:port to advertise; empty: the bound address
	clientAuth string // none, requested, required (TLS protocols)
	mechanisms []string
	// interBroker and controller: broker-only APIs are served here.
	interBroker, controller bool
	implicit                bool // the BROKER listener of the `listen` shorthand
}

func (s *listenerSpec) tls() bool { return s.protocol == protoSSL || s.protocol == protoSASLSSL }
func (s *listenerSpec) sasl() bool {
	return s.protocol == protoSASLPlaintext || s.protocol == protoSASLSSL
}

// brokerOnly reports whether broker-to-broker APIs are served on this listener.
func (s *listenerSpec) brokerOnly() bool { return s.interBroker || s.controller }

// authenticates reports whether every connection of the listener proves who it is.
func (s *listenerSpec) authenticates() bool {
	return s.sasl() || (s.protocol == protoSSL && s.clientAuth == "required")
}

// loopbackHost reports whether host only accepts connections from this machine.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// describe says what a listener does, for the start-up log line.
func (s *listenerSpec) describe() string {
	var parts []string
	parts = append(parts, s.protocol)
	switch {
	case s.sasl():
		parts = append(parts, "SASL "+strings.Join(s.mechanisms, "/"))
	case s.protocol == protoSSL && s.clientAuth == "required":
		parts = append(parts, "mTLS principal from certificate")
	default:
		parts = append(parts, "unauthenticated (User:ANONYMOUS), loopback only")
	}
	if s.tls() && s.sasl() && s.clientAuth != "none" {
		parts = append(parts, "client certificates "+s.clientAuth)
	}
	if s.interBroker {
		parts = append(parts, "inter-broker")
	}
	if s.controller {
		parts = append(parts, "controller")
	}
	return strings.Join(parts, ", ")
}

var knownMechanisms = []string{mechPlain, mechSCRAM256, mechSCRAM512, mechOAuthBearer}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parseListenerURLs parses "NAME://host:port,..." into names and addresses.
func parseListenerURLs(field, s string) ([]string, []string, error) {
	var names, addrs []string
	for _, item := range splitList(s) {
		name, addr, ok := strings.Cut(item, "://")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("%s: %q is not NAME://host:port", field, item)
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return nil, nil, fmt.Errorf("%s: %q is not NAME://host:port", field, item)
		}
		name = strings.ToUpper(name)
		if slices.Contains(names, name) {
			return nil, nil, fmt.Errorf("%s: listener %s named twice", field, name)
		}
		names, addrs = append(names, name), append(addrs, addr)
	}
	return names, addrs, nil
}

// listenerSpecs parses and checks the listener settings. Every listener that is not
// bound to loopback must authenticate its connections.
func (c *Config) listenerSpecs() ([]listenerSpec, error) {
	sec := &c.Security
	if sec.SSLKeystoreType != "" && !strings.EqualFold(sec.SSLKeystoreType, "PEM") {
		return nil, fmt.Errorf("ssl.keystore.type: %q: only PEM is supported", sec.SSLKeystoreType)
	}
	if sec.SSLTruststoreType != "" && !strings.EqualFold(sec.SSLTruststoreType, "PEM") {
		return nil, fmt.Errorf("ssl.truststore.type: %q: only PEM is supported", sec.SSLTruststoreType)
	}
	if err := validClientAuth("ssl.client.auth", sec.SSLClientAuth); err != nil {
		return nil, err
	}
	if _, err := parsePrincipalRules(sec.SSLPrincipalMappingRules); err != nil {
		return nil, fmt.Errorf("ssl.principal.mapping.rules: %w", err)
	}
	mechs, err := parseMechanisms("sasl.enabled.mechanisms", sec.SASLEnabledMechanisms)
	if err != nil {
		return nil, err
	}
	if sec.ConnectionsMaxReauthMs < 0 {
		return nil, fmt.Errorf("connections.max.reauth.ms: value out of range")
	}

	var specs []listenerSpec
	if sec.Listeners == "" {
		if sec.AdvertisedListeners != "" || sec.InterBrokerListenerName != "" {
			return nil, fmt.Errorf("advertised.listeners, inter.broker.listener.name: need listeners")
		}
		specs = []listenerSpec{
			{name: protoPlaintext, protocol: protoPlaintext, bind: c.Listen, advertised: c.AdvertisedListen},
			{name: implicitBrokerListener, protocol: protoPlaintext, bind: "127.0.0.1:0", interBroker: true, implicit: true},
		}
	} else {
		names, addrs, err := parseListenerURLs("listeners", sec.Listeners)
		if err != nil {
			return nil, err
		}
		protoMap := map[string]string{}
		for _, item := range splitList(sec.ListenerSecurityProtocolMap) {
			name, proto, ok := strings.Cut(item, ":")
			proto = strings.ToUpper(strings.TrimSpace(proto))
			if !ok || !slices.Contains([]string{protoPlaintext, protoSSL, protoSASLPlaintext, protoSASLSSL}, proto) {
				return nil, fmt.Errorf("listener.security.protocol.map: %q is not NAME:PROTOCOL with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", item)
			}
			protoMap[strings.ToUpper(strings.TrimSpace(name))] = proto
		}
		advNames, advAddrs, err := parseListenerURLs("advertised.listeners", sec.AdvertisedListeners)
		if err != nil {
			return nil, err
		}
		for _, n := range advNames {
			if !slices.Contains(names, n) {
				return nil, fmt.Errorf("advertised.listeners: %s is not one of the listeners", n)
			}
		}
		ctlNames := splitList(strings.ToUpper(sec.ControllerListenerNames))
		ib := strings.ToUpper(sec.InterBrokerListenerName)
		if ib != "" && !slices.Contains(names, ib) {
			return nil, fmt.Errorf("inter.broker.listener.name: %s is not one of the listeners", ib)
		}
		for i, name := range names {
			proto, ok := protoMap[name]
			if !ok {
				switch name {
				case protoPlaintext, protoSSL, protoSASLPlaintext, protoSASLSSL:
					proto = name
				default:
					return nil, fmt.Errorf("listener.security.protocol.map: no security protocol for listener %s", name)
				}
			}
			s := listenerSpec{name: name, protocol: proto, bind: addrs[i], interBroker: name == ib, controller: slices.Contains(ctlNames, name)}
			if j := slices.Index(advNames, name); j >= 0 {
				s.advertised = advAddrs[j]
			}
			specs = append(specs, s)
		}
		if ib == "" {
			// As with the `listen` shorthand: brokers of one machine talk on a
			// loopback listener of their own, never on a client listener.
			specs = append(specs, listenerSpec{name: implicitBrokerListener, protocol: protoPlaintext, bind: "127.0.0.1:0", interBroker: true, implicit: true})
		}
	}
	for i := range specs {
		s := &specs[i]
		s.clientAuth = strings.ToLower(sec.SSLClientAuth)
		s.mechanisms = mechs
		if o, ok := sec.ListenerOverrides[strings.ToLower(s.name)]; ok {
			if o.SSLClientAuth != "" {
				field := "listener.name." + strings.ToLower(s.name) + ".ssl.client.auth"
				if err := validClientAuth(field, o.SSLClientAuth); err != nil {
					return nil, err
				}
				s.clientAuth = strings.ToLower(o.SSLClientAuth)
			}
			if o.SASLEnabledMechanisms != "" {
				field := "listener.name." + strings.ToLower(s.name) + ".sasl.enabled.mechanisms"
				if s.mechanisms, err = parseMechanisms(field, o.SASLEnabledMechanisms); err != nil {
					return nil, err
				}
			}
		}
		if s.clientAuth == "" {
			s.clientAuth = "none"
		}
		if s.tls() && sec.SSLKeystoreLocation == "" {
			return nil, fmt.Errorf("ssl.keystore.location: required by %s listener %s", s.protocol, s.name)
		}
		if s.tls() && s.clientAuth != "none" && sec.SSLTruststoreLocation == "" {
			return nil, fmt.Errorf("ssl.truststore.location: required by ssl.client.auth=%s on listener %s", s.clientAuth, s.name)
		}
		host, _, _ := net.SplitHostPort(s.bind)
		if slices.Contains(s.mechanisms, mechOAuthBearer) && s.sasl() {
			if err := sec.OAuthBearer.validate(); err != nil {
				return nil, err
			}
			if sec.OAuthBearer.UnsecuredTokens && !loopbackHost(host) {
				return nil, fmt.Errorf("sasl.oauthbearer.unsecured.tokens.enable: unsigned tokens are for tests only and need loopback-bound listeners; listener %s binds %q", s.name, s.bind)
			}
		}
		if !s.authenticates() && !loopbackHost(host) {
			return nil, fmt.Errorf("listeners: %s listener %s on %q does not authenticate its clients; bind it to loopback, use SASL_SSL/SASL_PLAINTEXT, or SSL with ssl.client.auth=required",
				s.protocol, s.name, s.bind)
		}
	}
	for _, ctl := range splitList(strings.ToUpper(sec.ControllerListenerNames)) {
		found := false
		for _, s := range specs {
			found = found || s.name == ctl
		}
		if !found && protoFor(sec, ctl) != protoSSL && protoFor(sec, ctl) != protoPlaintext {
			return nil, fmt.Errorf("controller.listener.names: the Raft transport %s must be SSL or PLAINTEXT", ctl)
		}
	}
	if c.raftTLS() && sec.SSLKeystoreLocation == "" || c.raftTLS() && sec.SSLTruststoreLocation == "" {
		return nil, fmt.Errorf("ssl.keystore.location, ssl.truststore.location: required by the SSL Raft transport")
	}
	if (c.ControllerQuorumVoters != "" || c.ControllerQuorumBootstrapServers != "") && !c.raftTLS() && sec.ControllerListener == nil {
		bind := c.ControllerListen
		if bind == "" {
			if voters, err := metadata.ParseVoters(c.ControllerQuorumVoters); err == nil {
				for _, v := range voters {
					if v.ID == c.NodeID {
						bind = v.Addr
					}
				}
			}
		}
		if host, _, err := net.SplitHostPort(bind); err == nil && !loopbackHost(host) {
			return nil, fmt.Errorf("controller.listener.names: the Raft transport on %q is not loopback-bound and not SSL; name a controller listener mapped to SSL (mTLS between controllers)", bind)
		}
	}
	var ib *listenerSpec
	for i := range specs {
		if specs[i].interBroker {
			ib = &specs[i]
		}
	}
	if ib.authenticates() && len(sec.BrokerPrincipals) == 0 {
		return nil, fmt.Errorf("broker.principals: required when the inter-broker listener %s authenticates", ib.name)
	}
	if ib.sasl() {
		if sec.SASLInterBrokerUsername == "" || sec.SASLInterBrokerPasswordFile == "" {
			return nil, fmt.Errorf("sasl.inter.broker.username, sasl.inter.broker.password.file: required by the %s inter-broker listener %s", ib.protocol, ib.name)
		}
		m := sec.SASLMechanismInterBrokerProtocol
		if m == "" {
			m = mechSCRAM512
		}
		if m != mechPlain && m != mechSCRAM256 && m != mechSCRAM512 {
			return nil, fmt.Errorf("sasl.mechanism.inter.broker.protocol: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m)
		}
		if !slices.Contains(ib.mechanisms, m) {
			return nil, fmt.Errorf("sasl.mechanism.inter.broker.protocol: %s is not enabled on listener %s", m, ib.name)
		}
	}
	for id, p := range sec.BrokerPrincipals {
		if !strings.Contains(p, ":") {
			return nil, fmt.Errorf("broker.principals: %d: %q is not TYPE:name (e.g. User:broker1)", id, p)
		}
	}
	if err := sec.validateGatewayPrincipals(); err != nil {
		return nil, err
	}
	for i, u := range sec.InitialSCRAMUsers {
		field := fmt.Sprintf("scram.initial.users[%d]", i)
		if u.Name == "" {
			return nil, fmt.Errorf("%s.name: required", field)
		}
		if u.Mechanism != "" && u.Mechanism != mechSCRAM256 && u.Mechanism != mechSCRAM512 {
			return nil, fmt.Errorf("%s.mechanism: %q is not SCRAM-SHA-256 or SCRAM-SHA-512", field, u.Mechanism)
		}
		if (u.PasswordFile == "") == (u.PasswordEnv == "") {
			return nil, fmt.Errorf("%s: exactly one of password.file and password.env", field)
		}
		if u.Iterations != 0 && (u.Iterations < minSCRAMIterations || u.Iterations > maxSCRAMIterations) {
			return nil, fmt.Errorf("%s.iterations: %d outside [%d, %d]", field, u.Iterations, minSCRAMIterations, maxSCRAMIterations)
		}
	}
	return specs, nil
}

// protoFor is the security protocol of a listener name from the map, or the name itself.
func protoFor(sec *Security, name string) string {
	for _, item := range splitList(sec.ListenerSecurityProtocolMap) {
		n, proto, _ := strings.Cut(item, ":")
		if strings.EqualFold(strings.TrimSpace(n), name) {
			return strings.ToUpper(strings.TrimSpace(proto))
		}
	}
	return name
}

func validClientAuth(field, v string) error {
	switch strings.ToLower(v) {
	case "", "none", "requested", "required":
		return nil
	}
	return fmt.Errorf("%s: %q is not one of none, requested, required", field, v)
}

func parseMechanisms(field, s string) ([]string, error) {
	if s == "" {
		return []string{mechSCRAM256, mechSCRAM512}, nil
	}
	var out []string
	for _, m := range splitList(strings.ToUpper(s)) {
		if !slices.Contains(knownMechanisms, m) {
			return nil, fmt.Errorf("%s: %q is not one of %s", field, m, strings.Join(knownMechanisms, ", "))
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", field)
	}
	return out, nil
}

// listener is a bound Kafka listener.
type listener struct {
	listenerSpec
	ln net.Listener
}

// advertisedHostPort is the address clients of this listener are told.
func (l *listener) advertisedHostPort() (string, int32) {
	addr := l.advertised
	if addr == "" {
		addr = l.ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return host, int32(p)
}

// bindListeners binds every listener, or none.
func (b *Broker) bindListeners(specs []listenerSpec) error {
	for _, s := range specs {
		ln, err := net.Listen("tcp", s.bind)
		if err != nil {
			b.closeListeners()
			return fmt.Errorf("listeners: %s %s: %w", s.name, s.bind, err)
		}
		b.listeners = append(b.listeners, &listener{listenerSpec: s, ln: ln})
	}
	return nil
}

func (b *Broker) closeListeners() {
	for _, l := range b.listeners {
		l.ln.Close()
	}
}

// interBrokerListener is the listener peers connect to.
func (b *Broker) interBrokerListener() *listener {
	for _, l := range b.listeners {
		if l.interBroker {
			return l
		}
	}
	return b.listeners[0]
}

// ListenerAddr is the bound address of the named listener, or "".
func (b *Broker) ListenerAddr(name string) string {
	for _, l := range b.listeners {
		if l.name == strings.ToUpper(name) {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// endpoints are this broker's advertised listeners, registered in the metadata log.
func (b *Broker) endpoints() []metadata.Endpoint {
	var out []metadata.Endpoint
	for _, l := range b.listeners {
		host, port := l.advertisedHostPort()
		out = append(out, metadata.Endpoint{Name: l.name, Host: host, Port: port, SecurityProtocol: l.protocol})
	}
	return out
}

// acceptAll accepts connections on every listener but the first (which Run's own loop
// serves) until ctx is done, once the broker is ready (see waitReady).
func (b *Broker) acceptOthers(ctx context.Context) {
	for _, l := range b.listeners[1:] {
		b.connWG.Add(1)
		go func() {
			defer b.connWG.Done()
			for b.waitReady(ctx) {
				nc, err := l.ln.Accept()
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
						b.logger.Error("accept failed; listener stopped", "listener", l.name, "err", err)
					}
					return
				}
				if b.connLimit.admit(ctx, nc, l.brokerOnly()) { // connlimit.go
					b.serve(ctx, nc, l)
				}
			}
		}()
	}
}

// logListeners says at start what each listener does.
func (b *Broker) logListeners() {
	for _, l := range b.listeners {
		host, port := l.advertisedHostPort()
		b.logger.Info("listener", "name", l.name, "bound", l.ln.Addr().String(),
			"advertised", net.JoinHostPort(host, strconv.Itoa(int(port))), "security", l.describe())
	}
}

// closerFunc makes a func an io.Closer.
type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

var securityProtocols = []string{protoPlaintext, protoSSL, protoSASLPlaintext, protoSASLSSL}

// securityProtocolID is Kafka's id of a security protocol (BrokerRegistration).
func securityProtocolID(p string) int16 { return int16(slices.Index(securityProtocols, p)) }

// securityProtocolName is the name of Kafka's security protocol id.
func securityProtocolName(id int16) string {
	if id < 0 || int(id) >= len(securityProtocols) {
		return ""
	}
	return securityProtocols[id]
}

// raftTLS reports whether the Raft transport uses mTLS: controller.listener.names names a
// listener that is not in `listeners` (the Raft transport itself) and maps it to SSL.
func (c *Config) raftTLS() bool {
	for _, ctl := range splitList(strings.ToUpper(c.ControllerListenerNames)) {
		inListeners := false
		if names, _, err := parseListenerURLs("listeners", c.Listeners); err == nil {
			inListeners = slices.Contains(names, ctl)
		}
		if !inListeners && protoFor(&c.Security, ctl) == protoSSL {
			return true
		}
	}
	return false
}

// raftTLSConfigs are the server and dial configurations of an mTLS Raft transport: both
// sides present their certificate and only principals of broker.principals are accepted.
func (b *Broker) raftTLSConfigs() (server, dial *tls.Config) {
	if !b.cfg.raftTLS() {
		return nil, nil
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("raft: no certificate")
		}
		name, err := mapPrincipal(b.sec.rules, cs.PeerCertificates[0].Subject.String())
		if err != nil {
			return err
		}
		for _, p := range b.cfg.BrokerPrincipals {
			if p == "User:"+name {
				return nil
			}
		}
		return fmt.Errorf("raft: User:%s is not in broker.principals", name)
	}
	server = b.sec.tls.ServerConfig("required")
	inner := server.GetConfigForClient
	server.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := inner(h)
		if err == nil {
			c.VerifyConnection = verify
		}
		return c, err
	}
	dial = b.sec.tls.ClientConfig()
	check := dial.VerifyConnection
	dial.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := check(cs); err != nil {
			return err
		}
		return verify(cs)
	}
	return server, dial
}
