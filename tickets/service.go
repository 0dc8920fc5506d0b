package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/sluicemq/sluice/tickets/notify"
	"github.com/sluicemq/sluice/tickets/silences"
	"github.com/sluicemq/sluice/tickets/sla"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Service is the running ticket service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	reg      *prometheus.Registry
	capturer *snapshot.Capturer
	silences *silences.Client // nil without alerting_url
	notifier *notify.Notifier
	handler  http.Handler
	pages    pages

	// GeneratedAdminPassword is the first admin's password when New generated
	// it; the caller prints it once.
	GeneratedAdminPassword string

	intakeMu  sync.Mutex // serializes webhook notifications
	snapQueue chan uint
	pageQueue chan pendingPage
	workers   sync.WaitGroup

	ready chan struct{}
	addr  string

	webhookTotal *prometheus.CounterVec
	snapshotDur  prometheus.Histogram
	httpDur      *prometheus.HistogramVec
}

// Options are the parts of a Service that tests replace.
type Options struct {
	// Now is the clock, time.Now by default.
	Now func() time.Time
	// Registry receives the service's metrics; a new one by default.
	Registry *prometheus.Registry
}

// New opens the database, applies migrations and creates the first admin if
// there is no user. cfg must have passed Validate.
func New(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{Database: cfg.Database, DataDir: cfg.DataDir, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: logger, store: st, reg: opts.Registry, capturer: snapshot.NewCapturer(cfg.Snapshot),
		snapQueue: make(chan uint, 256), pageQueue: make(chan pendingPage, 1024), ready: make(chan struct{})}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if cfg.AlertingURL != "" {
		if s.silences, err = silences.New(cfg.AlertingURL, nil); err != nil {
			st.Close()
			return nil, err
		}
	}
	storePath := ""
	if cfg.DataDir != "" {
		storePath = filepath.Join(cfg.DataDir, "slack-messages.json")
	}
	if s.notifier, err = notify.New(cfg.Notifications, notify.Options{StorePath: storePath,
		Logger: logger.With("component", "notify"), Registerer: s.reg}); err != nil {
		st.Close()
		return nil, fmt.Errorf("notifications: %w", err)
	}
	pw := cfg.AdminPassword
	if pw == "" {
		pw = store.RandomPassword()
	}
	created, err := st.EnsureAdmin(ctx, pw)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("first admin: %w", err)
	}
	if created && cfg.AdminPassword == "" {
		s.GeneratedAdminPassword = pw
	}
	f := promauto.With(s.reg)
	s.webhookTotal = f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tickets_webhook_notifications_total",
		Help: "Alertmanager webhook notifications received, by result (ok, invalid, error)."}, []string{"result"})
	s.snapshotDur = f.NewHistogram(prometheus.HistogramOpts{Name: "sluice_tickets_snapshot_duration_seconds",
		Help: "Time to capture a fault snapshot.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)})
	s.httpDur = f.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_tickets_http_request_duration_seconds",
		Help: "HTTP requests served, by route and status code.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route", "code"})
	s.reg.MustRegister(sla.NewCollector(st, cfg.SLATargets, cfg.SLAWindow))
	if s.pages, err = loadPages(); err != nil {
		st.Close()
		return nil, fmt.Errorf("web UI templates: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// Store is the service's database.
func (s *Service) Store() *store.Store { return s.store }

// Handler is the service's HTTP handler: API, UI and /metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// Ready is closed once Run listens.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Addr is the address Run listens on, valid after Ready.
func (s *Service) Addr() string { return s.addr }

// Run serves HTTP and captures snapshots until ctx ends, then shuts down and
// closes the database.
func (s *Service) Run(ctx context.Context) error {
	defer s.store.Close()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return err
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	wctx, stopWorkers := context.WithCancel(ctx)
	for range 2 {
		s.workers.Add(1)
		go s.snapshotWorker(wctx)
	}
	s.workers.Add(1)
	go func() {
		defer s.workers.Done()
		s.notifier.Run(wctx)
	}()
	if s.notifier.Enabled() {
		s.workers.Add(1)
		go s.pageWorker(wctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("tickets service listening", "addr", s.addr)
	close(s.ready)
	select {
	case <-ctx.Done():
		err = nil
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shutdownCtx)
	stopWorkers()
	s.workers.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases the database of a Service whose Run was never called.
func (s *Service) Close() error { return s.store.Close() }

func (s *Service) snapshotWorker(ctx context.Context) {
	defer s.workers.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.snapQueue:
			if _, err := s.captureSnapshot(ctx, id, "incident opened"); err != nil && ctx.Err() == nil {
				s.log.Warn("fault snapshot failed", "incident", id, "err", err)
			}
		}
	}
}

// enqueueSnapshot asks for a snapshot of a newly opened incident without
// blocking the webhook; when the queue is full the incident goes without and
// an operator can capture one from the UI or API.
func (s *Service) enqueueSnapshot(id uint) {
	select {
	case s.snapQueue <- id:
	default:
		s.log.Warn("snapshot queue full; incident has no automatic snapshot", "incident", id)
	}
}

func (s *Service) captureSnapshot(ctx context.Context, id uint, reason string) (*store.Snapshot, error) {
	inc, err := s.store.GetIncident(ctx, id)
	if err != nil {
		return nil, err
	}
	detail, err := s.store.IncidentDetail(ctx, id)
	if err != nil {
		return nil, err
	}
	target := snapshot.Target{IncidentID: inc.ID, Title: inc.Title, Cluster: inc.Cluster, Brokers: inc.Brokers,
		Topics: inc.Topics, Groups: inc.Groups, ImpactStart: inc.ImpactStartAt}
	for _, a := range detail.Alarms {
		if a.GeneratorURL != "" {
			target.GeneratorURLs = append(target.GeneratorURLs, a.GeneratorURL)
		}
	}
	start := time.Now()
	snap := s.capturer.Capture(ctx, target, s.store.Now())
	s.snapshotDur.Observe(time.Since(start).Seconds())
	data, err := json.Marshal(snap)
	if err != nil {
		return nil, err
	}
	rec := &store.Snapshot{IncidentID: id, CapturedAt: snap.CapturedAt, Reason: reason, Diagnosis: snap.Diagnosis, Data: string(data)}
	if err := s.store.SaveSnapshot(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}
