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

	"github.com/sluicemq/sluice/internal/backoff"
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
	// storm summary is sent, default 1m. A storm shorter than SummaryDelay gets exactly one
	// summary; a longer one gets at most one per SummaryDelay.
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

// heldAlert is the last state of a flapping alert the guard has held back, with the group it
// was flushed in, so that it can be notified once the alert is stable.
type heldAlert struct {
	alert       *alert.Alert
	groupKey    string
	groupLabels model.LabelSet
	repeat      time.Duration
}

// guard wraps one integration of a receiver.
//
// Lock ordering: guard.mu, then flapTracker.mu.
type guard struct {
	receiver    string
	integration *notify.Integration
	flaps       *flapTracker
	opts        GuardOptions
	logger      *slog.Logger
	limiter     *rate.Limiter
	now         func() time.Time
	// logState records a notification sent outside the pipeline (a prompt resolution, an alert
	// stable after flapping) in Alertmanager's notification log, which the pipeline's
	// deduplication reads; nil in tests without a Dispatcher.
	logState func(gkey string, hash uint64, resolved bool, repeat time.Duration)

	mu            sync.Mutex
	firing        map[episode]bool // notified as firing
	resolved      map[episode]bool // resolved notification sent promptly
	flapNotified  map[model.Fingerprint]bool
	flapHeld      map[model.Fingerprint]heldAlert
	lastSent      map[string]string            // group key -> signature of the alerts last sent
	hashes        map[model.Fingerprint]uint64 // the notification log's hash of each alert
	held          map[string]int               // alertname -> notifications held back by the rate limit
	heldCount     int
	summaryTimer  *time.Timer
	stopped       bool
	summaryCtx    context.Context
	summaryCancel context.CancelFunc
}

