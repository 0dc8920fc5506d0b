// Package broker is Sluice's Kafka-wire-compatible broker: the listener, one file
// per Kafka API (NN_name.go), topics and partitions over the storage package, and
// the group coordinator over __consumer_offsets.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/storage"
	"github.com/sluicemq/sluice/broker/txn"
	"github.com/sluicemq/sluice/internal/weblisten"
)

// Broker is one Sluice broker. Create it with New, serve with Run.
//
// Lock order: Broker.mu before partition.mu before fetcher.mu; controllerLink.mu
// and fetchers.mu are never held while taking another. The group coordinator's
// locks are never held while calling into the Broker except through its Store,
// which only takes partition-level locks.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	ln     net.Listener // listeners[0]'s
	flush  storage.FlushPolicy

	listeners []*listener // listener.go
	sec       *security   // auth.go

	dirLock *dirLock // log.dir held exclusively from New to the end of Run

	quorum *metadata.Quorum
	ctl    controllerLink

	registry *prometheus.Registry
	metrics  *brokerMetrics
	logs     *logRing // recent WARN and ERROR lines

	mu       sync.RWMutex
	topics   map[string]*topic
	topicIDs map[[16]byte]*topic

	hwCheckpoint map[string]int64 // read at start

	dynamic dynamicConfigState // dynamic broker configs from the metadata log (dynconfig.go)

	// appliedIndex is the metadata index applyImage last applied: what this
	// broker reports to the controller, which waits for new partitions' leaders
	// to have applied them before it answers CreateTopics.
	appliedIndex atomic.Uint64
	// heartbeatNow asks runHeartbeats for a heartbeat at once (new leaderships).
	heartbeatNow chan struct{}

	groups *group.Coordinator
	pids   producerIDs
	// txns is the transaction coordinator; txnMarkers sends its markers (txn_topic.go).
	txns       *txn.Coordinator
	txnMarkers *txnMarkerWriter
	fetchers   fetchers
	// throttles are the replication throttles (throttle.go).
	throttles replicationThrottles
	// balanceMetrics are the reassignment and balance metrics (balance.go).
	balanceMetrics *balanceMetrics

	appliedMu sync.Mutex
	applied   chan struct{} // closed and replaced after each applyImage

	adminAddr   string
	metricsAddr string

	ready     chan struct{}
	readyOnce sync.Once

	connMu  sync.Mutex
	conns   map[*conn]struct{}
	connSeq atomic.Uint64
	connWG  sync.WaitGroup
	// isrWG tracks the ISR changes a follower's fetch starts (changeISR); Run
	// waits for them after the connections and fetchers that start them.
	isrWG sync.WaitGroup

	// Limits and quotas (limits.go, quota.go).
	reqPool   *requestPool
	connLimit *connLimiter
	quotas    *quotaManager
	panics    *prometheus.CounterVec
	// beforeHandle, set by tests only, runs before every request's handler.
	beforeHandle func(*conn, kmsg.Request)
	authz        authorizerState
	// tenants enforces and meters tenants and their plans (tenant.go).
	tenants *tenantManager
}

