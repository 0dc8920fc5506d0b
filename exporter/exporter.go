// Package exporter is Sluice's sidecar exporter: it reads a Kafka-compatible
// cluster through the Kafka protocol only (franz-go kadm), in a background
// loop, and serves the result at /metrics under danielqsj/kafka_exporter's
// metric names, plus honest consumer lag: never negative, uncommitted
// partitions marked instead of -1, lag in seconds from record timestamps, a
// Burrow-style status per group partition, and the age and errors of the
// collection so stale data alerts instead of looking like zeros.
//
// A scrape never waits on the cluster: it is answered from the snapshot of
// the last completed collection, which is swapped atomically.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/weblisten"
)

// Exporter collects cluster and consumer group state in the background and
// serves it as Prometheus metrics.
type Exporter struct {
	cfg     Config
	logger  *slog.Logger
	reg     *prometheus.Registry
	kcl     *kgo.Client
	adm     *kadm.Client
	topicRe *regexp.Regexp
	groupRe *regexp.Regexp
	started time.Time

	snap        atomic.Pointer[snapshot]
	snapReg     *prometheus.Registry // the snapshot collector alone
	page        atomic.Pointer[page] // snapReg encoded after each collection
	lastSuccess atomic.Int64         // Unix nanoseconds of the last completed collection, 0 before

	// collectMu serializes collections and guards what they carry from one
	// to the next.
	collectMu  sync.Mutex
	cycle      uint64
	windows    map[groupPartitionKey]*window
	timestamps *timestampCache

	up          prometheus.Gauge
	lastTime    prometheus.Gauge
	duration    prometheus.Gauge
	errorsTotal *prometheus.CounterVec
	collections prometheus.Counter
	lagClamped  prometheus.Counter

	ready     chan struct{}
	addr      atomic.Value // string, once listening
	closeOnce sync.Once
}

// New validates cfg and returns an Exporter. It does not contact the cluster;
// Run or Collect do. Call Close if Run is never called.
func New(cfg Config, logger *slog.Logger) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	seeds := make([]string, len(cfg.Bootstrap))
	for i, b := range cfg.Bootstrap {
		seeds[i] = strings.TrimSpace(b)
	}
	secOpts, err := cfg.Security.Opts()
	if err != nil {
		return nil, fmt.Errorf("exporter config: %w", err)
	}
	kcl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(min(5*time.Second, cfg.CollectTimeout)),
		kgo.RetryTimeout(cfg.CollectTimeout),
		kgo.MetadataMinAge(min(time.Second, cfg.Interval)),
	}, secOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("exporter: kafka client: %w", err)
	}
	e := &Exporter{
		cfg:        cfg,
		logger:     logger,
		reg:        reg,
		kcl:        kcl,
		adm:        kadm.NewClient(kcl),
		topicRe:    regexp.MustCompile(cfg.TopicFilter),
		groupRe:    regexp.MustCompile(cfg.GroupFilter),
		started:    time.Now(),
		windows:    map[groupPartitionKey]*window{},
		timestamps: newTimestampCache(),
		ready:      make(chan struct{}),
	}
	e.up = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_exporter_up",
		Help: "1 if the last collection completed, 0 if it failed (the cluster metadata or end offsets could not be read); metrics then come from the last completed collection.",
	})
	e.lastTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_exporter_last_collection_timestamp_seconds",
		Help: "Unix time of the last completed collection, which the kafka_* and sluice_consumergroup_* metrics come from; 0 before the first.",
	})
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sluice_exporter_collection_age_seconds",
		Help: "Seconds since the last completed collection, computed at scrape time; before the first, seconds since the exporter started.",
	}, func() float64 {
		last := e.lastSuccess.Load()
		if last == 0 {
			return time.Since(e.started).Seconds()
		}
		return time.Since(time.Unix(0, last)).Seconds()
	})
	e.duration = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sluice_exporter_collection_duration_seconds",
		Help: "Duration of the last collection, completed or failed.",
	})
	e.errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_exporter_collection_errors_total",
		Help: "Errors met by collections, by stage: metadata, list_groups, describe_groups, fetch_offsets, start_offsets, end_offsets, lag_time, stable_offsets.",
	}, []string{"stage"})
	for _, st := range stages {
		e.errorsTotal.WithLabelValues(st)
	}
	e.collections = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_exporter_collections_total",
		Help: "Collections attempted.",
	})
	e.lagClamped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sluice_exporter_lag_clamped_total",
		Help: "Group partitions whose committed offset was beyond the end offset (a truncated log or a commit past the end), reported as lag 0.",
	})
	e.snapReg = prometheus.NewPedanticRegistry()
	e.snapReg.MustRegister(snapshotCollector{load: e.snap.Load})
	for _, c := range []prometheus.Collector{e.up, e.lastTime, age, e.duration, e.errorsTotal, e.collections, e.lagClamped} {
		if err := e.reg.Register(c); err != nil {
			kcl.Close()
			return nil, fmt.Errorf("exporter: register metrics: %w", err)
		}
	}
	return e, nil
}

