// Package gateway is `sluice gateway`: one stable Kafka address in front of a
// Sluice cluster. It shows clients the cluster's brokers, leaders and
// coordinators, every broker advertised at the gateway's one address, which
// several instances can share behind a DNS name or a TCP load balancer (clients
// that cannot use several brokers at one address are shown the gateway as the
// only broker: view.go). Each request is forwarded to the broker that must serve it
// (partition leaders, group and transaction coordinators, any broker for admin
// requests), split and merged when it spans brokers, so that brokers joining,
// leaving, failing or moving partitions are invisible to clients.
//
// The gateway keeps no state that ties a client to an instance: fetch sessions
// are answered with session id 0 (full fetches), and all cluster knowledge is a
// cache of the cluster's metadata.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/internal/tlsfiles"
	"github.com/sluicemq/sluice/internal/weblisten"
)

// Config is a gateway's configuration.
type Config struct {
	// Listen is the client listener, host:port. Required.
	Listen string
	// Advertised is the host:port clients are told to connect to: the DNS name or
	// load balancer address shared by every instance; default the bound Listen
	// address.
	Advertised string
	// NodeID is the broker id the gateway presents itself as to clients that
	// are shown the cluster as one broker (librdkafka before 2.10: view.go), the
	// same on every instance behind one name; default 0.
	NodeID int32
	// OneBrokerView shows every client the gateway as the cluster's one broker
	// (NodeID) instead of the cluster's brokers, each at Advertised (view.go).
	// Default false: clients are shown the cluster's brokers, and only clients
	// on librdkafka before 2.10, which cannot tell brokers at one address
	// apart, get the one broker (`sluice gateway --per-broker-view=false` sets
	// it).
	OneBrokerView bool
	// Bootstrap lists brokers (host:port) to learn the cluster from. Required.
	Bootstrap []string
	// Backend is how the gateway authenticates to the brokers.
	Backend clientsec.Config
	// AllowUnauthenticated lets the client listener bind a non-loopback address
	// although the gateway does not authenticate its clients. Default false: a
	// non-loopback Listen is refused.
	AllowUnauthenticated bool
	// MaxRequestBytes is the largest request frame accepted from a client, like
	// the broker's socket.request.max.bytes; default 100 MiB.
	MaxRequestBytes int32
	// MaxConnections bounds the client connections, like max.connections;
	// default 1000.
	MaxConnections int
	// MaxInflightPerConnection bounds the requests of one client connection that
	// are being forwarded at a time; default 64.
	MaxInflightPerConnection int
	// QueuedMaxRequestBytes bounds the memory of requests being forwarded, like
	// queued.max.request.bytes; default 256 MiB.
	QueuedMaxRequestBytes int64
	// MetadataMaxAge is how often the cluster's metadata is refreshed when nothing
	// asks for it sooner, like metadata.max.age.ms; default 10s.
	MetadataMaxAge time.Duration
	// MetricsListen serves /metrics; "" for none.
	MetricsListen string
	// WebConfigFile protects MetricsListen (exporter-toolkit web config).
	WebConfigFile string

	// ClientSecurityProtocol is the client listener's security protocol:
	// PLAINTEXT (default: clients are not authenticated, requests go to the
	// brokers as the gateway), SASL_PLAINTEXT (clients authenticate with SASL,
	// relayed to the brokers, and their requests reach the brokers in Envelopes
	// as their own principals; auth.go) or SASL_SSL (the same over TLS).
	ClientSecurityProtocol string
	// MaxUnauthenticatedConnections bounds the client connections that have not
	// authenticated yet, with SASL_PLAINTEXT; default 100.
	MaxUnauthenticatedConnections int
	// AuthenticationTimeout is how long a client connection may take to
	// authenticate (TLS handshake included) before it is closed, with SASL;
	// default 30s.
	AuthenticationTimeout time.Duration
	// SSLKeystoreLocation is the client listener's private key and certificate
	// chain in one PEM file, like the broker's ssl.keystore.location; required
	// with ClientSecurityProtocol SASL_SSL, reloaded when the file changes.
	SSLKeystoreLocation string
}

