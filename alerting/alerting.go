// Package alerting is Sluice's alarm system, `sluice alerting`: Prometheus rule files evaluated
// in-process over scraped broker and exporter metrics (package rules), routed, grouped, silenced
// and inhibited by Alertmanager's packages configured with an alertmanager.yml (package
// dispatch), and sent to Slack, email, webhooks or the log (packages notify/...). The Manager
// ties them together and serves the HTTP API.
package alerting

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/sluicemq/sluice/alerting/dispatch"
	"github.com/sluicemq/sluice/alerting/notify/slack"
	"github.com/sluicemq/sluice/alerting/rules"
	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/internal/weblisten"
)

// Manager runs rule evaluation, routing and the HTTP API.
type Manager struct {
	logger     *slog.Logger
	reg        prometheus.Registerer
	evaluator  *rules.Evaluator
	dispatcher *dispatch.Dispatcher
	slackStore *slack.Store
	slackHTTP  *slack.Handler
	listener   *weblisten.Listener
	server     *http.Server

	mu     sync.Mutex
	cfg    Config     // the running configuration
	tokens [][32]byte // SHA-256 of the API's bearer tokens
}

// New opens the data directory, applies cfg (which must be valid: its rule files and routing
// file are loaded here) and binds the listener; Run starts everything. The data directory's
// silences, notification log and Slack messages survive restarts.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	m := &Manager{logger: logger, reg: reg}
	var err error
	tokens, err := cfg.apiTokens()
	if err != nil {
		return nil, err
	}
	lo := weblisten.Options{Name: "alerting API", Address: cfg.Listen, WebConfigFile: config.Path(cfg.dir, cfg.WebConfigFile),
		ConfigField: "web_config_file (--web.config.file)", StateChanging: true}
	if len(tokens) > 0 {
		lo.OwnAuth = "bearer tokens"
	}
	// Bind first so that with port 0 the external URL in notifications is the real one.
	if m.listener, err = weblisten.Listen(lo, logger); err != nil {
		return nil, err
	}
	if cfg.ExternalURL == "" {
		scheme := "http://"
		if m.listener.TLS() {
			scheme = "https://"
		}
		cfg.ExternalURL = scheme + m.listener.Addr()
	}
	if m.slackStore, err = slack.OpenStore(filepath.Join(cfg.DataDir, "slack-messages.json")); err != nil {
		_ = m.listener.Close()
		return nil, fmt.Errorf("slack message store: %w", err)
	}
	m.dispatcher, err = dispatch.New(dispatch.Options{
		DataDir: filepath.Join(cfg.DataDir, "alertmanager"), ExternalURL: cfg.externalURL(), Guard: cfg.Notifications,
		Logger: logger.With("component", "dispatch"), Registerer: reg,
	})
	if err != nil {
		_ = m.listener.Close()
		return nil, err
	}
	m.evaluator, err = rules.New(rules.Options{
		DataDir: cfg.DataDir, Retention: cfg.Retention, EvaluationInterval: cfg.EvaluationInterval,
		ScrapeInterval: cfg.ScrapeInterval, ExternalURL: cfg.externalURL(), ExternalLabels: cfg.ExternalLabels,
		Notify: func(ctx context.Context, alerts []*model.Alert) {
			if err := m.dispatcher.Put(ctx, alerts...); err != nil {
				logger.Warn("alerts refused", "err", err)
			}
		},
		Logger: logger.With("component", "rules"), Registerer: reg,
	})
	if err != nil {
		_ = m.listener.Close()
		m.dispatcher.Close()
		return nil, err
	}
	m.slackHTTP = &slack.Handler{Store: m.slackStore, Silence: m.silenceLabels, Logger: logger.With("component", "slack")}
	if err := m.ApplyConfig(cfg); err != nil {
		m.close()
		return nil, err
	}
	m.server = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	return m, nil
}

func (m *Manager) close() {
	_ = m.listener.Close()
	m.dispatcher.Close()
	_ = m.evaluator.Close()
}

// Addr is the address the API listens on (useful with port 0).
func (m *Manager) Addr() string { return m.listener.Addr() }

