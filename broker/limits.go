package broker

import (
	"fmt"
	"net"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// Limits are the broker's limits on what clients can make it hold: connections,
// request memory and the size of topics. Kafka's names and defaults are used
// where Kafka has the setting; where Kafka's default is unlimited, Sluice sets a
// limit (docs/operations.md lists each deviation).
type Limits struct {
	// QueuedMaxRequestBytes is the broker-wide memory for request frames being
	// read and handled, like Kafka's queued.max.request.bytes. Memory is taken
	// as bytes arrive, never at the size a client announces; a connection that
	// finds the pool empty stops reading until memory is returned. Default
	// 256 MiB (Kafka's default is unlimited); it must leave room for a frame of
	// socket.request.max.bytes in three quarters of the pool, the rest being
	// kept for frames of up to 1 MiB.
	QueuedMaxRequestBytes int64 `yaml:"queued.max.request.bytes"`
	// RequestReadTimeoutMs is how long a request frame may take to arrive once
	// its first byte has, time waiting for pool memory excluded; a slower
	// client is disconnected. Sluice's own (Kafka has none). Default 30000.
	RequestReadTimeoutMs int64 `yaml:"request.read.timeout.ms"`
	// ConnectionsMaxIdleMs closes connections with no request for that long,
	// like Kafka's connections.max.idle.ms. Default 600000.
	ConnectionsMaxIdleMs int64 `yaml:"connections.max.idle.ms"`
	// MaxConnections is the most client connections the broker keeps open; more
	// are closed as soon as they are accepted, like Kafka's max.connections.
	// Default 10000 (Kafka's is unlimited).
	MaxConnections int `yaml:"max.connections"`
	// MaxConnectionsPerIP is the most connections from one IP address, like
	// Kafka's max.connections.per.ip. Default 1000 (Kafka's is unlimited).
	MaxConnectionsPerIP int `yaml:"max.connections.per.ip"`
	// MaxConnectionsPerIPOverrides sets per-IP limits for given hosts,
	// "host:count,host:count", like Kafka's max.connections.per.ip.overrides.
	MaxConnectionsPerIPOverrides string `yaml:"max.connections.per.ip.overrides"`
	// MaxConnectionCreationRate is the most new connections accepted per
	// second; the listener waits before accepting more (KIP-612's
	// max.connection.creation.rate). Default 1000 (Kafka's is unlimited).
	MaxConnectionCreationRate int `yaml:"max.connection.creation.rate"`

	// MaxPartitionsPerRequest caps the partitions one CreateTopics or
	// CreatePartitions request may create, over all its topics. Sluice's own.
	// Default 10000.
	MaxPartitionsPerRequest int32 `yaml:"max.partitions.per.request"`
	// MaxPartitionsPerTopic caps the partitions of one topic. Sluice's own.
	// Default 10000.
	MaxPartitionsPerTopic int32 `yaml:"max.partitions.per.topic"`
	// MaxPartitionsPerBroker caps the partition replicas each live broker would
	// hold after a creation (new replicas are spread over the live brokers).
	// Sluice's own. Default 20000.
	MaxPartitionsPerBroker int32 `yaml:"max.partitions.per.broker"`
}

// smallFrameBytes is the largest frame that may use the quarter of the request
// pool kept from larger frames, so that ordinary produce and fetch requests go
// on while large, slow frames hold the rest.
const smallFrameBytes = 1 << 20

func (l *Limits) applyDefaults() {
	setDefault(&l.QueuedMaxRequestBytes, 256<<20)
	setDefault(&l.RequestReadTimeoutMs, 30000)
	setDefault(&l.ConnectionsMaxIdleMs, 600000)
	setDefault(&l.MaxConnections, 10000)
	setDefault(&l.MaxConnectionsPerIP, 1000)
	setDefault(&l.MaxConnectionCreationRate, 1000)
	setDefault(&l.MaxPartitionsPerRequest, 10000)
	setDefault(&l.MaxPartitionsPerTopic, 10000)
	setDefault(&l.MaxPartitionsPerBroker, 20000)
}

func (l *Limits) validate(socketRequestMaxBytes int32) error {
	if l.QueuedMaxRequestBytes/4*3 < int64(socketRequestMaxBytes) {
		return fmt.Errorf("queued.max.request.bytes: %d leaves less than socket.request.max.bytes (%d) in three quarters of the pool",
			l.QueuedMaxRequestBytes, socketRequestMaxBytes)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"request.read.timeout.ms", l.RequestReadTimeoutMs > 0},
		{"connections.max.idle.ms", l.ConnectionsMaxIdleMs > 0},
		{"max.connections", l.MaxConnections > 0},
		{"max.connections.per.ip", l.MaxConnectionsPerIP > 0},
		{"max.connection.creation.rate", l.MaxConnectionCreationRate > 0},
		{"max.partitions.per.request", l.MaxPartitionsPerRequest > 0},
		{"max.partitions.per.topic", l.MaxPartitionsPerTopic > 0},
		{"max.partitions.per.broker", l.MaxPartitionsPerBroker > 0},
	}
	for _, chk := range checks {
		if !chk.ok {
			return fmt.Errorf("%s: value out of range", chk.name)
		}
	}
	if _, err := parseIPOverrides(l.MaxConnectionsPerIPOverrides); err != nil {
		return fmt.Errorf("max.connections.per.ip.overrides: %w", err)
	}
	return nil
}

// parseIPOverrides parses "host:count,host:count". Hosts are IP addresses or
// names, which are resolved once, when the broker starts.
func parseIPOverrides(s string) (map[string]int, error) {
	out := map[string]int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%q is not host:count", part)
		}
		host := strings.TrimSpace(part[:i])
		n, err := strconv.Atoi(strings.TrimSpace(part[i+1:]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: count must be a non-negative integer", part)
		}
		if ip := net.ParseIP(host); ip != nil {
			host = ip.String()
		}
		out[host] = n
	}
	return out, nil
}

// initLimits creates the request pool, connection limiter and quota manager
// and registers their metrics.
func (b *Broker) initLimits() {
	b.reqPool = newRequestPool(b.cfg.QueuedMaxRequestBytes)
	b.connLimit = newConnLimiter(b.cfg.Limits, b.logger, b.registry)
	b.quotas = newQuotaManager(b.cfg.Quotas, func() *metadata.Image { return b.quorum.Image() }, b.registry)
	b.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_request_handler_panics_total",
		Help: "Request handlers that panicked, by API; each closed its connection only.",
	}, []string{"api"})
	b.registry.MustRegister(b.panics,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_request_pool_used_bytes",
			Help: "Request frame memory taken from the queued.max.request.bytes pool.",
		}, func() float64 { used, _ := b.reqPool.stats(); return float64(used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_request_pool_waiting_connections",
			Help: "Connections that stopped reading because the request pool is empty.",
		}, func() float64 { _, w := b.reqPool.stats(); return float64(w) }),
	)
}

// handlerPanicked turns a panic of a request's handler into an error that
// closes the connection, after logging it with the API and counting it.
func (b *Broker) handlerPanicked(cc *conn, key, version int16, p any) error {
	name := kmsg.NameForKey(key)
	b.panics.WithLabelValues(name).Inc()
	b.logger.Error("request handler panicked; closing the connection", "api", name, "api_key", key, "version", version,
		"remote", cc.remote, "client_id", cc.clientID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	return fmt.Errorf("%s v%d handler panicked: %v", name, version, p)
}