// New opens the data directory and the metadata quorum, recovers every partition
// log this broker holds and binds the listener. Nothing is served until Run.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ring := &logRing{}
	logger = slog.New(&ringHandler{next: logger.Handler(), ring: ring})
	flush, err := storage.ParseFlushPolicy(cfg.Flush)
	if err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("log.dir: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.release()
		}
	}()
	b := &Broker{
		dirLock:  lock,
		cfg:      cfg,
		logger:   logger,
		logs:     ring,
		flush:    flush,
		topics:   make(map[string]*topic),
		topicIDs: make(map[[16]byte]*topic),
		conns:    make(map[*conn]struct{}),
		ready:    make(chan struct{}),
		applied:  make(chan struct{}),

		heartbeatNow: make(chan struct{}, 1),
	}
	b.authz.cfg = acl.Config{SuperUsers: cfg.superUsers(), AllowIfNoACL: cfg.AllowEveryoneIfNoACLFound}
	b.ctl = controllerLink{b: b, incarnation: newIncarnation(), peers: map[int32]*peer{}}
	// The broker's own registry, never the global one, so brokers can share a process.
	b.registry = prometheus.NewRegistry()
	b.metrics = newBrokerMetrics(b, b.registry)
	b.registry.MustRegister(&quorumCollector{b})        // nodes.go
	b.balanceMetrics = newBalanceMetrics(b, b.registry) // balance.go
	b.initLimits()
	b.tenants = newTenantManager(b, b.registry)
	b.fetchers.init(b)
	if b.hwCheckpoint, err = loadHWCheckpoint(cfg.DataDir); err != nil {
		return nil, err
	}
	specs, err := cfg.listenerSpecs()
	if err != nil {
		return nil, err
	}
	if b.sec, err = newSecurity(&cfg, b.registry, specs); err != nil {
		return nil, err
	}
	initialSCRAM, err := initialSCRAM(cfg.InitialSCRAMUsers)
	if err != nil {
		return nil, err
	}
	if err := b.bindListeners(specs); err != nil {
		return nil, err
	}
	b.ln = b.listeners[0].ln
	ln := closerFunc(b.closeListeners)

	var voters []metadata.Voter
	if cfg.ControllerQuorumVoters != "" {
		if voters, err = metadata.ParseVoters(cfg.ControllerQuorumVoters); err != nil {
			ln.Close()
			return nil, fmt.Errorf("controller.quorum.voters: %w", err)
		}
	}
	raftServerTLS, raftDialTLS := b.raftTLSConfigs()
	bootstrap, _ := cfg.bootstrapServers()
	if cfg.NodeID, err = resolveNodeID(&cfg, b.joinClient(voters, bootstrap, raftDialTLS)); err != nil {
		ln.Close()
		return nil, err
	}
	b.cfg.NodeID = cfg.NodeID
	b.quorum, err = metadata.Open(metadata.Config{
		NodeID:            cfg.NodeID,
		Listen:            cfg.ControllerListen,
		Voters:            voters,
		Dir:               filepath.Join(cfg.DataDir, "metadata"),
		SessionTimeout:    b.sessionTimeout(),
		BrokerGone:        b.brokerGone,
		DefaultPartitions: cfg.NumPartitions,
		Logger:            logger.With("part", "metadata"),

		InitialScramCredentials: initialSCRAM,
		Listener:                cfg.ControllerListener,
		TLS:                     raftServerTLS,
		DialTLS:                 raftDialTLS,
		// Joining the quorum (nodes.go).
		Bootstrap:      bootstrap,
		NodePrincipals: cfg.BrokerPrincipals,
		PeerPrincipal:  b.raftPeerPrincipal,
		// A controller-only node is reached at its endpoints in the image's controllers.
		ControllerEndpoints: b.controllerOnlyEndpoints(),
		ControllerRole:      cfg.isController(),
		AutoBalance:         b.autoBalanceConfig(), // balance.go
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("metadata quorum: %w", err)
	}
	// Nothing is served before Run; close what New opened if it fails later.

	gcfg := group.DefaultConfig()
	gcfg.NumPartitions = cfg.OffsetsTopicNumPartitions
	gcfg.MinSessionTimeout = time.Duration(cfg.GroupMinSessionTimeoutMs) * time.Millisecond
	gcfg.MaxSessionTimeout = time.Duration(cfg.GroupMaxSessionTimeoutMs) * time.Millisecond
	gcfg.InitialRebalanceDelay = time.Duration(*cfg.GroupInitialRebalanceDelayMs) * time.Millisecond
	if gcfg.InitialRebalanceDelay == 0 {
		gcfg.InitialRebalanceDelay = -1 // the group package reads 0 as "default"
	}
	gcfg.OffsetsRetention = time.Duration(cfg.OffsetsRetentionMinutes) * time.Minute
	gcfg.MaxGroupSize = cfg.GroupMaxSize
	b.groups = group.New(gcfg, offsetsStore{b}, logger.With("part", "group"))
	b.groups.SetTopicChecker(func(topic string, partition int32) bool {
		_, ok := b.quorum.Image().Partition(topic, partition)
		return ok
	})
	b.txns = b.newTxnCoordinator()
	// Open the replicas the last known metadata assigns here, so their logs are
	// recovered before anything is served.
	b.applyImage(context.Background(), b.quorum.Image())
	ok = true
	return b, nil
}

// Addr is the address the Kafka listener is bound to.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// AdminAddr is the address the admin HTTP interface is bound to, once Run serves it;
// empty without admin.listen.
func (b *Broker) AdminAddr() string {
	b.appliedMu.Lock()
	defer b.appliedMu.Unlock()
	return b.adminAddr
}

// MetricsAddr is the address /metrics is served on, once Run serves it; empty
// without metrics.listen.
func (b *Broker) MetricsAddr() string {
	b.appliedMu.Lock()
	defer b.appliedMu.Unlock()
	return b.metricsAddr
}

// Registry is the Prometheus registry holding the broker's metrics.
func (b *Broker) Registry() *prometheus.Registry { return b.registry }

