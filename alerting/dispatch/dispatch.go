// Package dispatch routes alerts to receivers with Alertmanager's own packages: the routing tree,
// grouping, inhibition, silences and the notification log (both persisted in the data directory)
// come from github.com/prometheus/alertmanager, configured by an alertmanager.yml-compatible file.
// On top, every integration is wrapped in a guard that sends resolved notifications at once
// instead of at the next group_interval, holds a flapping alert in one "flapping" notification,
// and rate-limits each receiver with one summary during an alert storm.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// BuildFunc builds the integrations of one receiver of the configuration. The dispatcher wraps
// each in a guard.
type BuildFunc func(rcv config.Receiver, tmpl *template.Template) ([]notify.Integration, error)

// Options configure a Dispatcher.
type Options struct {
	// DataDir holds the silences and the notification log snapshots. Required.
	DataDir string
	// Retention is how long silences and notification log entries are kept after they expire,
	// default 120h like Alertmanager's --data.retention.
	Retention time.Duration
	// MaintenanceInterval is how often silences and the notification log are garbage collected
	// and snapshotted to disk, default 1m (Alertmanager: 15m).
	MaintenanceInterval time.Duration
	// ExternalURL is the URL templates link back to.
	ExternalURL string
	// Guard tunes flapping detection and rate limiting.
	Guard GuardOptions
	// StableCheckInterval is how often alerts held as flapping are checked for being stable
	// again, default 10s.
	StableCheckInterval time.Duration
	// Now is the clock of flapping detection and rate limiting, default time.Now. Tests move it;
	// Alertmanager's grouping timers always run on the real clock.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Dispatcher is the long-lived routing part: the alert store, silences and notification log live
// as long as it does; the routing tree, receivers, inhibitor and Alertmanager dispatcher are
// rebuilt by ApplyConfig.
type Dispatcher struct {
	opts     Options
	logger   *slog.Logger
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	pipeline *notify.PipelineBuilder
	metrics  *dispatch.DispatcherMetrics
	flaps    *flapTracker
	start    time.Time

	mu         sync.Mutex // guards the fields below; never held while notifying
	conf       *config.Config
	route      *dispatch.Route
	receivers  map[string][]*guard
	inhibitor  *inhibit.Inhibitor
	dispatcher *dispatch.Dispatcher
	tmpl       *template.Template

	stopc chan struct{}
	wg    sync.WaitGroup
	// ctx is cancelled by Close; prompt resolved notifications run under it, not under the
	// context of the request that resolved the alert.
	ctx    context.Context
	cancel context.CancelFunc
	closed bool           // under mu
	sends  sync.WaitGroup // prompt resolved notifications in flight
}

// New opens the silences and notification log (from their snapshots if present) and the alert
// store. Nothing is routed until ApplyConfig.
func New(o Options) (*Dispatcher, error) {
	if o.DataDir == "" {
		return nil, errors.New("dispatch: DataDir is required")
	}
	if o.Retention <= 0 {
		o.Retention = 120 * time.Hour
	}
	if o.MaintenanceInterval <= 0 {
		o.MaintenanceInterval = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.StableCheckInterval <= 0 {
		o.StableCheckInterval = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Guard.setDefaults()
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, err
	}
	d := &Dispatcher{opts: o, logger: o.Logger, start: time.Now(), stopc: make(chan struct{}), flaps: newFlapTracker(o.Guard)}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	var err error
	d.nflog, err = nflog.New(nflog.Options{
		SnapshotFile: filepath.Join(o.DataDir, "nflog"), Retention: o.Retention,
		Logger: o.Logger.With("component", "nflog"), Metrics: o.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("notification log: %w", err)
	}
	d.silences, err = silence.New(silence.Options{
		SnapshotFile: filepath.Join(o.DataDir, "silences"), Retention: o.Retention,
		Logger: o.Logger.With("component", "silences"), Metrics: o.Registerer,
	})
	if err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	d.silencer = silence.NewSilencer(d.silences, o.Logger, eventrecorder.NopRecorder())
	d.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, d.silencer, o.Logger, eventrecorder.NopRecorder(), o.Registerer, featurecontrol.NoopFlags{})
	if err != nil {
		return nil, fmt.Errorf("alert store: %w", err)
	}
	d.pipeline = notify.NewPipelineBuilder(o.Registerer, featurecontrol.NoopFlags{}, eventrecorder.NopRecorder())
	d.metrics = dispatch.NewDispatcherMetrics(false, o.Registerer, featurecontrol.NoopFlags{})
	d.wg.Add(3)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(o.StableCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-d.stopc:
				return
			case <-t.C:
				d.releaseStable(d.ctx)
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		d.nflog.Maintenance(o.MaintenanceInterval, filepath.Join(o.DataDir, "nflog"), d.stopc, nil)
	}()
	go func() {
		defer d.wg.Done()
		d.silences.Maintenance(o.MaintenanceInterval, filepath.Join(o.DataDir, "silences"), d.stopc, nil)
	}()
	return d, nil
}

// ApplyConfig builds the routing tree, receivers and inhibition rules of cfg and swaps them in.
// Every fallible step runs before the running configuration is touched, so an error leaves it
// in place.
func (d *Dispatcher) ApplyConfig(cfg *config.Config, build BuildFunc) error {
	tmpl, err := template.FromGlobs(cfg.Templates)
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	if u, err := url.Parse(d.opts.ExternalURL); err == nil {
		tmpl.ExternalURL = u
	}
	route := dispatch.NewRoute(cfg.Route, nil)
	active := map[string]bool{}
	route.Walk(func(r *dispatch.Route) { active[r.RouteOpts.Receiver] = true })
	integrations := map[string][]notify.Integration{}
	guards := map[string][]*guard{}
	for _, rcv := range cfg.Receivers {
		if !active[rcv.Name] {
			continue
		}
		ints, err := build(rcv, tmpl)
		if err != nil {
			return fmt.Errorf("receiver %q: %w", rcv.Name, err)
		}
		for i := range ints {
			in := &ints[i]
			g := newGuard(rcv.Name, in, d.flaps, d.opts.Guard, d.logger, d.opts.Now)
			// The pipeline logs notifications under the wrapping integration's name and index.
			recv := &nflogpb.Receiver{GroupName: rcv.Name, Integration: in.Name(), Idx: uint32(i)}
			g.logState = func(gkey string, hash uint64, resolved bool, repeat time.Duration) {
				d.logState(recv, gkey, hash, resolved, repeat)
			}
			guards[rcv.Name] = append(guards[rcv.Name], g)
			integrations[rcv.Name] = append(integrations[rcv.Name], notify.NewIntegration(g, in, in.Name(), i, rcv.Name))
		}
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range cfg.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range cfg.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)

	d.mu.Lock()
	oldInh, oldDisp, oldGuards := d.inhibitor, d.dispatcher, d.receivers
	d.mu.Unlock()
	if oldInh != nil {
		oldInh.Stop()
	}
	if oldDisp != nil {
		oldDisp.Stop()
	}
	for _, gs := range oldGuards {
		for _, g := range gs {
			g.stop()
		}
	}
	inh := inhibit.NewInhibitor(d.alerts, cfg.InhibitRules, d.logger, eventrecorder.NopRecorder())
	pipeline := d.pipeline.New(integrations, func() time.Duration { return 0 }, inh, d.silencer, intervener, d.nflog, nil)
	timeout := func(t time.Duration) time.Duration { return max(t, notify.MinTimeout) }
	disp := dispatch.NewDispatcher(d.alerts, route, pipeline, intervener, timeout, 30*time.Second, nil, d.logger, eventrecorder.NopRecorder(), d.metrics, tmpl)
	go inh.Run()
	inh.WaitForLoading()
	go disp.Run(d.start)
	disp.WaitForLoading()

	d.mu.Lock()
	d.conf, d.route, d.receivers, d.inhibitor, d.dispatcher, d.tmpl = cfg, route, guards, inh, disp, tmpl
	d.mu.Unlock()
	return nil
}

// Close stops routing and writes the final snapshots of silences and notification log.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	inh, disp, guards := d.inhibitor, d.dispatcher, d.receivers
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.sends.Wait()
	if inh != nil {
		inh.Stop()
	}
	if disp != nil {
		disp.Stop()
	}
	for _, gs := range guards {
		for _, g := range gs {
			g.stop()
		}
	}
	close(d.stopc)
	d.wg.Wait() // Maintenance snapshots once more when stopped.
	d.alerts.Close()
}

// Put takes alerts as Prometheus sends them (POST /api/v2/alerts or the in-process rules).
// Resolved alerts already notified as firing are sent to their receivers right away.
func (d *Dispatcher) Put(ctx context.Context, in ...*model.Alert) error {
	now := time.Now()
	flapNow := d.opts.Now()
	var out []*alert.Alert
	var errs []error
	for _, m := range in {
		a := *m
		if a.StartsAt.IsZero() {
			a.StartsAt = now
		}
		if a.EndsAt.IsZero() {
			// Like Alertmanager with resolve_timeout: firing until told otherwise.
			a.EndsAt = now.Add(5 * time.Minute)
		}
		if err := a.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("alert %s: %w", a.Labels, err))
			continue
		}
		al := alert.New(a, now, false)
		d.flaps.observe(al, flapNow)
		out = append(out, al)
	}
	if len(out) > 0 {
		if err := d.alerts.Put(ctx, out...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, al := range out {
		if al.Resolved() {
			d.resolveNow(al)
		}
	}
	return errors.Join(errs...)
}

// resolveNow sends a resolved notification for one alert to the receivers of every route it
// matches whose guard notified it as firing, without waiting for the group's next flush.
func (d *Dispatcher) resolveNow(al *alert.Alert) {
	d.mu.Lock()
	route, receivers, closed := d.route, d.receivers, d.closed
	if !closed {
		d.sends.Add(1)
	}
	d.mu.Unlock()
	if closed {
		return
	}
	defer d.sends.Done()
	if route == nil {
		return
	}
	for _, r := range route.Match(al.Labels) {
		groupLabels := model.LabelSet{}
		for ln, lv := range al.Labels {
			if _, ok := r.RouteOpts.GroupBy[ln]; ok || r.RouteOpts.GroupByAll {
				groupLabels[ln] = lv
			}
		}
		key := fmt.Sprintf("%s:%s", r.Key(), groupLabels)
		for _, g := range receivers[r.RouteOpts.Receiver] {
			if g.firingNotified(al) {
				nctx := notify.WithRepeatInterval(NotifyContext(d.ctx, r.RouteOpts.Receiver, key, groupLabels), r.RouteOpts.RepeatInterval)
				d.sends.Add(1)
				go func() {
					defer d.sends.Done()
					g.resolvePromptly(nctx, al)
				}()
			}
		}
	}
}

// releaseStable notifies the alerts held as flapping that are stable again, in their current
// state.
func (d *Dispatcher) releaseStable(ctx context.Context) {
	d.mu.Lock()
	receivers := d.receivers
	d.mu.Unlock()
	current := func(fp model.Fingerprint) *alert.Alert {
		a, err := d.alerts.Get(fp)
		if err != nil {
			return nil
		}
		return a
	}
	for _, gs := range receivers {
		for _, g := range gs {
			g.releaseStable(ctx, current)
		}
	}
}

// logState records one alert as firing or resolved in the notification log entry of a group
// and receiver integration, as if the group had been flushed with it in that state, after a
// notification sent outside Alertmanager's pipeline.
func (d *Dispatcher) logState(recv *nflogpb.Receiver, gkey string, hash uint64, isResolved bool, repeat time.Duration) {
	entries, err := d.nflog.Query(nflog.QGroupKey(gkey), nflog.QReceiver(recv))
	if err != nil || len(entries) != 1 {
		return
	}
	e := entries[0]
	firing := slices.DeleteFunc(slices.Clone(e.FiringAlerts), func(h uint64) bool { return h == hash })
	resolved := slices.DeleteFunc(slices.Clone(e.ResolvedAlerts), func(h uint64) bool { return h == hash })
	if isResolved {
		resolved = append(resolved, hash)
	} else {
		firing = append(firing, hash)
	}
	if slices.Equal(firing, e.FiringAlerts) && slices.Equal(resolved, e.ResolvedAlerts) {
		return // the log says so already
	}
	if repeat <= 0 {
		repeat = 4 * time.Hour
	}
	// Alertmanager's SetNotifiesStage keeps entries for twice the repeat interval.
	if err := d.nflog.Log(recv, gkey, firing, resolved, e.MutedAlerts, nflog.NewStore(e), 2*repeat); err != nil {
		d.logger.Warn("recording a prompt resolution in the notification log", "err", err)
	}
}

// NotifyContext carries what Alertmanager's pipeline puts in a notification's context, so
// integrations can be called outside a group flush (prompt resolves, tests, storm summaries).
func NotifyContext(ctx context.Context, receiver, groupKey string, groupLabels model.LabelSet) context.Context {
	ctx = notify.WithReceiverName(ctx, receiver)
	ctx = notify.WithGroupKey(ctx, groupKey)
	ctx = notify.WithGroupLabels(ctx, groupLabels)
	ctx = notify.WithNow(ctx, time.Now())
	ctx = notify.WithRepeatInterval(ctx, 4*time.Hour)
	return ctx
}

// AlertStatus is an alert in the store with whether it is silenced or inhibited.
type AlertStatus struct {
	Labels      model.LabelSet `json:"labels"`
	Annotations model.LabelSet `json:"annotations"`
	StartsAt    time.Time      `json:"startsAt"`
	EndsAt      time.Time      `json:"endsAt"`
	Fingerprint string         `json:"fingerprint"`
	State       string         `json:"state"` // active, suppressed, resolved
	Flapping    bool           `json:"flapping,omitempty"`
	Receivers   []string       `json:"receivers"`
}

// Alerts lists the alerts in the store that are not resolved.
func (d *Dispatcher) Alerts(ctx context.Context) []AlertStatus {
	d.mu.Lock()
	route := d.route
	d.mu.Unlock()
	it := d.alerts.GetPending()
	defer it.Close()
	var out []AlertStatus
	for pa := range it.Next() {
		a := pa.Data
		if a.Resolved() {
			continue
		}
		st := "active"
		if d.silencer.Mutes(ctx, a.LabelSet()) {
			st = "suppressed"
		}
		var rcvs []string
		if route != nil {
			for _, r := range route.Match(a.Labels) {
				rcvs = append(rcvs, r.RouteOpts.Receiver)
			}
		}
		out = append(out, AlertStatus{
			Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt,
			Fingerprint: a.Fingerprint().String(), State: st, Flapping: d.flaps.flapping(a.Fingerprint(), d.opts.Now()),
			Receivers: rcvs,
		})
	}
	return out
}

// Receivers names the configured receivers that routes use.
func (d *Dispatcher) Receivers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.receivers))
	for n := range d.receivers {
		out = append(out, n)
	}
	return out
}

