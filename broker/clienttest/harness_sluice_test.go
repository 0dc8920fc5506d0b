//go:build !kfake

package clienttest

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/testutil"
)

// isKfake is true when the tests run against franz-go's kfake (-tags kfake).
const isKfake = false

// testBroker is a running broker the tests talk to.
type testBroker struct {
	Addr    string
	DataDir string
}

// brokerOpt adjusts the configuration of the broker a test starts.
type brokerOpt func(*broker.Config)

// withMaxRequestBytes sets socket.request.max.bytes, the largest frame accepted.
func withMaxRequestBytes(n int32) brokerOpt {
	return func(c *broker.Config) { c.SocketRequestMaxBytes = n }
}

// startBroker starts an in-process Sluice broker on 127.0.0.1:0 with a fresh
// data dir. Groups rebalance without the initial delay (1ms) and accept session
// timeouts from 1s, so group tests stay short. At cleanup the broker's context
// is cancelled and Run must return within 15s; its log is printed if the test
// failed.
func startBroker(t testing.TB, opts ...brokerOpt) *testBroker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	noDelay := int64(0)
	cfg.GroupInitialRebalanceDelayMs = &noDelay
	cfg.GroupMinSessionTimeoutMs = 1000
	for _, o := range opts {
		o(&cfg)
	}

	var brokerAddr atomic.Value // string, set once the broker has bound
	if apiLogPath != "" {
		cfg.AdvertisedListen = startAPIRecorder(t, func() string { return brokerAddr.Load().(string) })
	}

	logs := &testutil.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := broker.New(cfg, logger)
	require.NoError(t, err)
	brokerAddr.Store(b.Addr())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("broker Run returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("broker Run did not return within 15s of cancel")
		}
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("broker log (last %d lines):\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	select {
	case <-b.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("broker not ready within 20s")
	}
	addr := b.Addr()
	if apiLogPath != "" {
		addr = cfg.AdvertisedListen
	}
	return &testBroker{Addr: addr, DataDir: cfg.DataDir}
}