func newGuard(receiver string, in *notify.Integration, flaps *flapTracker, o GuardOptions, logger *slog.Logger, now func() time.Time) *guard {
	ctx, cancel := context.WithCancel(context.Background())
	return &guard{
		receiver: receiver, integration: in, flaps: flaps, opts: o, now: now,
		logger:  logger.With("receiver", receiver, "integration", in.String()),
		limiter: rate.NewLimiter(rate.Limit(o.RatePerMinute/60), o.Burst),
		firing:  map[episode]bool{}, resolved: map[episode]bool{}, flapNotified: map[model.Fingerprint]bool{},
		flapHeld: map[model.Fingerprint]heldAlert{}, lastSent: map[string]string{}, hashes: map[model.Fingerprint]uint64{},
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
	bo := backoff.New(time.Second, 10*time.Second)
	for {
		v := g.integration.Notify(withReason(ctx, a), a)
		if v.Err() == nil {
			g.mu.Lock()
			delete(g.firing, e)
			hash, known := g.hashes[a.Fingerprint()]
			g.mu.Unlock()
			// Tell the pipeline's deduplication that the group's receiver knows: otherwise a
			// new firing of the alert before the group's next flush would look like nothing
			// changed and not be notified, and the flush would repeat the resolution.
			if key, ok := notify.GroupKey(ctx); ok && known && g.logState != nil {
				repeat, _ := notify.RepeatInterval(ctx)
				g.logState(key, hash, true, repeat)
			}
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
		_ = bo.Wait(ctx, v.Delay()) // a timeout ends the loop at the check above
	}
}

// Notify filters what Alertmanager's pipeline flushes: resolved alerts already sent promptly,
// flapping alerts (after one "flapping" notification), and anything past the rate limit.
func (g *guard) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	now := g.now()
	key, _ := notify.GroupKey(ctx)
	groupLabels, _ := notify.GroupLabels(ctx)
	repeat, _ := notify.RepeatInterval(ctx)
	var pass, flapNew []*alert.Alert
	anyFiring, filtered := false, false
	g.mu.Lock()
	// The dedup stage put the hashes of the firing alerts, in order, into the context.
	if hs, ok := notify.FiringAlerts(ctx); ok {
		i := 0
		for _, a := range alerts {
			if !a.Resolved() && i < len(hs) {
				g.hashes[a.Fingerprint()] = hs[i]
				i++
			}
		}
	}
	for _, a := range alerts {
		fp := a.Fingerprint()
		if g.flaps.flapping(fp, now) {
			g.flapHeld[fp] = heldAlert{alert: a, groupKey: key, groupLabels: groupLabels, repeat: repeat}
			if !g.flapNotified[fp] {
				flapNew = append(flapNew, flappingCopy(a, g.flaps.count(fp), g.opts.FlapWindow))
			} else {
				filtered = true
			}
			continue
		}
		// Stable again: this flush is its normal notification.
		delete(g.flapNotified, fp)
		delete(g.flapHeld, fp)
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
	send := append(flapNew, pass...)
	// A flush that changed only alerts held as flapping would repeat the last message about the
	// others.
	sig := signature(pass)
	unchanged := filtered && len(flapNew) == 0 && g.lastSent[key] == sig
	g.mu.Unlock()

	if len(send) == 0 || unchanged {
		return notify.Success()
	}
	if !g.limiter.AllowN(now, 1) {
		g.hold(send)
		g.markFlapNotified(flapNew)
		return notify.Success()
	}
	v := g.integration.Notify(withReason(ctx, send...), send...)
	if v.Err() == nil {
		g.markSent(send)
		g.markFlapNotified(flapNew)
		g.mu.Lock()
		if anyFiring { // a group with nothing firing is over: forget it
			g.lastSent[key] = sig
		} else {
			delete(g.lastSent, key)
		}
		g.mu.Unlock()
	}
	return v
}

// markSent remembers which episodes a successful notification reported.
func (g *guard) markSent(sent []*alert.Alert) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range sent {
		e := episodeOf(a)
		if a.Resolved() {
			g.resolved[e] = true
			delete(g.firing, e)
		} else {
			g.firing[e] = true
		}
	}
}

func (g *guard) markFlapNotified(flapNew []*alert.Alert) {
	if len(flapNew) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range flapNew {
		g.flapNotified[a.Fingerprint()] = true
	}
}

// signature identifies the alerts of a notification and whether each is resolved.
func signature(alerts []*alert.Alert) string {
	parts := make([]string, 0, len(alerts))
	for _, a := range alerts {
		parts = append(parts, fmt.Sprintf("%s/%d/%t", a.Fingerprint(), a.StartsAt.UnixNano(), a.Resolved()))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// releaseStable sends the normal notification of every alert held as flapping that is stable
// again, in its current state (current returns the alert store's version, or nil when the
// store no longer has it). Alertmanager's pipeline would not do it: once a held alert stops
// changing, its notification log entry says it was notified, so no flush reaches the guard.
func (g *guard) releaseStable(ctx context.Context, current func(model.Fingerprint) *alert.Alert) {
	now := g.now()
	type group struct {
		labels model.LabelSet
		repeat time.Duration
		alerts []*alert.Alert
	}
	groups := map[string]*group{}
	g.mu.Lock()
	for fp, h := range g.flapHeld {
		if !g.flapNotified[fp] || g.flaps.flapping(fp, now) {
			continue
		}
		a := h.alert
		if cur := current(fp); cur != nil {
			a = cur
		}
		delete(g.flapHeld, fp)
		delete(g.flapNotified, fp)
		if a.Resolved() && !g.integration.SendResolved() {
			continue
		}
		gr := groups[h.groupKey]
		if gr == nil {
			gr = &group{labels: h.groupLabels, repeat: h.repeat}
			groups[h.groupKey] = gr
		}
		gr.alerts = append(gr.alerts, a)
	}
	g.mu.Unlock()
	for key, gr := range groups {
		if !g.limiter.AllowN(now, 1) {
			g.hold(gr.alerts)
			continue
		}
		nctx, cancel := context.WithTimeout(NotifyContext(ctx, g.receiver, key, gr.labels), time.Minute)
		v := g.integration.Notify(withReason(nctx, gr.alerts...), gr.alerts...)
		cancel()
		if v.Err() != nil {
			g.logger.Warn("notification of an alert stable after flapping failed", "err", v.Err())
			continue
		}
		g.markSent(gr.alerts)
		if g.logState != nil {
			for _, a := range gr.alerts {
				g.mu.Lock()
				hash, known := g.hashes[a.Fingerprint()]
				g.mu.Unlock()
				if known {
					g.logState(key, hash, a.Resolved(), gr.repeat)
				}
			}
		}
		g.logger.Info("alert stable after flapping, notified", "alerts", len(gr.alerts))
	}
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
func (g *guard) hold(alerts []*alert.Alert) {
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

// summaryPending reports whether a storm summary is waiting to be sent.
func (g *guard) summaryPending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.summaryTimer != nil || g.heldCount > 0
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
	sort.Slice(names, func(i, j int) bool {
		if held[names[i]] != held[names[j]] {
			return held[names[i]] > held[names[j]]
		}
		return names[i] < names[j]
	})
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
	if v := g.integration.Notify(withReason(ctx, a), a); v.Err() != nil {
		g.logger.Warn("storm summary failed", "err", v.Err())
	}
}

// withReason gives ctx the notification reason Alertmanager's integrations
// template ("first notification", "all alerts resolved", ...) when the
// pipeline's dedup stage has not set one: notifications the guard sends itself
// (prompt resolves, held-back groups, storm summaries, tests) would otherwise
// log "Missing notification reason" at ERROR for every message.
func withReason(ctx context.Context, alerts ...*alert.Alert) context.Context {
	if _, ok := notify.NotificationReason(ctx); ok {
		return ctx
	}
	reason := notify.ReasonAllAlertsResolved
	for _, a := range alerts {
		if !a.Resolved() {
			reason = notify.ReasonNewAlertsInGroup
			break
		}
	}
	return notify.WithNotificationReason(ctx, reason)
}
