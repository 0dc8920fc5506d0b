// Package rules evaluates Prometheus rule files in-process: a scrape loop feeds the configured
// targets' /metrics into a local TSDB, and Prometheus' own rules manager and PromQL engine
// evaluate the rules over it. Nothing here is a home-made expression language: a rule file that
// loads in a stock Prometheus loads here, and the other way round.
package rules

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb"
)

// DefaultPack holds Sluice's default rule files (*.yml beside this file).
//
//go:embed *.yml
var DefaultPack embed.FS

// Options configure an Evaluator.
type Options struct {
	// DataDir holds the TSDB (DataDir/tsdb) and the default rule pack as written out
	// (DataDir/rules). Required.
	DataDir string
	// Retention is how long the local TSDB keeps samples, default 24h (Prometheus'
	// --storage.tsdb.retention.time).
	Retention time.Duration
	// EvaluationInterval is the default rule group interval, default 10s (Prometheus'
	// global.evaluation_interval).
	EvaluationInterval time.Duration
	// ScrapeInterval is the time between scrapes of each target, default 10s.
	ScrapeInterval time.Duration
	// ExternalURL is put into each alert's generator URL.
	ExternalURL string
	// ExternalLabels are added to every alert, like Prometheus' global.external_labels.
	ExternalLabels map[string]string
	// ResendDelay is how often a firing alert is sent again, default 1m like Prometheus'
	// --rules.alert.resend-delay.
	ResendDelay time.Duration
	// Notify receives alerts as Prometheus would send them to an Alertmanager: firing ones
	// with EndsAt in the future, resolved ones with EndsAt at their resolution.
	Notify func(ctx context.Context, alerts []*model.Alert)
	// Logger and Registerer are injected; a nil Registerer registers nothing.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() error {
	if o.DataDir == "" {
		return errors.New("rules: DataDir is required")
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.EvaluationInterval <= 0 {
		o.EvaluationInterval = 10 * time.Second
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = 10 * time.Second
	}
	if o.ResendDelay <= 0 {
		o.ResendDelay = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Notify == nil {
		o.Notify = func(context.Context, []*model.Alert) {}
	}
	return nil
}

// Evaluator scrapes targets into a local TSDB and evaluates rule files over it.
type Evaluator struct {
	opts    Options
	db      *tsdb.DB
	engine  *promql.Engine
	manager *promrules.Manager
	scraper *scraper
	parser  parser.Parser

	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	files   []string
	targets []Target
	ran     bool
}

// New opens the TSDB and prepares the rules manager; nothing runs until Run.
func New(o Options) (*Evaluator, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	dbOpts := tsdb.DefaultOptions()
	dbOpts.RetentionDuration = o.Retention.Milliseconds()
	db, err := tsdb.Open(filepath.Join(o.DataDir, "tsdb"), o.Logger.With("component", "tsdb"), o.Registerer, dbOpts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:               o.Logger.With("component", "promql"),
		Reg:                  o.Registerer,
		MaxSamples:           50_000_000,
		Timeout:              2 * time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               p,
	})
	ctx, cancel := context.WithCancel(context.Background())
	var extURL *url.URL
	if o.ExternalURL != "" {
		extURL, _ = url.Parse(o.ExternalURL)
	}
	if extURL == nil {
		extURL = &url.URL{}
	}
	e := &Evaluator{opts: o, db: db, engine: engine, parser: p, ctx: ctx, cancel: cancel}
	e.manager = promrules.NewManager(&promrules.ManagerOptions{
		AppendableV2: db,
		Queryable:    db,
		QueryFunc:    promrules.EngineQueryFunc(engine, db),
		NotifyFunc:   e.notify,
		Context:      ctx,
		ExternalURL:  extURL,
		Registerer:   o.Registerer,
		Logger:       o.Logger.With("component", "rule manager"),
		// A restart of the evaluator should not wait 10 m before it may fire again.
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     o.ResendDelay,
		Parser:          p,
	})
	e.scraper = newScraper(db, o.ScrapeInterval, o.Logger.With("component", "scrape"))
	return e, nil
}

// notify converts alerts like Prometheus' rules.SendAlerts does.
func (e *Evaluator) notify(ctx context.Context, expr string, alerts ...*promrules.Alert) {
	if len(alerts) == 0 {
		return
	}
	out := make([]*model.Alert, 0, len(alerts))
	for _, a := range alerts {
		ls := labelSet(a.Labels)
		// Like Prometheus' notifier: external labels go on alerts leaving the evaluator.
		for k, v := range e.opts.ExternalLabels {
			if _, ok := ls[model.LabelName(k)]; !ok {
				ls[model.LabelName(k)] = model.LabelValue(v)
			}
		}
		m := &model.Alert{
			Labels:       ls,
			Annotations:  labelSet(a.Annotations),
			StartsAt:     a.FiredAt,
			GeneratorURL: e.opts.ExternalURL + "/api/v1/query?expr=" + url.QueryEscape(expr),
		}
		if !a.ResolvedAt.IsZero() {
			m.EndsAt = a.ResolvedAt
		} else {
			m.EndsAt = a.ValidUntil
		}
		out = append(out, m)
	}
	e.opts.Notify(ctx, out)
}

func labelSet(ls labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { out[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return out
}

// Validate parses rule files as the rules manager would, returning every error with the file
// and line ("file: 12:7: group ..."). It changes nothing.
func Validate(files []string) error {
	m := promrules.NewManager(&promrules.ManagerOptions{Context: context.Background()})
	_, errs := m.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, files...)
	return errors.Join(errs...)
}

// ExpandFiles resolves globs of rule files like Prometheus' rule_files.
func ExpandFiles(patterns []string) ([]string, error) {
	var out []string
	for _, pat := range patterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", pat, err)
		}
		if m == nil && !strings.ContainsAny(pat, "*?[") {
			return nil, fmt.Errorf("rule_files: %s: no such file", pat)
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return out, nil
}

// WriteDefaultPack writes the default rule pack into dir and returns the files' paths, so the
// rules manager loads them like any rule file and the API can name them.
func WriteDefaultPack(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ents, err := DefaultPack.ReadDir(".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ent := range ents {
		b, err := DefaultPack.ReadFile(ent.Name())
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, ent.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Apply validates the rule files and, only if they are all good, replaces the running rule set
// and scrape targets. On error the running configuration stays.
func (e *Evaluator) Apply(files []string, targets []Target) error {
	if err := Validate(files); err != nil {
		return err
	}
	ext := labels.FromMap(e.opts.ExternalLabels)
	if err := e.manager.Update(e.opts.EvaluationInterval, files, ext, e.opts.ExternalURL, nil); err != nil {
		return err
	}
	e.mu.Lock()
	e.files, e.targets = files, targets
	ran := e.ran
	e.mu.Unlock()
	if ran {
		e.scraper.apply(e.ctx, targets)
	}
	return nil
}

// Run scrapes and evaluates until ctx ends, then stops everything and closes the TSDB.
func (e *Evaluator) Run(ctx context.Context) error {
	e.mu.Lock()
	e.ran = true
	targets := e.targets
	e.mu.Unlock()
	e.scraper.apply(e.ctx, targets)
	done := make(chan struct{})
	go func() {
		e.manager.Run()
		close(done)
	}()
	<-ctx.Done()
	e.manager.Stop()
	<-done
	e.cancel()
	e.scraper.stop()
	return e.db.Close()
}

// Close releases the TSDB of an Evaluator that was never Run.
func (e *Evaluator) Close() error {
	e.cancel()
	e.mu.Lock()
	ran := e.ran
	e.mu.Unlock()
	if !ran {
		// The rule groups of Apply wait for the manager to run before their first evaluation:
		// let them start, under the cancelled context, and stop them.
		done := make(chan struct{})
		go func() {
			e.manager.Run()
			close(done)
		}()
		e.manager.Stop()
		<-done
	}
	return e.db.Close()
}

// Targets reports the scrape targets' health.
func (e *Evaluator) Targets() []TargetState { return e.scraper.states() }

// Query evaluates an instant PromQL query at ts over the local TSDB.
func (e *Evaluator) Query(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.db, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{F: v.V, T: v.T}}, nil
	default:
		return nil, fmt.Errorf("query returned %s, want a vector", res.Value.Type())
	}
}

// ActiveAlert is a pending or firing alert of a rule, with the value of its expression.
type ActiveAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
	Value       float64           `json:"value"`
}

// RuleState is one rule's state as the API reports it.
type RuleState struct {
	Group          string        `json:"group"`
	File           string        `json:"file"`
	Name           string        `json:"name"`
	Type           string        `json:"type"` // alerting or recording
	Query          string        `json:"query"`
	Duration       float64       `json:"duration,omitempty"`
	State          string        `json:"state,omitempty"` // inactive, pending, firing
	Health         string        `json:"health"`
	LastError      string        `json:"lastError,omitempty"`
	LastEvaluation time.Time     `json:"lastEvaluation"`
	Alerts         []ActiveAlert `json:"alerts,omitempty"`
}

// Rules reports every loaded rule with its state and its active alerts' current values.
func (e *Evaluator) Rules() []RuleState {
	var out []RuleState
	for _, g := range e.manager.RuleGroups() {
		for _, r := range g.Rules() {
			rs := RuleState{
				Group: g.Name(), File: g.File(), Name: r.Name(), Query: r.Query().String(),
				Health: string(r.Health()), LastEvaluation: r.GetEvaluationTimestamp(),
			}
			if err := r.LastError(); err != nil {
				rs.LastError = err.Error()
			}
			switch r := r.(type) {
			case *promrules.AlertingRule:
				rs.Type = "alerting"
				rs.State = r.State().String()
				rs.Duration = r.HoldDuration().Seconds()
				for _, a := range r.ActiveAlerts() {
					rs.Alerts = append(rs.Alerts, ActiveAlert{
						Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
						State: a.State.String(), ActiveAt: a.ActiveAt, Value: a.Value,
					})
				}
			default:
				rs.Type = "recording"
			}
			out = append(out, rs)
		}
	}
	return out
}
