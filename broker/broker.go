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
	"sync"
	"time"

	"github.com/sluicemq/sluice/broker/group"
	"github.com/sluicemq/sluice/broker/storage"
)

// Broker is one Sluice broker. Create it with New, serve with Run.
//
// Lock order: Broker.mu before partition.mu; the group coordinator's locks are never
// held while calling into the Broker except through its Store, which only takes
// partition-level locks.
type Broker struct {
	cfg    Config
	logger *slog.Logger
	ln     net.Listener
	flush  storage.FlushPolicy

	mu       sync.RWMutex
	topics   map[string]*topic
	topicIDs map[[16]byte]*topic
	meta     *metaStore

	groups *group.Coordinator
	pids   *producerIDs

	connMu sync.Mutex
	conns  map[*conn]struct{}
	connWG sync.WaitGroup
}

// New opens the data directory, recovers every partition log and binds the
// listener. Nothing is served until Run.
func New(cfg Config, logger *slog.Logger) (*Broker, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	flush, err := storage.ParseFlushPolicy(cfg.Flush)
	if err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("log.dir: %w", err)
	}
	b := &Broker{
		cfg:      cfg,
		logger:   logger,
		flush:    flush,
		topics:   make(map[string]*topic),
		topicIDs: make(map[[16]byte]*topic),
		conns:    make(map[*conn]struct{}),
	}
	if b.pids, err = openProducerIDs(cfg.DataDir); err != nil {
		return nil, err
	}
	if b.meta, err = openMetaStore(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := b.loadTopics(); err != nil {
		b.closeLogs()
		return nil, err
	}
	if err := b.ensureOffsetsTopic(); err != nil {
		b.closeLogs()
		return nil, err
	}
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
	b.groups.SetTopicChecker(func(topic string, partition int32) bool { return b.partitionOf(topic, partition) != nil })
	for p := range cfg.OffsetsTopicNumPartitions {
		if err := b.groups.LoadPartition(context.Background(), p); err != nil {
			b.closeLogs()
			return nil, fmt.Errorf("loading __consumer_offsets-%d: %w", p, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.closeLogs()
		return nil, fmt.Errorf("listen: %w", err)
	}
	b.ln = ln
	return b, nil
}

// Addr is the address the Kafka listener is bound to.
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// advertisedAddr is the host and port clients are told to connect to.
func (b *Broker) advertisedAddr() (string, int32) {
	addr := b.cfg.AdvertisedListen
	if addr == "" {
		addr = b.Addr()
	}
	host, port, _ := net.SplitHostPort(addr)
	var p int32
	fmt.Sscan(port, &p)
	return host, p
}

// Run serves Kafka clients until ctx is done, then stops accepting, closes every
// connection, flushes and closes every partition log.
func (b *Broker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	groupErr := make(chan error, 1)
	wg.Add(2)
	go func() { defer wg.Done(); groupErr <- b.groups.Run(ctx) }()
	go func() { defer wg.Done(); b.maintain(ctx) }()

	var pprofSrv *http.Server
	if b.cfg.PprofListen != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pprofSrv = &http.Server{Addr: b.cfg.PprofListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := pprofSrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.logger.Warn("pprof listener failed", "err", err)
			}
		}()
	}

	go func() {
		<-ctx.Done()
		b.ln.Close()
	}()
	host, port := b.advertisedAddr()
	b.logger.Info("broker ready", "node_id", b.cfg.NodeID, "listen", b.Addr(),
		"advertised", net.JoinHostPort(host, fmt.Sprint(port)), "data_dir", b.cfg.DataDir, "flush", b.cfg.Flush)

	var acceptErr error
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("accept: %w", err)
			}
			break
		}
		b.serve(ctx, nc)
	}
	cancel()
	if pprofSrv != nil {
		pprofSrv.Close()
	}
	b.closeConns()
	b.connWG.Wait()
	wg.Wait()
	b.groups.Close()
	closeErr := b.closeLogs()
	if err := <-groupErr; err != nil && !errors.Is(err, context.Canceled) && acceptErr == nil {
		acceptErr = err
	}
	b.logger.Info("broker stopped", "node_id", b.cfg.NodeID)
	return errors.Join(acceptErr, closeErr)
}

// maintain runs periodic flushes (flush=interval) and retention/compaction.
func (b *Broker) maintain(ctx context.Context) {
	flushEvery := time.Duration(b.cfg.FlushIntervalMs) * time.Millisecond
	retainEvery := time.Duration(b.cfg.LogRetentionCheckIntervalMs) * time.Millisecond
	flushT := time.NewTicker(flushEvery)
	retainT := time.NewTicker(retainEvery)
	defer flushT.Stop()
	defer retainT.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flushT.C:
			if b.flush != storage.FlushInterval {
				continue
			}
			for _, p := range b.allPartitions() {
				if err := p.log.Flush(); err != nil && !errors.Is(err, storage.ErrClosed) {
					b.logger.Warn("flush failed", "topic", p.topic.name, "partition", p.index, "err", err)
				}
			}
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

func (b *Broker) allPartitions() []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var ps []*partition
	for _, t := range b.topics {
		ps = append(ps, t.partitions...)
	}
	return ps
}

func (b *Broker) closeLogs() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if err := p.log.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
				errs = append(errs, fmt.Errorf("closing %s-%d: %w", t.name, p.index, err))
			}
		}
	}
	return errors.Join(errs...)
}
