package metadata

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Config configures one member of the metadata quorum. Zero durations take the documented defaults,
// tuned for fast failover without false alarms on a busy machine: a leader (controller) whose process
// ended is replaced about LeaderLeaseTimeout after it went silent, one that is merely silent after
// HeartbeatTimeout; a broker whose process ended is fenced as soon as its controller connection
// closes, one that is silent but connected after SessionTimeout.
type Config struct {
	// NodeID is this node's ID, Kafka's `node.id`; it is also the broker ID.
	NodeID int32
	// Listen is the address the Raft transport binds (`--controller-listen`). Empty means the address of
	// this node's entry in Voters. Ignored without Voters.
	Listen string
	// Listener, when set, is a bound listener used instead of Listen (tests bind port 0 this way).
	// The quorum closes it.
	Listener net.Listener
	// Voters is the static quorum, Kafka's `controller.quorum.voters` (see ParseVoters); it must contain
	// NodeID. Every voter must be started with the same list. Empty makes a one-voter quorum with an
	// in-memory transport, still with a durable log and snapshots in Dir.
	Voters []Voter
	// Bootstrap lists Raft addresses of controllers, Kafka's `controller.quorum.bootstrap.servers`
	// (KIP-853): a node that is not one of Voters (or runs without Voters) asks them to let it
	// follow the metadata log as an observer (a Raft non-voter); it then needs a Raft listener of
	// its own (Listen or Listener), which the controller replicates to. Empty: the addresses of
	// Voters.
	Bootstrap []string
	// NodePrincipals are the principals configured node ids are bound to (`broker.principals`):
	// only the principal of an id may join as that id. Ids the controller allocated are bound to
	// the principal that asked for them.
	NodePrincipals map[int32]string
	// PeerPrincipal names the principal of a peer on the Raft listener from its TLS connection
	// state (nil, or a plain TCP listener: "", the loopback trust of an unauthenticated
	// controller listener).
	PeerPrincipal func(tls.ConnectionState) string
	// ControllerRole says this node has the controller role (process.roles): an observer with it
	// may be made a voter (AddController), a broker-only one may not. Static voters have it.
	ControllerRole bool
	// ControllerEndpoints, set on a controller-only node (process.roles=controller), are its
	// Kafka endpoints, recorded in the log when it becomes the active controller so that
	// brokers, which find other controllers among the registered brokers, can reach it.
	ControllerEndpoints []Endpoint
	// Dir holds the Raft log (raft.db, BoltDB) and snapshots. Required.
	Dir string
	// SessionTimeout is how long the controller waits for a broker heartbeat before fencing the broker
	// and moving its leaderships, like Kafka's `broker.session.timeout.ms` (default 9s, Kafka's).
	// Brokers should heartbeat several times per timeout. Time the controller process itself was
	// stalled does not count (see watchStalls).
	SessionTimeout time.Duration
	// HeartbeatTimeout is Raft's follower heartbeat timeout (default 1.5s, 500ms for a one-voter
	// quorum, where it only delays the start): how long a follower waits
	// for a leader that is silent, but whose process has not visibly ended, before an election (see
	// watchLeaderLoss). The 500ms of earlier versions made the quorum elect every few seconds on a
	// loaded 2-core machine.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is Raft's candidate election timeout (default HeartbeatTimeout, the least Raft
	// accepts).
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a Raft leader stays leader without reaching a quorum (default
	// 500ms, 250ms for a one-voter quorum); at most HeartbeatTimeout. It is also how long followers wait before electing a new
	// leader once the old one's process has ended. 250ms made leaders step down on a loaded machine.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long Raft may wait before sending an AppendEntries with no new entries to
	// carry commit information (default 20ms).
	CommitTimeout time.Duration
	// ApplyTimeout bounds how long a proposal waits to be enqueued in Raft (default 5s).
	ApplyTimeout time.Duration
	// BrokerGone, when set, probes a broker and reports whether its process is certainly gone (for
	// example, nothing accepts connections at its Kafka listener any more). A new controller probes
	// the previous controller this way and fences it at once instead of after a quarter session. It
	// must return by the deadline of ctx; nil skips the probe.
	BrokerGone func(ctx context.Context, b Broker) bool
	// PreferredLeaderInterval is how often the controller moves leadership back to preferred replicas,
	// like Kafka's `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds` (default
	// 1s; negative disables it). The controller also checks right after an ISR expansion.
	PreferredLeaderInterval time.Duration
	// DefaultPartitions is used when CreateTopic is asked for -1 partitions, Kafka's `num.partitions`
	// (default 1).
	DefaultPartitions int32
	// TLS, when set, secures the Raft transport: accepted connections use it as the server config
	// (set ClientAuth to require client certificates for mTLS) and dials use DialTLS.
	TLS     *tls.Config
	DialTLS *tls.Config
	// InitialScramCredentials are written by the first controller of a cluster whose log holds no SCRAM
	// credential yet, like `kafka-storage format --add-scram`: the first administrator's credentials.
	InitialScramCredentials []ScramChange
	// Logger receives the quorum's and Raft's logs (Raft's at warn and above). Nil discards them.
	Logger *slog.Logger
	// AutoBalance configures the controller's automatic balancing (autobalance.go).
	AutoBalance AutoBalanceConfig
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SessionTimeout, 9*time.Second)
	if len(c.Voters) == 0 && len(c.Bootstrap) == 0 {
		// A one-voter quorum has nobody to hold a false election against; its heartbeat timeout
		// only delays its start.
		def(&c.HeartbeatTimeout, 500*time.Millisecond)
		def(&c.LeaderLeaseTimeout, 250*time.Millisecond)
	}
	def(&c.HeartbeatTimeout, 1500*time.Millisecond)
	def(&c.ElectionTimeout, c.HeartbeatTimeout)
	def(&c.LeaderLeaseTimeout, 500*time.Millisecond)
	def(&c.CommitTimeout, 20*time.Millisecond)
	def(&c.ApplyTimeout, 5*time.Second)
	if c.PreferredLeaderInterval == 0 {
		c.PreferredLeaderInterval = time.Second
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("metadata: node id %d is negative", c.NodeID)
	case c.Dir == "":
		return fmt.Errorf("metadata: no data directory")
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("metadata: leader lease timeout %s is longer than the heartbeat timeout %s", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("metadata: election timeout %s is shorter than the heartbeat timeout %s", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.observer() && c.Listen == "" && c.Listener == nil {
		return fmt.Errorf("metadata: node id %d is not in the controller quorum voters and has no controller listener to follow the metadata log from", c.NodeID)
	}
	if c.observer() && len(c.bootstrapAddrs()) == 0 {
		return fmt.Errorf("metadata: node id %d has no controller quorum to join", c.NodeID)
	}
	return nil
}

// observer reports whether this node starts outside the static voters and joins the quorum.
func (c *Config) observer() bool {
	return (len(c.Voters) > 0 || len(c.Bootstrap) > 0) && c.voterAddr() == ""
}

// raftAddr is the address this node's Raft transport advertises.
func (c *Config) raftAddr() string {
	switch {
	case c.voterAddr() != "":
		return c.voterAddr()
	case c.Listen != "":
		return c.Listen
	case c.Listener != nil:
		return c.Listener.Addr().String()
	}
	return ""
}

func (c *Config) voterAddr() string {
	for _, v := range c.Voters {
		if v.ID == c.NodeID {
			return v.Addr
		}
	}
	return ""
}

// Quorum is one member of the metadata quorum: a Raft node applying the metadata log into an Image,
// and the active controller while it is the Raft leader.
type Quorum struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	store  *raftboltdb.BoltStore
	stream *streamLayer // nil for a one-voter quorum
	trans  *raft.NetworkTransport

	// ctlMu serializes controller decisions: each validates against the newest image and waits for its
	// entry to be applied before the next one looks. It guards ctl.
	ctlMu  sync.Mutex
	ctl    *controller
	sess   atomic.Pointer[sessions] // the active controller's broker sessions, nil when not
	isCtl  atomic.Bool
	kickCh chan struct{} // asks the controller loop for a preferred-leader check now
	// balanceKick asks the balancer for a round now (autobalance.go).
	balanceKick chan struct{}
	// peerLost is signalled when a Raft connection from another voter ends (see watchLeaderLoss).
	peerLost chan struct{}
	// raftReady is closed once raft is set: the transport accepts connections (and join requests,
	// served in serveJoin) before raft.NewRaft returns.
	raftReady chan struct{}
	// prevLeader is the last Raft leader other than this node (-1: none seen):
	// when this node takes over, that broker is usually the one that died.
	prevLeader atomic.Int32
	closeMu    sync.Mutex
	closed     chan struct{}
	stopErr    error
}

// Open opens (creating on first start) the Raft log in cfg.Dir and starts this node's Raft member. The
// node takes part in elections and applies the log at once; Run must be called to act as controller
// and to shut it down.
func Open(cfg Config) (*Quorum, error) {
	q := &Quorum{kickCh: make(chan struct{}, 1), peerLost: make(chan struct{}, 1), closed: make(chan struct{}), raftReady: make(chan struct{})}
	q.balanceKick = make(chan struct{}, 1) // autobalance.go
	ok := false
	defer func() {
		if !ok {
			q.closeResources()
			if q.stream == nil && cfg.Listener != nil {
				cfg.Listener.Close()
			}
		}
	}()
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	q.cfg, q.log, q.fsm = cfg, cfg.Logger, newFSM(cfg.Logger)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	hlog := newHCLog(cfg.Logger, hclog.Warn)
	var err error
	q.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("metadata: open raft log: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("metadata: open snapshots: %w", err)
	}
	var trans raft.Transport
	var servers []raft.Server
	if len(cfg.Voters) == 0 && len(cfg.Bootstrap) == 0 {
		// A stable address: the one-voter configuration is stored in the log and must still name us
		// after a restart.
		addr, t := raft.NewInmemTransport(raft.ServerAddress("sluice-node-" + strconv.Itoa(int(cfg.NodeID))))
		trans = t
		servers = []raft.Server{{Suffrage: raft.Voter, ID: serverID(cfg.NodeID), Address: addr}}
	} else {
		q.stream, err = newStreamLayer(cfg)
		if err != nil {
			return nil, err
		}
		q.stream.onLost = q.connLost
		q.stream.onJoin = q.serveJoin
		q.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: q.stream, MaxPool: 3, Timeout: 2 * time.Second, Logger: hlog,
		})
		trans = q.trans
		for _, v := range cfg.Voters {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(v.ID), Address: raft.ServerAddress(v.Addr)})
		}
	}
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.Logger = hlog
	rc.NoLegacyTelemetry = true
	q.raft, err = raft.NewRaft(rc, q.fsm, q.store, q.store, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("metadata: start raft: %w", err)
	}
	close(q.raftReady)
	// Every voter bootstraps with the same configuration on first start; afterwards the stored
	// configuration wins and bootstrapping is refused, which is expected. An observer never
	// bootstraps: it learns the configuration from the controller once it has joined.
	if cfg.observer() {
		servers = nil
	}
	if len(servers) > 0 {
		if err := q.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("metadata: bootstrap quorum: %w", err)
		}
	}
	ok = true
	return q, nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// Run acts as the active controller whenever this node is the Raft leader, until ctx is done; then it