// Ready is closed once the broker is registered with the controller, unfenced, and
// its own metadata image shows that: from then on it can lead partitions, and its
// client listener accepts connections.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// advertisedAddr is the host and port clients are told to connect to.
func (b *Broker) advertisedAddr() (string, int32) {
	return b.listeners[0].advertisedHostPort()
}

// Run serves Kafka clients until ctx is done, then fences itself (so leaderships
// move at once), stops accepting, closes every connection, flushes and closes every
// partition log and the metadata quorum.
func (b *Broker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// metrics.listen and admin.listen serve the same handler; one listener when
	// they name the same address.
	for i, listen := range []string{b.cfg.MetricsListen, b.cfg.AdminListen} {
		if listen == "" || (i == 1 && listen == b.cfg.MetricsListen) {
			continue
		}
		name := "broker metrics and admin"
		if listen != b.cfg.MetricsListen {
			name = "broker admin"
		}
		ln, err := weblisten.Listen(weblisten.Options{Name: name, Address: listen, WebConfigFile: b.cfg.WebConfigFile,
			ConfigField: "web.config.file (--web.config.file)"}, b.logger)
		if err != nil {
			b.txns.Close()
			b.closeLogs()
			b.quorum.Close()
			b.closeListeners()
			b.dirLock.release()
			return fmt.Errorf("http listener %s: %w", listen, err)
		}
		b.appliedMu.Lock()
		if listen == b.cfg.MetricsListen {
			b.metricsAddr = ln.Addr()
		}
		if listen == b.cfg.AdminListen {
			b.adminAddr = ln.Addr()
		}
		b.appliedMu.Unlock()
		srv := &http.Server{Handler: withAdminListener(ln, b.httpHandler()), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := ln.Serve(srv, nil); err != nil {
				b.logger.Warn("http listener failed", "addr", ln.Addr(), "err", err)
			}
		}()
		defer srv.Close()
	}
	quorumCtx, stopQuorum := context.WithCancel(context.Background())
	defer stopQuorum()

	var wg, quorumWG sync.WaitGroup
	errs := make(chan error, 3)
	quorumWG.Add(1)
	go func() { defer quorumWG.Done(); errs <- b.quorum.Run(quorumCtx) }()
	wg.Add(6)
	go func() { defer wg.Done(); errs <- b.txns.Run(ctx) }()
	go func() { defer wg.Done(); b.watchTLS(ctx) }()
	go func() { defer wg.Done(); errs <- b.groups.Run(ctx) }()
	go func() { defer wg.Done(); b.maintain(ctx) }()
	go func() { defer wg.Done(); b.watchMetadata(ctx) }()
	go func() { defer wg.Done(); b.runISRChecks(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); b.tenants.runDiskChecks(ctx) }()
	b.acceptOthers(ctx)
	b.logListeners()
	heartbeatsDone := make(chan struct{})
	if b.cfg.isBroker() {
		go func() { defer close(heartbeatsDone); b.runHeartbeats(ctx) }()
	} else {
		// A controller-only node never registers as a broker: it serves the brokers'
		// controller requests (and admin requests) as soon as it runs.
		close(heartbeatsDone)
		b.readyOnce.Do(func() { close(b.ready) })
	}
	b.fetchers.start(ctx)

	var pprofSrv *http.Server
	if b.cfg.PprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		// Profiles show memory contents and cost CPU: treated like state-changing endpoints,
		// loopback only without authentication.
		ln, err := weblisten.Listen(weblisten.Options{Name: "broker pprof", Address: b.cfg.PprofListen, WebConfigFile: b.cfg.WebConfigFile,
			ConfigField: "web.config.file (--web.config.file)", StateChanging: true}, b.logger)
		if err != nil {
			b.logger.Warn("pprof listener not started", "err", err)
		} else {
			pprofSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := ln.Serve(pprofSrv, nil); err != nil {
					b.logger.Warn("pprof listener failed", "err", err)
				}
			}()
		}
	}

	go func() {
		<-ctx.Done()
		b.closeListeners()
	}()
	go func() {
		select {
		case <-b.ready:
			host, port := b.advertisedAddr()
			if !b.cfg.isBroker() {
				b.logger.Info("controller ready", "node_id", b.cfg.NodeID, "listen", b.Addr(), "data_dir", b.cfg.DataDir, "process_roles", "controller")
				return
			}
			b.logger.Info("broker ready", "node_id", b.cfg.NodeID, "listen", b.Addr(),
				"advertised", net.JoinHostPort(host, strconv.Itoa(int(port))), "data_dir", b.cfg.DataDir, "flush", b.cfg.Flush)
		case <-ctx.Done():
		}
	}()

	var acceptErr error
	for b.waitReady(ctx) {
		nc, err := b.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("accept: %w", err)
			}
			break
		}
		if b.connLimit.admit(ctx, nc, b.listeners[0].brokerOnly()) {
			b.serve(ctx, nc, b.listeners[0])
		}
	}
	cancel()
	<-heartbeatsDone // the last heartbeat asked to be fenced
	if pprofSrv != nil {
		pprofSrv.Close()
	}
	b.closeConns()
	b.connWG.Wait()
	b.fetchers.wait()
	wg.Wait()
	b.isrWG.Wait()
	b.ctl.closePeers()
	b.groups.Close()
	b.txns.Close()
	b.txnMarkers.close()
	if err := b.writeHWCheckpoint(); err != nil {
		b.logger.Warn("writing high watermark checkpoint", "err", err)
	}
	closeErr := b.closeLogs()
	stopQuorum()
	quorumWG.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) && acceptErr == nil {
			acceptErr = err
		}
	}
	b.dirLock.release()
	b.logger.Info("broker stopped", "node_id", b.cfg.NodeID)
	return errors.Join(acceptErr, closeErr)
}

