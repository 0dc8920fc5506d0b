package broker

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestClientAtPortOpenSeesBroker connects to a new broker's client listener the moment its port is
// open (before Run) and asks for Metadata: the answer comes only once the broker is ready, and lists
// it. /readyz agrees.
func TestClientAtPortOpenSeesBroker(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	b, err := New(cfg, nil)
	require.NoError(t, err)

	c := rawConn(t, b.Addr())
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 1
	_, err = c.Write(frame(3, 1, 42, req.AppendTo(nil)))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	select {
	case <-b.Ready():
	default:
		t.Fatal("answered before the broker was ready")
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	require.Equal(t, int32(42), int32(binary.BigEndian.Uint32(body)))
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	require.NoError(t, resp.ReadFrom(body[4:]))
	require.Len(t, resp.Brokers, 1)
	host, port := b.advertisedAddr()
	require.Equal(t, cfg.NodeID, resp.Brokers[0].NodeID)
	require.Equal(t, host, resp.Brokers[0].Host)
	require.Equal(t, port, resp.Brokers[0].Port)

	testutil.WaitFor(t, 30*time.Second, "metrics listener serving", func() bool { return b.MetricsAddr() != "" })
	r, err := http.Get("http://" + b.MetricsAddr() + "/readyz")
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
}
