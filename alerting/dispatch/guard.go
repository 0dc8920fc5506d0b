package dispatch

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// GuardOptions tune what the dispatcher adds to Alertmanager's pipeline.
type GuardOptions struct {
	// FlapCount is how many times an alert must start firing within FlapWindow to count as
	// flapping, default 3.
	FlapCount int `yaml:"flap_count,omitempty"`
	// FlapWindow is the window for FlapCount, default 15m. A flapping alert is stable again once
	// fewer than FlapCount firings fall in the window.
	FlapWindow time.Duration `yaml:"flap_window,omitempty"`
	// RatePerMinute is the notifications each integration may send per minute, default 20;
	// Burst is how many may go at once, default 10.
	RatePerMinute float64 `yaml:"rate_per_minute,omitempty"`
	Burst         int     `yaml:"burst,omitempty"`
	// SummaryDelay is how long after the first notification held back by the rate limit the
	// one storm summary is sent, default 1m.
	SummaryDelay time.Duration `yaml:"summary_delay,omitempty"`
}

func (o *GuardOptions) setDefaults() {
	if o.FlapCount <= 0 {
		o.FlapCount = 3
	}
	if o.FlapWindow <= 0 {
		o.FlapWindow = 15 * time.Minute
	}
	if o.RatePerMinute <= 0 {
		o.RatePerMinute = 20
	}
	if o.Burst <= 0 {
		o.Burst = 10
	}
	if o.SummaryDelay <= 0 {
		o.SummaryDelay = time.Minute
	}
}

// flapTracker remembers when each alert (by fingerprint) started firing.
type flapTracker struct {
	opts GuardOptions
	mu   sync.Mutex
	// starts are the distinct StartsAt of firing episodes seen within the window.
	starts map[model.Fingerprint][]time.Time
	last   map[model.Fingerprint]time.Time // StartsAt of the last episode seen
}

func newFlapTracker(o GuardOptions) *flapTracker {
	o.setDefaults()
	return &flapTracker{opts: o, starts: map[model.Fingerprint][]time.Time{}, last: map[model.Fingerprint]time.Time{}}
}

func (f *flapTracker) observe(a *alert.Alert, now time.Time) {
	if a.Resolved() {
		return
	}
	fp := a.Fingerprint()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last[fp].Equal(a.StartsAt) {
		return
	}
	f.last[fp] = a.StartsAt
	f.starts[fp] = append(f.prune(fp, now), now)
}

func (f *flapTracker) prune(fp model.Fingerprint, now time.Time) []time.Time {
	ts := f.starts[fp]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > f.opts.FlapWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(f.starts, fp)
		delete(f.last, fp)
	}
	return ts
}

func (f *flapTracker) flapping(fp model.Fingerprint, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.prune(fp, now)) >= f.opts.FlapCount
}

func (f *flapTracker) count(fp model.Fingerprint) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts[fp])
}

// episode identifies one firing of one alert.
type episode struct {
	fp    model.Fingerprint
	start int64
}

func episodeOf(a *alert.Alert) episode { return episode{a.Fingerprint(), a.StartsAt.UnixNano()} }

// guard wraps one integration of a receiver.
type guard struct {
	receiver    string
	integration *notify.Integration
	flaps       *flapTracker
	opts        GuardOptions
	logger      *slog.Logger
	limiter     *rate.Limiter

	mu            sync.Mutex
	firing        map[episode]bool // notified as firing
	resolved      map[episode]bool // resolved notification sent promptly
	flapNotified  map[model.Fingerprint]bool
	held          map[string]int // alertname -> notifications held back by the rate limit
	heldCount     int
	summaryTimer  *time.Timer
	stopped       bool
	summaryCtx    context.Context
	summaryCancel context.CancelFunc
}

func newGuard(receiver string, in *notify.Integration, flaps *flapTracker, o GuardOptions, logger *slog.Logger) *guard {
	ctx, cancel := context.WithCancel(context.Background())
	return &guard{
		receiver: receiver, integration: in, flaps: flaps, opts: o,
		logger:  logger.With("receiver", receiver, "integration", in.String()),
		limiter: rate.NewLimiter(rate.Limit(o.RatePerMinute/60), o.Burst),
		firing:  map[episode]bool{}, resolved: map[episode]bool{}, flapNotified: map[model.Fingerprint]bool{},
		held: map[string]int{}, summaryCtx: ctx, summaryCancel: cancel,
	}
}

func (g *guard) stop() {
	g.mu.Lock()
	g.stopped = true
	if g.summaryTimer != nil {
		g.summaryTimer.Stop()
	}
	g.mu.Unlock()
	g.summaryCancel()
}

// firingNotified reports whether the firing episode of a (now resolved) alert was notified and
// its resolution not yet.
func (g *guard) firingNotified(a *alert.Alert) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := episodeOf(a)
	return g.firing[e] && !g.resolved[e] && !g.flapNotified[a.Fingerprint()]
}

