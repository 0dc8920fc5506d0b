package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// metadataAtPortOpen dials addr until its port is open, sends a Metadata request the moment it is,
// and returns the broker IDs of the answer.
func metadataAtPortOpen(t *testing.T, addr string) []int32 {
	t.Helper()
	var nc net.Conn
	testutil.WaitForErr(t, time.Minute, "port "+addr+" open", func() (bool, error) {
		var err error
		nc, err = net.DialTimeout("tcp", addr, time.Second)
		return err == nil, err
	})
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(time.Minute)))
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	frame := binary.BigEndian.AppendUint32(nil, 0)
	frame = binary.BigEndian.AppendUint16(frame, 3)
	frame = binary.BigEndian.AppendUint16(frame, 1)
	frame = binary.BigEndian.AppendUint32(frame, 7)
	frame = binary.BigEndian.AppendUint16(frame, 0xffff)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	_, err := nc.Write(frame)
	require.NoError(t, err)
	var size [4]byte
	_, err = io.ReadFull(nc, size[:])
	require.NoError(t, err, "Metadata sent the moment %s opened was not answered", addr)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(nc, body)
	require.NoError(t, err)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	require.NoError(t, resp.ReadFrom(body[4:]))
	var ids []int32
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	return ids
}

// TestMetadataAtPortOpen starts a fresh three-broker cluster and, for each broker, sends Metadata the
// moment its client port opens: the answer lists that broker. Then a killed broker is restarted and
// the same holds for it.
func TestMetadataAtPortOpen(t *testing.T) {
	require.NoError(t, binErr)
	cl, err := chaos.NewCluster(chaos.ClusterConfig{Bin: binPath, Dir: t.TempDir(), Brokers: 3})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(80))
		}
		cl.Close()
	})
	for _, n := range cl.Nodes() {
		require.NoError(t, cl.Start(n.ID))
	}
	for _, n := range cl.Nodes() {
		ids := metadataAtPortOpen(t, n.Addr)
		require.Contains(t, ids, n.ID, "broker %d's first Metadata answer", n.ID)
		t.Logf("broker %d's first Metadata answer lists brokers %v", n.ID, ids)
	}
	require.NoError(t, cl.Kill(2))
	require.NoError(t, cl.Start(2))
	ids := metadataAtPortOpen(t, cl.Node(2).Addr)
	require.Contains(t, ids, int32(2), "restarted broker's first Metadata answer")
}

// event is an entry of a broker's /api/v1/events.
type event struct {
	Type   string `json:"type"`
	Broker int32  `json:"broker"`
	Detail string `json:"detail"`
}

// events reads the cluster event log from a broker's admin interface (served with /metrics).
func events(ctx context.Context, n *chaos.Node) ([]event, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.MetricsAddr+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var evs []event
	return evs, json.NewDecoder(resp.Body).Decode(&evs)
}

// TestNoFencingUnderCPUHogs runs three broker processes with the default timeouts and acks=all
// producers on an RF-3 topic while two CPU hogs (busy shell loops at the brokers' priority) keep both
// cores of the reference machine busy for 30 s: no broker is fenced and every acknowledged record
// is read back. Then a broker killed under the same load is fenced at once (its controller
// connection closed), long before its session would end.
func TestNoFencingUnderCPUHogs(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s load test")
	}
	cl := startCluster(t)
	for range 2 {
		hog := exec.Command("bash", "-c", "while :; do :; done")
		require.NoError(t, hog.Start())
		t.Cleanup(func() { hog.Process.Kill(); hog.Wait() })
	}
	const topic = "busy"
	createTopic(t, cl, topic, 6, 3, 2)
	p := newProducer(t, newClient(t, cl), 0)
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	failed := make(chan int, 6)
	for part := range int32(6) {
		go func() { failed <- p.stream(ctx, topic, part) }()
	}
	for range 6 {
		require.Zero(t, <-failed, "records failed under load")
	}
	evs, err := events(testCtx(t, 30*time.Second), cl.Node(1))
	require.NoError(t, err)
	for _, e := range evs {
		require.NotEqual(t, "broker_fenced", e.Type, "broker %d fenced under load: %s", e.Broker, e.Detail)
	}
	requireAllAcknowledged(t, cl, topic, 6, p)

	victim := int32(3)
	if ctl, err := cl.Controller(testCtx(t, 30*time.Second)); err == nil && ctl == victim {
		victim = 2
	}
	killed := time.Now()
	require.NoError(t, cl.Kill(victim))
	require.NoError(t, chaos.WaitFor(testCtx(t, time.Minute), time.Minute, "the killed broker fenced",
		func(ctx context.Context) (bool, error) {
			evs, err := events(ctx, cl.Node(1))
			return err == nil && slices.ContainsFunc(evs, func(e event) bool {
				return e.Type == "broker_fenced" && e.Broker == victim && e.Detail == "controller connection closed"
			}), err
		}))
	t.Logf("broker %d killed under load and fenced for its closed controller connection after %s", victim, time.Since(killed).Round(time.Millisecond))
}
