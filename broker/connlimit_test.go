package broker

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

// closedByBroker reports whether the broker closed c: a read returns EOF or a
// reset rather than timing out.
func closedByBroker(c net.Conn, within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.ConnectionsMaxIdleMs = 300 })
	// The broker's idle clock starts at accept, which can come before Dial
	// returns, so the lower bound is measured from before the dial.
	start := time.Now()
	idle, err := net.Dial("tcp", tb.Addr())
	require.NoError(t, err)
	defer idle.Close()
	require.True(t, closedByBroker(idle, 20*time.Second), "an idle connection is closed")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "not before connections.max.idle.ms")

	// A half-sent frame is closed at request.read.timeout.ms even though bytes
	// keep the connection from looking idle.
	tb2 := startTestBroker(t, t.TempDir(), func(c *Config) { c.RequestReadTimeoutMs = 300 })
	slow, err := net.Dial("tcp", tb2.Addr())
	require.NoError(t, err)
	defer slow.Close()
	_, err = slow.Write(frame(18, 3, 1, nil)[:10])
	require.NoError(t, err)
	require.True(t, closedByBroker(slow, 20*time.Second), "a frame that does not arrive in time closes its connection")

	// A client in use is not idle.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	requireServes(ctx, t, tb.Addr(), "busy")
}

func TestExcessConnectionsClosed(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.MaxConnections = 6
		c.MaxConnectionsPerIP = 4
		c.MaxConnectionsPerIPOverrides = "127.0.0.2:1"
		c.MetricsListen = "127.0.0.1:0"
	})
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	dial := func(local string) net.Conn {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", tb.Addr())
		require.NoError(t, err)
		open = append(open, c)
		return c
	}
	for range 4 {
		require.False(t, closedByBroker(dial("127.0.0.1"), 300*time.Millisecond), "within max.connections.per.ip")
	}
	require.True(t, closedByBroker(dial("127.0.0.1"), 10*time.Second), "the fifth connection from one IP is closed")

	require.False(t, closedByBroker(dial("127.0.0.2"), 300*time.Millisecond), "the override allows one")
	require.True(t, closedByBroker(dial("127.0.0.2"), 10*time.Second), "and no more")

	require.False(t, closedByBroker(dial("127.0.0.3"), 300*time.Millisecond), "the sixth connection overall")
	require.True(t, closedByBroker(dial("127.0.0.4"), 10*time.Second), "past max.connections")

	// Closing connections makes room again (franz-go opens up to three: seed,
	// metadata and produce).
	for _, c := range open[:4] {
		c.Close()
	}
	testutil.WaitFor(t, 10*time.Second, "the broker to count the closed connections", func() bool {
		tb.connLimit.mu.Lock()
		defer tb.connLimit.mu.Unlock()
		return tb.connLimit.total == 2
	})
	cl := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("room"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("x")).FirstErr())

	fams := testutil.Scrape(t, tb.MetricsAddr())
	require.Equal(t, 2.0, value(fams, "sluice_connections_rejected_total", map[string]string{"limit": "max.connections.per.ip"}))
	require.Equal(t, 1.0, value(fams, "sluice_connections_rejected_total", map[string]string{"limit": "max.connections"}))
}

func TestConnectionCreationRate(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.MaxConnectionCreationRate = 20 })
	// The bucket holds one second of connections; 30 more than that must take
	// about 1.5 s to be accepted. Each is answered only once accepted.
	start := time.Now()
	for i := range 50 {
		c, err := net.DialTimeout("tcp", tb.Addr(), 10*time.Second)
		require.NoError(t, err)
		_, err = c.Write(frame(18, 0, int32(i), nil))
		require.NoError(t, err)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 8))
		require.NoError(t, err)
		c.Close()
	}
	require.GreaterOrEqual(t, time.Since(start), time.Second, "50 connections at 20/s with a burst of 20 take at least 1.5 s")
}

// TestBrokerListenerOutsideMaxConnections: clients filling max.connections must
// not keep brokers from reaching each other.
func TestBrokerListenerOutsideMaxConnections(t *testing.T) {
	t.Parallel()
	tb := startTestBroker(t, t.TempDir(), func(c *Config) { c.MaxConnections = 2 })
	for range 2 {
		c, err := net.Dial("tcp", tb.Addr())
		require.NoError(t, err)
		defer c.Close()
		require.False(t, closedByBroker(c, 300*time.Millisecond))
	}
	full, err := net.Dial("tcp", tb.Addr())
	require.NoError(t, err)
	defer full.Close()
	require.True(t, closedByBroker(full, 10*time.Second), "the client listener is full")

	peer, err := net.Dial("tcp", tb.ListenerAddr(implicitBrokerListener))
	require.NoError(t, err)
	defer peer.Close()
	_, err = peer.Write(frame(18, 0, 1, nil)) // ApiVersions v0
	require.NoError(t, err)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadFull(peer, make([]byte, 8))
	require.NoError(t, err, "the broker listener still answers")
}