func (c *Config) applyDefaults() {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 1000
	}
	if c.MaxInflightPerConnection == 0 {
		c.MaxInflightPerConnection = 64
	}
	if c.QueuedMaxRequestBytes == 0 {
		c.QueuedMaxRequestBytes = 256 << 20
	}
	if c.MetadataMaxAge == 0 {
		c.MetadataMaxAge = 10 * time.Second
	}
	if c.ClientSecurityProtocol == "" {
		c.ClientSecurityProtocol = protoPlaintext
	}
	if c.MaxUnauthenticatedConnections == 0 {
		c.MaxUnauthenticatedConnections = 100
	}
	if c.AuthenticationTimeout == 0 {
		c.AuthenticationTimeout = 30 * time.Second
	}
}

// validate names the first bad setting, by its `sluice gateway` flag.
func (c *Config) validate() error {
	if c.Listen == "" {
		return errors.New("--listen: required")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", c.Listen, err)
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if !c.AllowUnauthenticated && c.ClientSecurityProtocol == protoPlaintext {
		if err := weblisten.CheckAddress(c.Listen, "listen"); err != nil {
			return fmt.Errorf("--listen %q: the gateway does not authenticate clients, so it binds loopback only (or give --allow-unauthenticated behind a network that does)", c.Listen)
		}
	}
	if c.Advertised != "" {
		if _, p, err := net.SplitHostPort(c.Advertised); err != nil {
			return fmt.Errorf("--advertised %q: %w", c.Advertised, err)
		} else if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("--advertised %q: bad port", c.Advertised)
		}
	}
	if len(c.Bootstrap) == 0 {
		return errors.New("--bootstrap: at least one broker is required")
	}
	for _, b := range c.Bootstrap {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("--bootstrap %q: %w", b, err)
		}
	}
	if c.NodeID < 0 {
		return fmt.Errorf("--node-id %d: must not be negative", c.NodeID)
	}
	if c.MaxRequestBytes < 1024 {
		return fmt.Errorf("--socket-request-max-bytes %d: at least 1024", c.MaxRequestBytes)
	}
	if c.MaxConnections < 1 {
		return fmt.Errorf("--max-connections %d: at least 1", c.MaxConnections)
	}
	if c.MaxInflightPerConnection < 1 {
		return fmt.Errorf("max.inflight.per.connection %d: at least 1", c.MaxInflightPerConnection)
	}
	if c.QueuedMaxRequestBytes < int64(c.MaxRequestBytes) {
		return fmt.Errorf("queued.max.request.bytes %d: at least socket.request.max.bytes", c.QueuedMaxRequestBytes)
	}
	if c.MetadataMaxAge < 100*time.Millisecond {
		return fmt.Errorf("--metadata-max-age %v: at least 100ms", c.MetadataMaxAge)
	}
	return c.Backend.Validate()
}

// Gateway is a running gateway: bound listeners, the cluster view, and the
// client connections.
type Gateway struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	reg     *prometheus.Registry
	cluster *cluster
	dialer  *dialer
	ln      net.Listener
	web     *weblisten.Listener
	host    string
	port    int32
	memory  *semaphore.Weighted
	marks   marks // partitions' last fetched offsets

	// Client authentication (auth.go); unauthenticated holds a slot per
	// connection that has not authenticated yet.
	auth            *authMetrics
	unauthenticated chan struct{}
	authFailLog     *rate.Limiter
	tls             *tlsfiles.Source // SASL_SSL's certificate

	mu    sync.Mutex
	conns map[*clientConn]struct{}
	wg    sync.WaitGroup
}

