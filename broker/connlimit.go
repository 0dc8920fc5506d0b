package broker

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimiter enforces max.connections, max.connections.per.ip (with its
// overrides) and max.connection.creation.rate on accepted connections. A
// connection over a count limit is closed at once (Kafka instead stops
// accepting at max.connections, leaving clients in the listen backlog); the
// creation rate delays accepting, as in KIP-612.
type connLimiter struct {
	logger    *slog.Logger
	max       int
	perIP     int
	overrides map[string]int
	rejected  *prometheus.CounterVec

	mu    sync.Mutex
	total int
	byIP  map[string]int

	// The creation rate is a token bucket holding up to one second of
	// connections.
	rate     float64
	tokens   float64
	refilled time.Time
}

func newConnLimiter(l Limits, logger *slog.Logger, reg prometheus.Registerer) *connLimiter {
	overrides, _ := parseIPOverrides(l.MaxConnectionsPerIPOverrides) // validated with the config
	for host, n := range overrides {
		if net.ParseIP(host) != nil {
			continue
		}
		// Kafka accepts host names in the overrides; they are resolved once.
		if addrs, err := net.LookupHost(host); err == nil {
			for _, a := range addrs {
				if ip := net.ParseIP(a); ip != nil {
					overrides[ip.String()] = n
				}
			}
		} else {
			logger.Warn("max.connections.per.ip.overrides: cannot resolve host", "host", host, "err", err)
		}
	}
	c := &connLimiter{
		logger: logger, max: l.MaxConnections, perIP: l.MaxConnectionsPerIP, overrides: overrides,
		byIP:     map[string]int{},
		rate:     float64(l.MaxConnectionCreationRate),
		tokens:   float64(l.MaxConnectionCreationRate),
		refilled: time.Now(),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_connections_rejected_total",
			Help: "Connections closed as soon as they were accepted, by the limit they exceeded (max.connections, max.connections.per.ip).",
		}, []string{"limit"}),
	}
	reg.MustRegister(c.rejected)
	for _, l := range []string{"max.connections", "max.connections.per.ip"} {
		c.rejected.WithLabelValues(l)
	}
	return c
}

// admit waits for the creation rate, then counts nc against the limits. It
// closes nc and returns false when a limit is exceeded or ctx is done.
// Connections of the inter-broker and controller listeners (brokerOnly) are
// held to max.connections.per.ip only: as in Kafka (KIP-612), clients filling
// max.connections or the creation rate must not keep brokers apart.
func (c *connLimiter) admit(ctx context.Context, nc net.Conn, brokerOnly bool) bool {
	if !brokerOnly && !c.waitCreation(ctx) {
		nc.Close()
		return false
	}
	ip := remoteIP(nc)
	c.mu.Lock()
	limit, which := c.perIP, "max.connections.per.ip"
	if n, ok := c.overrides[ip]; ok {
		limit = n
	}
	if c.total >= c.max && !brokerOnly {
		limit, which = -1, "max.connections"
	}
	if limit >= 0 && c.byIP[ip] < limit {
		if !brokerOnly {
			c.total++
		}
		c.byIP[ip]++
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.rejected.WithLabelValues(which).Inc()
	c.logger.Debug("connection refused", "remote", nc.RemoteAddr().String(), "limit", which)
	nc.Close()
	return false
}

// release counts a connection admitted earlier, with the same brokerOnly, as
// closed.
func (c *connLimiter) release(nc net.Conn, brokerOnly bool) {
	ip := remoteIP(nc)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !brokerOnly {
		c.total--
	}
	if c.byIP[ip]--; c.byIP[ip] <= 0 {
		delete(c.byIP, ip)
	}
}

// waitCreation takes one token of the creation rate, waiting for it if needed.
func (c *connLimiter) waitCreation(ctx context.Context) bool {
	c.mu.Lock()
	now := time.Now()
	c.tokens = min(c.rate, c.tokens+now.Sub(c.refilled).Seconds()*c.rate)
	c.refilled = now
	c.tokens--
	wait := time.Duration(0)
	if c.tokens < 0 {
		wait = time.Duration(-c.tokens / c.rate * float64(time.Second))
	}
	c.mu.Unlock()
	if wait == 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// remoteIP is the IP address of a connection's peer, as a string.
func remoteIP(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}