// shuts Raft down cleanly and returns.
func (q *Quorum) Run(ctx context.Context) error {
	var (
		stop func()
		wg   sync.WaitGroup
	)
	stopController := func() {
		if stop != nil {
			stop()
			wg.Wait()
			stop = nil
		}
	}
	leaderCh := q.raft.LeaderCh()
	q.prevLeader.Store(-1)
	var watchWG sync.WaitGroup
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer watchWG.Wait()
	defer stopWatch()
	if q.stream != nil {
		watchWG.Add(2)
		go func() { defer watchWG.Done(); q.watchLeaderLoss(watchCtx) }()
		go func() { defer watchWG.Done(); q.joinLoop(watchCtx) }()
	}
	watch := time.NewTicker(50 * time.Millisecond)
	defer watch.Stop()
	for {
		select {
		case <-watch.C:
			if id := q.ControllerID(); id >= 0 && id != q.cfg.NodeID {
				q.prevLeader.Store(id)
			}
		case <-ctx.Done():
			stopController()
			return q.Close()
		case <-q.closed:
			stopController()
			return q.stopErr
		case leader := <-leaderCh:
			// A second true means leadership was lost and regained in between: start afresh.
			stopController()
			if leader {
				cctx, cancel := context.WithCancel(ctx)
				stop = cancel
				wg.Add(1)
				go func() {
					defer wg.Done()
					q.runController(cctx)
				}()
			}
		}
	}
}