// Config returns the running configuration.
func (m *Manager) Config() Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// ApplyConfig loads cfg's rule files and routing file and, only if all of them are good, swaps
// them in. On error the running configuration stays and the error names the file and line.
// Listen, data_dir, intervals and retention are read once by New.
func (m *Manager) ApplyConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var files []string
	if cfg.defaultRules() {
		pack, err := rules.WriteDefaultPack(filepath.Join(cfg.DataDir, "rules"))
		if err != nil {
			return fmt.Errorf("default rule pack: %w", err)
		}
		files = append(files, pack...)
	}
	var pats []string
	for _, p := range cfg.RuleFiles {
		pats = append(pats, config.Path(cfg.dir, p))
	}
	more, err := rules.ExpandFiles(pats)
	if err != nil {
		return err
	}
	files = append(files, more...)
	if err := rules.Validate(files); err != nil {
		return err
	}
	routing, err := cfg.loadRouting()
	if err != nil {
		return err
	}
	secret, err := cfg.signingSecret()
	if err != nil {
		return err
	}
	tokens, err := cfg.apiTokens()
	if err != nil {
		return err
	}
	if len(tokens) == 0 && !m.listener.WebAuth() && !m.listener.Loopback() {
		return fmt.Errorf("api: the API on %s is authenticated by bearer tokens only; a configuration without token_file or token_env would leave it open", m.Addr())
	}
	// Build every receiver once to find errors before touching anything; the dispatcher builds
	// them again when it swaps (cheap: nothing connects until a notification).
	tmpl, err := template.FromGlobs(routing.Templates)
	if err != nil {
		return fmt.Errorf("%s: templates: %w", cfg.RoutingFile, err)
	}
	for _, rcv := range routing.Receivers {
		if _, err := m.buildReceiver(rcv, tmpl, &cfg, routing.Route.Receiver); err != nil {
			return fmt.Errorf("%s: receiver %q: %w", cfg.RoutingFile, rcv.Name, err)
		}
	}
	targets := make([]rules.Target, len(cfg.Targets))
	for i, t := range cfg.Targets {
		if cfg.dir != "" {
			t.SetDirectory(cfg.dir)
		}
		targets[i] = t
	}
	if err := m.evaluator.Apply(files, targets); err != nil {
		return err
	}
	if err := m.dispatcher.ApplyConfig(routing, func(rcv amconfig.Receiver, t *template.Template) ([]notify.Integration, error) {
		return m.buildReceiver(rcv, t, &cfg, routing.Route.Receiver)
	}); err != nil {
		return err
	}
	m.mu.Lock()
	m.cfg = cfg
	m.tokens = make([][32]byte, 0, len(tokens))
	for _, t := range tokens {
		m.tokens = append(m.tokens, sha256.Sum256([]byte(t)))
	}
	m.mu.Unlock()
	m.slackHTTP.SetConfig(secret, cfg.DashboardURL)
	m.logger.Info("configuration applied", "rule_files", len(files), "targets", len(cfg.Targets), "receivers", len(routing.Receivers))
	return nil
}

// Run serves the API and evaluates rules until ctx ends, then stops everything and writes the
// final snapshots.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() {
		if err := m.listener.Serve(m.server, m.skipsBasicAuth); err != nil {
			errc <- fmt.Errorf("http: %w", err)
			cancel()
			return
		}
		errc <- nil
	}()
	go func() { errc <- m.evaluator.Run(ctx) }()
	m.logger.Info("alerting started", "listen", m.Addr(), "access", m.listener.Mode())
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = m.server.Shutdown(sctx)
	scancel()
	err := errors.Join(<-errc, <-errc)
	m.dispatcher.Close()
	return err
}

// silenceLabels is what the Slack "Silence 1h" button does.
func (m *Manager) silenceLabels(ctx context.Context, labels map[string]string, d time.Duration, by, comment string) (string, error) {
	var ms []dispatch.Matcher
	for k, v := range labels {
		ms = append(ms, dispatch.Matcher{Name: k, Value: v})
	}
	if len(ms) == 0 {
		return "", errors.New("alert group has no labels to silence by")
	}
	return m.dispatcher.SetSilence(ctx, dispatch.Silence{Matchers: ms, EndsAt: time.Now().Add(d), CreatedBy: by, Comment: comment})
}