// New validates cfg and binds the listeners. The metrics are registered on reg
// and served from it on MetricsListen; nil gives the gateway a registry of its
// own.
func New(cfg Config, logger *slog.Logger, reg *prometheus.Registry) (*Gateway, error) {
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tc, mech, err := cfg.Backend.Parts()
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, logger: logger, conns: map[*clientConn]struct{}{},
		memory: semaphore.NewWeighted(cfg.QueuedMaxRequestBytes)}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	g.reg = reg
	g.metrics = newMetrics(reg)
	g.metrics.init()
	if err := g.initAuth(reg, mech != nil || (tc != nil && len(tc.Certificates) > 0)); err != nil {
		return nil, err
	}
	g.dialer = &dialer{tls: tc, mech: mech, clientID: gatewayClientID, timeout: 10 * time.Second, maxFrame: 1 << 30}
	g.cluster = newCluster(cfg.Bootstrap, g.dialer, g.metrics)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	g.ln = ln
	adv := cfg.Advertised
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(adv)
	p, _ := strconv.Atoi(port)
	g.host, g.port = host, int32(p)
	if cfg.MetricsListen != "" {
		w, err := weblisten.Listen(weblisten.Options{Name: "gateway metrics", Address: cfg.MetricsListen,
			WebConfigFile: cfg.WebConfigFile}, logger)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
		g.web = w
	}
	return g, nil
}

// Addr is the bound client listener's address.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// MetricsAddr is the bound metrics listener's address, "" without one.
func (g *Gateway) MetricsAddr() string {
	if g.web == nil {
		return ""
	}
	return g.web.Addr()
}

// Run serves until ctx ends. It first learns the cluster (retrying until a
// bootstrap broker answers), then accepts clients.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var srv *http.Server
	if g.web != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.web.Serve(srv, nil); err != nil {
				g.logger.Error("metrics listener", "err", err)
			}
		}()
	}
	defer func() {
		if srv != nil {
			_ = srv.Close()
		}
		g.ln.Close()
		g.closeConns()
		g.wg.Wait()
		g.cluster.close()
	}()

	for {
		err := g.cluster.loadVersions(ctx)
		if err == nil {
			err = g.cluster.refresh(ctx, 0)
		}
		if err == nil {
			break
		}
		g.logger.Warn("waiting for the cluster", "bootstrap", g.cfg.Bootstrap, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	g.logger.Info("gateway ready", "listen", g.Addr(), "advertised", net.JoinHostPort(g.host, strconv.Itoa(int(g.port))),
		"node_id", g.cfg.NodeID, "auth", g.authDescription(), "metrics", g.MetricsAddr())

	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.refreshLoop(ctx)
	}()
	go func() {
		<-ctx.Done()
		g.ln.Close()
	}()
	for {
		nc, err := g.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		g.mu.Lock()
		if len(g.conns) >= g.cfg.MaxConnections {
			g.mu.Unlock()
			g.metrics.rejected.Inc()
			nc.Close()
			continue
		}
		cc := newClientConn(ctx, g, g.wrapTLS(nc)) // wrapTLS: auth.go
		if !cc.admitClient() {                     // auth.go
			g.mu.Unlock()
			nc.Close()
			continue
		}
		g.conns[cc] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		g.metrics.connections.Inc()
		go func() {
			defer g.wg.Done()
			cc.serve()
			g.mu.Lock()
			delete(g.conns, cc)
			g.mu.Unlock()
			g.metrics.connections.Dec()
		}()
	}
}

func (g *Gateway) closeConns() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for cc := range g.conns {
		cc.nc.Close()
	}
}

// refreshLoop refreshes the cluster's metadata every MetadataMaxAge and the
// brokers' API versions with it.
func (g *Gateway) refreshLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.MetadataMaxAge)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := g.cluster.refresh(rctx, g.cfg.MetadataMaxAge/2); err != nil && ctx.Err() == nil {
			g.logger.Warn("metadata refresh", "err", err)
		}
		if err := g.cluster.loadVersions(rctx); err != nil && ctx.Err() == nil {
			g.logger.Warn("api versions refresh", "err", err)
		}
		cancel()
	}
}