// Collect runs one collection now and, if it completes, publishes its
// snapshot and the /metrics page encoded from it. Collections are serialized; Run calls Collect every Interval.
func (e *Exporter) Collect(ctx context.Context) error {
	e.collectMu.Lock()
	defer e.collectMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.CollectTimeout)
	defer cancel()
	start := time.Now()
	e.collections.Inc()
	s, err := e.collect(ctx)
	e.duration.Set(time.Since(start).Seconds())
	if err != nil {
		e.up.Set(0)
		return err
	}
	e.snap.Store(s)
	pg, err := buildPage(e.snapReg)
	if err != nil {
		// A bug, not the cluster: the snapshot is served in other formats.
		e.logger.Error("encoding the metrics page", "err", err)
	}
	e.page.Store(pg)
	e.lastSuccess.Store(s.at.UnixNano())
	e.lastTime.Set(float64(s.at.UnixNano()) / 1e9)
	e.up.Set(1)
	return nil
}

func (e *Exporter) stageError(stage string, err error) {
	e.errorsTotal.WithLabelValues(stage).Inc()
	e.logger.Warn("collection error", "stage", stage, "err", err)
}

// Handler serves /metrics, /healthz (the process is alive) and /readyz (a
// collection has completed, so /metrics has cluster data).
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", e.serveMetrics)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if e.snap.Load() == nil {
			http.Error(w, "no completed collection yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Run serves Handler on cfg.Listen and collects every Interval until ctx
// ends, then stops the server and closes the Kafka client. A failed
// collection is logged and counted; it does not end Run.
func (e *Exporter) Run(ctx context.Context) error {
	defer e.Close()
	ln, err := weblisten.Listen(weblisten.Options{Name: "exporter", Address: e.cfg.Listen, WebConfigFile: e.cfg.WebConfigFile}, e.logger)
	if err != nil {
		return fmt.Errorf("exporter: %w", err)
	}
	e.addr.Store(ln.Addr())
	close(e.ready)
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		err := ln.Serve(srv, nil)
		if err == nil {
			err = http.ErrServerClosed
		}
		serveErr <- err
	}()
	e.logger.Info("exporter collecting", "addr", ln.Addr(), "bootstrap", e.cfg.Bootstrap, "interval", e.cfg.Interval)

	ticker := time.NewTicker(e.cfg.Interval)
	defer ticker.Stop()
	for {
		if err := e.Collect(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("collection failed", "err", err)
		}
		select {
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := srv.Shutdown(shutdownCtx)
			<-serveErr
			return err
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			return fmt.Errorf("exporter: serve: %w", err)
		case <-ticker.C:
		}
	}
}

// Ready is closed once Run listens.
func (e *Exporter) Ready() <-chan struct{} { return e.ready }

// Addr is the address Run listens on, once Ready is closed.
func (e *Exporter) Addr() string {
	a, _ := e.addr.Load().(string)
	return a
}

// Close closes the Kafka client. Run calls it on return.
func (e *Exporter) Close() { e.closeOnce.Do(e.kcl.Close) }