// TestReceiver sends a test notification through every integration of a receiver, bypassing
// routing, silences and rate limits.
func (d *Dispatcher) TestReceiver(ctx context.Context, name string) error {
	d.mu.Lock()
	guards, ok := d.receivers[name]
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownReceiver, name)
	}
	now := time.Now()
	a := alert.New(model.Alert{
		Labels: model.LabelSet{"alertname": "SluiceTestNotification", "severity": "info"},
		Annotations: model.LabelSet{
			"summary":     "Test notification from sluice alerting",
			"description": "Sent on request through the HTTP API to check that this receiver works.",
		},
		StartsAt: now, EndsAt: now.Add(time.Hour),
	}, now, false)
	nctx := NotifyContext(ctx, name, "sluice-test/"+name+"/"+now.Format(time.RFC3339Nano), model.LabelSet{"alertname": "SluiceTestNotification"})
	var errs []error
	for _, g := range guards {
		if err := g.integration.Notify(withReason(nctx, a), a).Err(); err != nil {
			// A URL may be the receiver's credential (Slack and webhook URLs): never echo it.
			errs = append(errs, fmt.Errorf("%s: %w", g.integration.String(), notify.RedactURL(err)))
		}
	}
	return errors.Join(errs...)
}

// ErrUnknownReceiver is returned for a receiver name no route uses.
var ErrUnknownReceiver = errors.New("unknown receiver")