// Close shuts Raft down and closes the log; it is safe to call more than once and concurrently with
// Run, which then returns.
func (q *Quorum) Close() error {
	q.closeMu.Lock()
	defer q.closeMu.Unlock()
	select {
	case <-q.closed:
		return q.stopErr
	default:
	}
	q.stopErr = q.closeResources()
	close(q.closed)
	return q.stopErr
}

func (q *Quorum) closeResources() error {
	var errs []error
	if q.raft != nil {
		errs = append(errs, q.raft.Shutdown().Error())
	}
	if q.trans != nil {
		q.trans.CloseStreams() // pooled outgoing connections
	}
	if q.stream != nil {
		q.stream.Close() // also the connections raft accepted, which it leaves open
	}
	if q.store != nil {
		errs = append(errs, q.store.Close())
	}
	return errors.Join(errs...)
}

// Image returns the current metadata image. It never blocks.
func (q *Quorum) Image() *Image { return q.fsm.image() }

// Changed returns a channel closed when the image is next replaced. To wait for a condition, take the
// channel before looking at the image: `ch := q.Changed(); if !cond(q.Image()) { <-ch }`.
func (q *Quorum) Changed() <-chan struct{} { return q.fsm.state.Load().changed }

// IsController reports whether this node is the active controller: the Raft leader, with every entry
// of earlier terms applied.
func (q *Quorum) IsController() bool { return q.isCtl.Load() }

