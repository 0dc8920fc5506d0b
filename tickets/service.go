package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/internal/weblisten"
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
	meter    *meter      // nil without a Prometheus to meter from
	tenants  tenantAdmin // nil without broker admin URLs
	handler  http.Handler
	pages    pages
	logins   *loginThrottle
	cluster  clusterCache

	// GeneratedAdminPassword is the first admin's password when New generated
	// it; the caller prints it once.
	GeneratedAdminPassword string

	intakeMu   sync.Mutex // serializes webhook notifications
	outboxKick chan struct{}
	snapKick   chan struct{}
	workers    sync.WaitGroup

	ready chan struct{}
	ln    *weblisten.Listener
	addr  string

	webhookTotal *prometheus.CounterVec
	snapshotDur  prometheus.Histogram
	httpDur      *prometheus.HistogramVec
}

// Options are the parts of a Service that tests replace.
type Options struct {
	// Now is the clock, time.Now by default.
	Now func() time.Time

	// tenants replaces the brokers' tenant API in unit tests.
	tenants tenantAdmin
}

// New opens the database, applies migrations, binds the listen address and,
// when all that worked, creates the first admin if there is no user.
func New(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) (*Service, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := refuseExampleKafkaPassword(cfg.Snapshot.KafkaSecurity.SASLPasswordFile, cfg.Snapshot.KafkaSecurity.SASLPasswordEnv); err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, store.Options{Database: cfg.Database, DataDir: cfg.DataDir, Now: opts.Now})
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: logger, store: st, reg: prometheus.NewRegistry(), capturer: snapshot.NewCapturer(cfg.Snapshot),
		outboxKick: make(chan struct{}, 1), snapKick: make(chan struct{}, 1), ready: make(chan struct{}), logins: newLoginThrottle()}
	if cfg.AlertingURL != "" {
		hc, err := commoncfg.NewClientFromConfig(cfg.AlertingHTTPConfig, "sluice_tickets_alerting")
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("alerting_http_config: %w", err)
		}
		hc.Timeout = 10 * time.Second
		if s.silences, err = silences.New(cfg.AlertingURL, hc); err != nil {
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
	s.tenants = opts.tenants
	if s.tenants == nil && len(cfg.Snapshot.AdminURLs) > 0 {
		if s.tenants, err = newHTTPTenantAdmin(cfg.Snapshot.AdminURLs, cfg.Snapshot.AdminHTTPConfig); err != nil {
			st.Close()
			return nil, err
		}
	}
	if cfg.Metering.PrometheusURL != "" {
		if s.meter, err = newMeter(cfg.Metering, st, logger.With("component", "metering"), s.reg); err != nil {
			st.Close()
			return nil, err
		}
	}
	f := promauto.With(s.reg)
	s.webhookTotal = f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tickets_webhook_notifications_total",
		Help: "Alertmanager webhook notifications received, by result (ok, invalid, error)."}, []string{"result"})
	s.snapshotDur = f.NewHistogram(prometheus.HistogramOpts{Name: "sluice_tickets_snapshot_duration_seconds",
		Help: "Time to capture a fault snapshot.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)})
	s.httpDur = f.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_tickets_http_request_duration_seconds",
		Help: "HTTP requests served, by route and status code.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route", "code"})
	s.reg.MustRegister(sla.NewCollector(st, cfg.SLATargets, cfg.SLAWindow))
	outboxCount := func(failed bool) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p, f, err := st.OutboxCounts(ctx)
			if err != nil {
				return -1
			}
			if failed {
				return float64(f)
			}
			return float64(p)
		}
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_tickets_outbox_pending",
		Help: "Notifications written but not yet delivered (waiting for their first attempt or a retry); -1 when the database does not answer."}, outboxCount(false))
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_tickets_outbox_failed",
		Help: "Notifications given up (kept 7 days), with their last error in the outbox table."}, outboxCount(true))
	if s.pages, err = loadPages(); err != nil {
		st.Close()
		return nil, fmt.Errorf("web UI templates: %w", err)
	}
	if s.handler, err = s.routes(); err != nil {
		st.Close()
		return nil, err
	}
	// The listener is bound here, not in Run, so that every check that can
	// fail has passed before the first admin is created and its password
	// shown.
	if s.ln, err = weblisten.Listen(weblisten.Options{Name: "tickets service", Address: cfg.Listen, WebConfigFile: cfg.WebConfigFile,
		ConfigField: "web_config_file (--web.config.file)", StateChanging: true, OwnAuth: "user sessions and API tokens"}, logger); err != nil {
		st.Close()
		return nil, err
	}
	s.addr = s.ln.Addr()
	pw := cfg.AdminPassword
	if pw == "" {
		pw = store.RandomPassword()
	}
	created, err := st.EnsureAdmin(ctx, pw)
	if err != nil {
		s.ln.Close()
		st.Close()
		return nil, fmt.Errorf("first admin: %w", err)
	}
	switch {
	case created && cfg.AdminPassword == "":
		s.GeneratedAdminPassword = pw
	case !created && cfg.AdminPassword != "":
		logger.Warn("the admin password given (--admin-password-file or SLUICE_ADMIN_PASSWORD) is ignored: users exist already; " +
			"change it in the web UI or with `sluice tickets admin reset-password`")
	}
	return s, nil
}

// refuseExampleKafkaPassword fails when the snapshot's Kafka SASL password is
// still the change-me placeholder of deploy/secrets.
func refuseExampleKafkaPassword(file, env string) error {
	pw, err := config.Secret{FileKey: "sasl.password.file", EnvKey: "sasl.password.env", File: file, Env: env}.Read("")
	if err != nil {
		return fmt.Errorf("snapshot: kafka_security: %w", err)
	}
	if store.IsExamplePassword(pw) {
		return errors.New("snapshot: kafka_security: the SASL password is the example of deploy/secrets/*.example (change-me-...); set your own")
	}
	return nil
}

// Store is the service's database.
func (s *Service) Store() *store.Store { return s.store }

// Handler is the service's HTTP handler: API, UI and /metrics.
func (s *Service) Handler() http.Handler { return s.handler }

// Ready is closed once Run listens.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Addr is the address Run listens on.
func (s *Service) Addr() string { return s.addr }

// Run serves HTTP and captures snapshots until ctx ends, then shuts down and
// closes the database.
func (s *Service) Run(ctx context.Context) error {
	defer s.store.Close()
	ln := s.ln
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	wctx, stopWorkers := context.WithCancel(ctx)
	for range 2 {
		s.workers.Add(1)
		go s.snapshotWorker(wctx)
	}
	s.workers.Add(1)
	go s.outboxWorker(wctx)
	if s.meter != nil {
		s.workers.Add(1)
		go func() {
			defer s.workers.Done()
			s.meter.run(wctx)
		}()
	}
	errc := make(chan error, 1)
	go func() {
		if err := ln.Serve(srv, nil); err != nil {
			errc <- err
		}
	}()
	close(s.ready)
	var err error
	select {
	case <-ctx.Done():
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

// Close releases the listener and the database of a Service whose Run was
// never called.
func (s *Service) Close() error {
	s.ln.Close()
	return s.store.Close()
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