// watchMetadata applies every new metadata image to the local replicas.
func (b *Broker) watchMetadata(ctx context.Context) {
	var seen uint64 = b.quorum.Image().Index
	for {
		changed := b.quorum.Changed()
		img := b.quorum.Image()
		b.applyImage(ctx, img)
		if b.quorum.IsController() {
			for _, e := range img.EventsSince(seen) {
				switch e.Type {
				case metadata.EventLeaderElected:
					b.metrics.leaderElections.WithLabelValues("clean").Inc()
				case metadata.EventUncleanLeaderElected:
					b.metrics.leaderElections.WithLabelValues("unclean").Inc()
				}
			}
		}
		seen = img.Index
		b.maybeCreateOffsetsTopic(ctx)
		b.maybeCreateTxnTopic(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// maintain runs periodic flushes (flush=interval) and retention/compaction.
func (b *Broker) maintain(ctx context.Context) {
	flushEvery := time.Duration(b.cfg.FlushIntervalMs) * time.Millisecond
	b.watchReplicationThrottles() // throttle.go
	b.watchAutoBalance()          // balance.go
	// log.flush.interval.ms is a dynamic broker config.
	flushChanged := make(chan time.Duration, 1)
	b.onBrokerConfigChange([]string{"log.flush.interval.ms"}, func(v map[string]string) {
		ms, err := strconv.ParseInt(v["log.flush.interval.ms"], 10, 64)
		if err != nil || ms <= 0 {
			return
		}
		select {
		case <-flushChanged:
		default:
		}
		flushChanged <- time.Duration(ms) * time.Millisecond
	})
	retainEvery := time.Duration(b.cfg.LogRetentionCheckIntervalMs) * time.Millisecond
	flushT := time.NewTicker(flushEvery)
	retainT := time.NewTicker(retainEvery)
	idleT := time.NewTicker(5 * time.Second)
	defer idleT.Stop()
	defer flushT.Stop()
	defer retainT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-flushChanged:
			if d != flushEvery {
				flushEvery = d
				flushT.Reset(d)
			}
		case <-flushT.C:
			if err := b.writeHWCheckpoint(); err != nil {
				b.logger.Warn("writing high watermark checkpoint", "err", err)
			}
			if b.flush != storage.FlushInterval {
				continue
			}
			for _, p := range b.allPartitions() {
				if err := p.log.Flush(); err != nil && !errors.Is(err, storage.ErrClosed) {
					b.logger.Warn("flush failed", "topic", p.topic.name, "partition", p.index, "err", err)
				}
			}
		case now := <-idleT.C:
			b.metrics.updateIdle(now)
		case now := <-retainT.C:
			b.maintainLogs(now)
		}
	}
}

// maintainLogs applies retention and compaction to every partition once.
func (b *Broker) maintainLogs(now time.Time) {
	for _, p := range b.allPartitions() {
		if err := p.log.Maintain(now); err != nil && !errors.Is(err, storage.ErrClosed) {
			b.logger.Warn("log maintenance failed", "topic", p.topic.name, "partition", p.index, "err", err)
		}
	}
}

func (b *Broker) closeLogs() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if p == nil {
				continue
			}
			if err := p.log.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				errs = append(errs, fmt.Errorf("closing %s-%d: %w", t.name, p.index, err))
			}
		}
	}
	return errors.Join(errs...)
}