// resolvePromptly sends one alert's resolved notification outside the group's schedule.
func (g *guard) resolvePromptly(ctx context.Context, a *alert.Alert) {
	if !g.integration.SendResolved() {
		return
	}
	e := episodeOf(a)
	g.mu.Lock()
	if g.resolved[e] {
		g.mu.Unlock()
		return
	}
	g.resolved[e] = true
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for attempt := 0; ; attempt++ {
		v := g.integration.Notify(ctx, a)
		if v.Err() == nil {
			g.mu.Lock()
			delete(g.firing, e)
			g.mu.Unlock()
			g.logger.Info("resolved notification sent promptly", "alert", a.Name())
			return
		}
		if !v.ShouldRetry() || ctx.Err() != nil {
			g.logger.Warn("prompt resolved notification failed", "alert", a.Name(), "err", v.Err())
			g.mu.Lock()
			delete(g.resolved, e) // let the group flush send it
			g.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
}

// Notify filters what Alertmanager's pipeline flushes: resolved alerts already sent promptly,
// flapping alerts (after one "flapping" notification), and anything past the rate limit.
func (g *guard) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	now := time.Now()
	var pass, flapNew []*alert.Alert
	anyFiring := false
	g.mu.Lock()
	for _, a := range alerts {
		fp := a.Fingerprint()
		if g.flaps.flapping(fp, now) {
			if !g.flapNotified[fp] {
				g.flapNotified[fp] = true
				flapNew = append(flapNew, flappingCopy(a, g.flaps.count(fp), g.opts.FlapWindow))
			}
			continue
		}
		delete(g.flapNotified, fp)
		if !a.Resolved() {
			anyFiring = true
		}
		pass = append(pass, a)
	}
	if !anyFiring {
		// Only resolved alerts: drop those whose resolution went out already.
		kept := pass[:0]
		for _, a := range pass {
			if !g.resolved[episodeOf(a)] {
				kept = append(kept, a)
			}
		}
		pass = kept
	}
	g.mu.Unlock()

	send := append(flapNew, pass...)
	if len(send) == 0 {
		return notify.Success()
	}
	if !g.limiter.Allow() {
		g.hold(ctx, send)
		return notify.Success()
	}
	v := g.integration.Notify(ctx, send...)
	if v.Err() == nil {
		g.mu.Lock()
		for _, a := range send {
			e := episodeOf(a)
			if a.Resolved() {
				g.resolved[e] = true
				delete(g.firing, e)
			} else {
				g.firing[e] = true
			}
		}
		g.mu.Unlock()
	}
	return v
}

// flappingCopy is the one notification a flapping alert gets until it is stable.
func flappingCopy(a *alert.Alert, n int, window time.Duration) *alert.Alert {
	m := a.Alert
	m.Annotations = m.Annotations.Clone()
	m.Annotations["flapping"] = model.LabelValue(fmt.Sprintf("fired %d times in %s; further notifications are held until it is stable", n, window))
	if s, ok := m.Annotations["summary"]; ok {
		m.Annotations["summary"] = "[FLAPPING] " + s
	}
	return alert.New(m, a.UpdatedAt, a.Timeout)
}

// hold counts notifications held back by the rate limit and arranges the one summary.
func (g *guard) hold(ctx context.Context, alerts []*alert.Alert) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range alerts {
		g.held[a.Name()]++
	}
	g.heldCount++
	if g.summaryTimer != nil || g.stopped {
		return
	}
	g.logger.Warn("alert storm: notifications held back by the rate limit", "rate_per_minute", g.opts.RatePerMinute)
	g.summaryTimer = time.AfterFunc(g.opts.SummaryDelay, g.sendSummary)
}

func (g *guard) sendSummary() {
	g.mu.Lock()
	held, n := g.held, g.heldCount
	g.held, g.heldCount, g.summaryTimer = map[string]int{}, 0, nil
	stopped := g.stopped
	g.mu.Unlock()
	if stopped || n == 0 {
		return
	}
	names := make([]string, 0, len(held))
	for k := range held {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return held[names[i]] > held[names[j]] })
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s (%d)", k, held[k]))
	}
	now := time.Now()
	a := alert.New(model.Alert{
		Labels: model.LabelSet{"alertname": "SluiceNotificationStorm", "severity": "warning", "receiver": model.LabelValue(g.receiver)},
		Annotations: model.LabelSet{
			"summary":     model.LabelValue(fmt.Sprintf("Alert storm: %d notifications held back by the rate limit of %s", n, g.receiver)),
			"description": model.LabelValue("Held back: " + strings.Join(parts, ", ") + ". See the active alerts in the alerting API."),
		},
		StartsAt: now, EndsAt: now.Add(time.Minute),
	}, now, false)
	ctx, cancel := context.WithTimeout(g.summaryCtx, time.Minute)
	defer cancel()
	ctx = NotifyContext(ctx, g.receiver, "sluice-storm/"+g.receiver+"/"+now.Format(time.RFC3339), model.LabelSet{"alertname": "SluiceNotificationStorm"})
	if v := g.integration.Notify(ctx, a); v.Err() != nil {
		g.logger.Warn("storm summary failed", "err", v.Err())
	}
}
