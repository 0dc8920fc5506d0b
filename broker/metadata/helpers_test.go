package metadata

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/internal/testutil"
)

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("METADATA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// node is one running quorum member of a test cluster.
type node struct {
	id     int32
	cfg    Config
	q      *Quorum
	cancel context.CancelFunc
	done   chan error
}

// cluster is a set of quorum members in this process plus simulated brokers heartbeating to
// whichever member is the controller.
type cluster struct {
	t       *testing.T
	mu      sync.Mutex
	nodes   map[int32]*node
	brokers map[int32]*testBroker
}

// newCluster starts n voters (IDs 1..n) over loopback TCP, or a one-voter quorum with n == 0 (node 1).
func newCluster(t *testing.T, n int, mod func(*Config)) *cluster {
	c := &cluster{t: t, nodes: map[int32]*node{}, brokers: map[int32]*testBroker{}}
	var voters []Voter
	listeners := map[int32]net.Listener{}
	for i := int32(1); i <= int32(n); i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners[i] = l
		voters = append(voters, Voter{ID: i, Addr: l.Addr().String()})
	}
	for i := int32(1); i <= int32(max(n, 1)); i++ {
		cfg := Config{NodeID: i, Voters: voters, Dir: t.TempDir(), Logger: testLogger(t), SessionTimeout: time.Second,
			AutoBalance: AutoBalanceConfig{Disabled: true}} // tests that balance enable it
		if n > 0 {
			cfg.Listener = listeners[i]
		}
		if mod != nil {
			mod(&cfg)
		}
		c.start(cfg)
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) start(cfg Config) *node {
	q, err := Open(cfg)
	require.NoError(c.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	nd := &node{id: cfg.NodeID, cfg: cfg, q: q, cancel: cancel, done: make(chan error, 1)}
	go func() { nd.done <- q.Run(ctx) }()
	c.mu.Lock()
	c.nodes[cfg.NodeID] = nd
	c.mu.Unlock()
	return nd
}

// stop shuts node id down cleanly, as a killed process looks to the others.
func (c *cluster) stop(id int32) Config {
	c.mu.Lock()
	nd := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	nd.cancel()
	select {
	case err := <-nd.done:
		require.NoError(c.t, err)
	case <-time.After(10 * time.Second):
		c.t.Fatalf("node %d did not stop", id)
	}
	cfg := nd.cfg
	addr := cfg.raftAddr()
	cfg.Listener = nil
	cfg.Listen = addr
	return cfg
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	var bs []int32
	for id := range c.brokers {
		bs = append(bs, id)
	}
	c.mu.Unlock()
	for _, id := range bs {
		c.stopBroker(id)
	}
	c.mu.Lock()
	var ns []int32
	for id := range c.nodes {
		ns = append(ns, id)
	}
	c.mu.Unlock()
	for _, id := range ns {
		c.stop(id)
	}
}

func (c *cluster) node(id int32) *Quorum {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nd := c.nodes[id]; nd != nil {
		return nd.q
	}
	return nil
}

// controller returns the running member that is the active controller, or nil.
func (c *cluster) controller() *Quorum {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if nd.q.IsController() {
			return nd.q
		}
	}
	return nil
}

func (c *cluster) waitController(timeout time.Duration) *Quorum {
	var q *Quorum
	testutil.WaitFor(c.t, timeout, "an active controller", func() bool { q = c.controller(); return q != nil })
	return q
}

// testBroker registers broker id and heartbeats every 50ms to the controller, reporting the applied
// index of its own quorum member (or of the controller's for a one-voter quorum).
type testBroker struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	epoch  int64
}

func (c *cluster) startBroker(id int32) {
	ctx, cancel := context.WithCancel(context.Background())
	b := &testBroker{cancel: cancel, done: make(chan struct{}), epoch: -1}
	c.mu.Lock()
	c.brokers[id] = b
	c.mu.Unlock()
	var inc [16]byte
	rand.Read(inc[:])
	go func() {
		defer close(b.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ctl := c.controller()
			if ctl == nil {
				continue
			}
			own := c.node(id)
			if own == nil {
				own = ctl
			}
			b.mu.Lock()
			epoch := b.epoch
			b.mu.Unlock()
			if epoch < 0 {
				e, err := ctl.RegisterBroker(ctx, Broker{ID: id, Host: "127.0.0.1", Port: 9090 + id, IncarnationID: inc})
				if err != nil {
					continue
				}
				b.mu.Lock()
				b.epoch, epoch = e, e
				b.mu.Unlock()
			}
			_, err := ctl.Heartbeat(ctx, HeartbeatRequest{BrokerID: id, BrokerEpoch: epoch, AppliedIndex: own.Image().Index})
			if errors.Is(err, kerr.StaleBrokerEpoch) || errors.Is(err, kerr.BrokerIDNotRegistered) {
				b.mu.Lock()
				b.epoch = -1
				b.mu.Unlock()
			}
		}
	}()
}

// stopBroker stops broker id's heartbeats, as if its process died.
func (c *cluster) stopBroker(id int32) {
	c.mu.Lock()
	b := c.brokers[id]
	delete(c.brokers, id)
	c.mu.Unlock()
	if b != nil {
		b.cancel()
		<-b.done
	}
}

// waitLive waits until every running member's image has exactly the given live brokers.
func (c *cluster) waitLive(timeout time.Duration, ids ...int32) {
	testutil.WaitFor(c.t, timeout, "live brokers", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, nd := range c.nodes {
			live := nd.q.Image().liveBrokerIDs()
			if len(live) != len(ids) {
				return false
			}
			for i := range ids {
				if live[i] != ids[i] {
					return false
				}
			}
		}
		return true
	})
}

// call retries op on the current controller until it returns something other than NOT_CONTROLLER.
func call[T any](c *cluster, op func(q *Quorum) (T, error)) (T, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var zero T
		q := c.controller()
		if q == nil {
			if time.Now().After(deadline) {
				return zero, ErrNotController
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		v, err := op(q)
		if !errors.Is(err, ErrNotController) || time.Now().After(deadline) {
			return v, err
		}
	}
}
