package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// frame is a request frame: size, header (key, version, correlation id, client
// id), header tags when flexible, body.
func frame(key, version int16, corr int32, body []byte) []byte {
	b := make([]byte, 4, 64+len(body))
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "fuzz"...)
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func encode(req kmsg.Request) []byte {
	body := req.AppendTo(nil)
	if req.IsFlexible() {
		body = append([]byte{0}, body...)
	}
	return frame(req.Key(), req.GetVersion(), 7, body)
}

// expectClosed checks that the gateway closes conn without answering.
func expectClosed(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	n, err := conn.Read(make([]byte, 1))
	require.Zero(t, n, "the gateway answered")
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the connection was not closed: %v", err)
}

// TestBadInputClosesOneConnection sends what the gateway must refuse, each on
// its own connection: an oversized frame, a frame too short for a header, an
// undecodable body, an unknown API key, a broker-only API, SASL (the gateway
// does not authenticate), a replica's fetch. Each closes that connection only;
// a client on another connection carries on, and nothing reaches a broker.
func TestBadInputClosesOneConnection(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs(), func(cfg *Config) { cfg.MaxRequestBytes = 64 << 10 })
	good := newClient(t, g.Addr(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testCtx(t, time.Minute)
	require.NoError(t, good.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: []byte("1")}).FirstErr())

	replicaFetch := kmsg.NewPtrFetchRequest()
	replicaFetch.SetVersion(11)
	replicaFetch.ReplicaID = 1
	alterPartition := kmsg.NewPtrAlterPartitionRequest()
	alterPartition.SetVersion(0)
	handshake := kmsg.NewPtrSASLHandshakeRequest()
	handshake.SetVersion(1)
	handshake.Mechanism = "PLAIN"
	envelope := kmsg.NewPtrEnvelopeRequest()
	envelope.SetVersion(0)
	envelope.RequestPrincipal = []byte("User:admin")

	cases := map[string][]byte{
		"oversized frame":      binary.BigEndian.AppendUint32(nil, 1<<20),
		"short frame":          {0, 0, 0, 3, 0, 18, 0},
		"undecodable body":     frame(3, 9, 1, []byte{0xff, 0xff, 0xff, 0x7f}),
		"unknown api key":      frame(999, 0, 1, nil),
		"broker-only api":      encode(alterPartition),
		"envelope":             encode(envelope),
		"sasl handshake":       encode(handshake),
		"replica fetch":        encode(replicaFetch),
		"version out of range": frame(0, 99, 1, nil),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", g.Addr())
			require.NoError(t, err)
			defer conn.Close()
			_, err = conn.Write(data)
			require.NoError(t, err)
			expectClosed(t, conn)
		})
	}
	require.NoError(t, good.ProduceSync(ctx, &kgo.Record{Topic: "a", Value: []byte("2")}).FirstErr())
	require.Greater(t, counterValue(t, g.reg, "sluice_gateway_bad_requests_total"), 0.0)
}

// TestApiVersionsUnsupportedVersion: an ApiVersions the gateway cannot parse is
// answered with UNSUPPORTED_VERSION and the versions served, at v0, as Kafka
// does, so that clients can downgrade.
func TestApiVersionsUnsupportedVersion(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	conn, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write(frame(18, 99, 5, nil))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
	var size [4]byte
	_, err = io.ReadFull(conn, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(conn, body)
	require.NoError(t, err)
	require.Equal(t, uint32(5), binary.BigEndian.Uint32(body))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	require.NoError(t, resp.ReadFrom(body[4:]))
	require.Equal(t, int16(35), resp.ErrorCode) // UNSUPPORTED_VERSION
	require.NotEmpty(t, resp.ApiKeys)
}

// TestConnectionLimit: past max.connections a new connection is closed at once
// and counted; the open ones keep working.
func TestConnectionLimit(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs(), func(cfg *Config) { cfg.MaxConnections = 2 })
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", g.Addr())
		require.NoError(t, err)
		defer conn.Close()
		conns = append(conns, conn)
	}
	waitGauge(t, g.reg, "sluice_gateway_connections", 2)
	extra, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	defer extra.Close()
	expectClosed(t, extra)
	require.Equal(t, 1.0, counterValue(t, g.reg, "sluice_gateway_connections_rejected_total"))
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(0)
	_, err = conns[0].Write(encode(req))
	require.NoError(t, err)
	require.NoError(t, conns[0].SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = io.ReadFull(conns[0], make([]byte, 4))
	require.NoError(t, err)
}

// counterValue sums a metric family's values.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func waitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for counterValue(t, reg, name) != want {
		require.True(t, time.Now().Before(deadline), "%s never reached %v", name, want)
		time.Sleep(20 * time.Millisecond)
	}
}

// FuzzRequest feeds arbitrary request frames (after the size) to a client
// connection of a gateway in front of kfake: a frame may be answered or
// refused, never panic, and an answer must encode.
func FuzzRequest(f *testing.F) {
	for _, req := range []kmsg.Request{
		kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrMetadataRequest(), kmsg.NewPtrProduceRequest(),
		kmsg.NewPtrFetchRequest(), kmsg.NewPtrListOffsetsRequest(), kmsg.NewPtrFindCoordinatorRequest(),
		kmsg.NewPtrOffsetCommitRequest(), kmsg.NewPtrOffsetFetchRequest(), kmsg.NewPtrDescribeGroupsRequest(),
		kmsg.NewPtrOffsetForLeaderEpochRequest(), kmsg.NewPtrDeleteRecordsRequest(), kmsg.NewPtrCreateTopicsRequest(),
	} {
		for _, v := range []int16{req.MaxVersion(), 4} {
			req.SetVersion(v)
			f.Add(encode(req)[4:])
		}
	}
	c, err := kfakeCluster()
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	g, err := New(Config{Listen: "127.0.0.1:0", Bootstrap: c.ListenAddrs()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, _, ok := g.cluster.brokerVersions(0); ok {
			break
		}
		if time.Now().After(deadline) {
			f.Fatal("gateway did not learn the cluster")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		cc := newClientConn(ctx, g, a)
		defer cc.cancel()
		p, err := cc.start(data)
		if err != nil {
			return
		}
		if p.done != nil {
			select {
			case <-p.done:
			case <-time.After(5 * time.Second): // a long poll: the client leaves
				cc.cancel()
				select {
				case <-p.done:
				case <-time.After(10 * time.Second):
					t.Fatalf("request not finished 10s after its client left")
				}
			}
		}
		if p.resp != nil {
			p.resp.AppendTo(nil)
		}
		cc.mu.Lock()
		for _, be := range cc.backends {
			be.close(errors.New("fuzz case done"))
		}
		cc.mu.Unlock()
	})
}

// TestLongPollEndsWithItsClient: a client that leaves during a ten-minute long
// poll frees its connection at the gateway at once, not when the poll ends.
func TestLongPollEndsWithItsClient(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	conn, err := net.Dial("tcp", g.Addr())
	require.NoError(t, err)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(11)
	fetch.ReplicaID, fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = -1, 600_000, 1, 1<<20
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "a", Partitions: []kmsg.FetchRequestTopicPartition{fp}}}
	_, err = conn.Write(encode(fetch))
	require.NoError(t, err)
	waitGauge(t, g.reg, "sluice_gateway_connections", 1)
	require.NoError(t, conn.Close())
	waitGauge(t, g.reg, "sluice_gateway_connections", 0)
}