// ControllerID returns the node ID of the Raft leader as this node knows it, or -1 if unknown.
func (q *Quorum) ControllerID() int32 {
	_, id := q.raft.LeaderWithID()
	n, err := strconv.ParseInt(string(id), 10, 32)
	if id == "" || err != nil {
		return -1
	}
	return int32(n)
}

// WaitApplied waits until the image includes log index index, ctx is done or the quorum closes.
func (q *Quorum) WaitApplied(ctx context.Context, index uint64) error {
	for {
		ch := q.Changed()
		if q.Image().Index >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-q.closed:
			return ErrClosed
		}
	}
}

// streamLayer is raft's TCP stream layer, advertising the voter address and closing the connections
// it accepted when closed (raft's own leaves them to the peer), so a stopped node is really gone.
type streamLayer struct {
	net.Listener
	advertise net.Addr

	tls, dialTLS *tls.Config // nil: plain TCP

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	// onLost is called when an accepted connection is closed by the other side.
	onLost func()
	// onJoin serves a join request (join.go) on an accepted connection whose first byte is
	// joinMagic; r reads the request after that byte.
	onJoin func(c net.Conn, r io.Reader)
}

func newStreamLayer(cfg Config) (*streamLayer, error) {
	adv, err := net.ResolveTCPAddr("tcp", cfg.raftAddr())
	if err != nil {
		return nil, fmt.Errorf("metadata: controller address %q: %w", cfg.raftAddr(), err)
	}
	l := cfg.Listener
	if l == nil {
		listen := cfg.Listen
		if listen == "" {
			listen = cfg.voterAddr()
		}
		if l, err = net.Listen("tcp", listen); err != nil {
			return nil, fmt.Errorf("metadata: controller listener: %w", err)
		}
	}
	return &streamLayer{Listener: l, advertise: adv, conns: map[net.Conn]struct{}{}, tls: cfg.TLS, dialTLS: cfg.DialTLS}, nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.conns[c] = struct{}{}
	if s.tls != nil {
		// The handshake runs on raft's goroutine for this connection, at its first read.
		return &trackedConn{Conn: tls.Server(c, s.tls), raw: c, s: s}, nil
	}
	return &trackedConn{Conn: c, raw: c, s: s}, nil
}

func (s *streamLayer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	return s.Listener.Close()
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.dialTLS == nil {
		return net.DialTimeout("tcp", string(addr), timeout)
	}
	cfg := s.dialTLS.Clone()
	if host, _, err := net.SplitHostPort(string(addr)); err == nil && cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), cfg)
}

type trackedConn struct {
	net.Conn
	raw net.Conn // the TCP connection under a TLS one
	s   *streamLayer
	// started is set once the first byte was read (only raft's goroutine reads).
	started bool
}

// Read reports a connection closed by the other side to the stream layer's onLost. The first byte
// of an accepted connection tells a join request (join.go) from Raft's RPCs: a join request is
// served here, on raft's goroutine for the connection, which then sees the connection end.
func (c *trackedConn) Read(p []byte) (int, error) {
	if !c.started && c.s.onJoin != nil && len(p) > 0 {
		c.started = true
		n, err := c.Conn.Read(p)
		if n > 0 && p[0] == joinMagic {
			c.s.onJoin(c.Conn, io.MultiReader(bytes.NewReader(slices.Clone(p[1:n])), c.Conn))
			return 0, io.EOF
		}
		if err != nil && lostConn(err) && c.s.onLost != nil {
			c.s.onLost()
		}
		return n, err
	}
	n, err := c.Conn.Read(p)
	if err != nil && lostConn(err) && c.s.onLost != nil {
		c.s.onLost()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c.raw)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// RaftStats is the Raft state of this voter for monitoring: its state (Leader,
// Follower, Candidate, Shutdown), term, and last log, commit and applied indexes.
type RaftStats struct {
	State                                         string
	Term, LastLogIndex, CommitIndex, AppliedIndex uint64
}

// Stats reads this voter's Raft state.
func (q *Quorum) Stats() RaftStats {
	st := q.raft.Stats()
	num := func(k string) uint64 {
		v, _ := strconv.ParseUint(st[k], 10, 64)
		return v
	}
	return RaftStats{
		State:        q.raft.State().String(),
		Term:         num("term"),
		LastLogIndex: num("last_log_index"),
		CommitIndex:  num("commit_index"),
		AppliedIndex: num("applied_index"),
	}
}
