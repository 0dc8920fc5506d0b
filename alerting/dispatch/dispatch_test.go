package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/internal/testutil"
)

// TestMain checks that a closed Dispatcher leaves no goroutine behind: Alertmanager's
// dispatcher, inhibitor and maintenance loops, prompt resolutions and storm summaries.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is the clock of flapping detection and rate limiting in tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// notification is one call of a fake receiver.
type notification struct {
	groupKey string
	alerts   []*alert.Alert
}

// fakeReceiver records what reaches it, and fails the next calls when told to.
type fakeReceiver struct {
	sendResolved bool

	mu    sync.Mutex
	got   []notification
	fails []notify.NotifyVerdict
}

func (f *fakeReceiver) Notify(ctx context.Context, alerts ...*alert.Alert) notify.NotifyVerdict {
	key, _ := notify.GroupKey(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fails) > 0 {
		v := f.fails[0]
		f.fails = f.fails[1:]
		return v
	}
	f.got = append(f.got, notification{groupKey: key, alerts: alerts})
	return notify.Success()
}

func (f *fakeReceiver) SendResolved() bool { return f.sendResolved }

func (f *fakeReceiver) notifications() []notification {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]notification(nil), f.got...)
}

// about returns the notifications that carry an alert with the label instance=inst.
func (f *fakeReceiver) about(inst string) []notification {
	var out []notification
	for _, n := range f.notifications() {
		for _, a := range n.alerts {
			if string(a.Labels["instance"]) == inst {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// find returns the first notification with an alert for which match holds, and that alert.
func (f *fakeReceiver) find(match func(a *alert.Alert) bool) (notification, *alert.Alert, bool) {
	for _, n := range f.notifications() {
		for _, a := range n.alerts {
			if match(a) {
				return n, a, true
			}
		}
	}
	return notification{}, nil, false
}

func (f *fakeReceiver) integration(receiver string) notify.Integration {
	return notify.NewIntegration(f, f, "fake", 0, receiver)
}

// newTestDispatcher starts a Dispatcher whose receivers are all fakes, routed by routing.
func newTestDispatcher(t *testing.T, routing string, o GuardOptions, clk *fakeClock) (*Dispatcher, map[string]*fakeReceiver) {
	t.Helper()
	d, err := New(Options{DataDir: t.TempDir(), Guard: o, Now: clk.Now, StableCheckInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(d.Close)
	cfg, err := config.Load(routing)
	require.NoError(t, err)
	fakes := map[string]*fakeReceiver{}
	for _, r := range cfg.Receivers {
		fakes[r.Name] = &fakeReceiver{sendResolved: true}
	}
	require.NoError(t, d.ApplyConfig(cfg, func(rcv config.Receiver, _ *template.Template) ([]notify.Integration, error) {
		return []notify.Integration{fakes[rcv.Name].integration(rcv.Name)}, nil
	}))
	return d, fakes
}

func firing(name, inst string) *model.Alert {
	now := time.Now()
	return &model.Alert{
		Labels:      model.LabelSet{"alertname": model.LabelValue(name), "instance": model.LabelValue(inst)},
		Annotations: model.LabelSet{"summary": model.LabelValue(name + " on " + inst)},
		StartsAt:    now, EndsAt: now.Add(time.Hour),
	}
}

func resolved(a *model.Alert) *model.Alert {
	r := *a
	r.EndsAt = time.Now()
	return &r
}

func put(t *testing.T, d *Dispatcher, alerts ...*model.Alert) {
	t.Helper()
	require.NoError(t, d.Put(context.Background(), alerts...))
}

func isEpisode(m *model.Alert, resolved bool) func(a *alert.Alert) bool {
	return func(a *alert.Alert) bool {
		return a.Fingerprint() == m.Fingerprint() && a.StartsAt.Equal(m.StartsAt) && a.Resolved() == resolved
	}
}

// TestResolvedSentPromptly checks a resolution goes out as soon as the alert is resolved,
// although the group's next flush is an hour away, to the group's message, once.
func TestResolvedSentPromptly(t *testing.T) {
	const routing = `
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: oncall
`
	d, fakes := newTestDispatcher(t, routing, GuardOptions{}, newFakeClock())
	rcv := fakes["oncall"]
	a, b := firing("URP", "a"), firing("URP", "b")
	put(t, d, a, b)
	testutil.WaitFor(t, 5*time.Second, "the group's firing notification", func() bool { return len(rcv.notifications()) == 1 })
	first := rcv.notifications()[0]
	require.Len(t, first.alerts, 2)

	put(t, d, resolved(a))
	testutil.WaitFor(t, 5*time.Second, "a's prompt resolved notification", func() bool { return len(rcv.notifications()) == 2 })
	second := rcv.notifications()[1]
	require.Len(t, second.alerts, 1, "only the resolved alert")
	require.True(t, isEpisode(a, true)(second.alerts[0]))
	require.Equal(t, first.groupKey, second.groupKey, "sent as the group's notification, so Slack edits the same message")

	put(t, d, resolved(b))
	testutil.WaitFor(t, 5*time.Second, "b's prompt resolved notification", func() bool { return len(rcv.notifications()) == 3 })
	require.True(t, isEpisode(b, true)(rcv.notifications()[2].alerts[0]))

	// The group's flush, whenever it comes, does not send the resolutions again.
	g := d.receivers["oncall"][0]
	ra, rb := alert.New(*resolved(a), time.Now(), false), alert.New(*resolved(b), time.Now(), false)
	ra.EndsAt, rb.EndsAt = time.Now().Add(-time.Second), time.Now().Add(-time.Second)
	ctx := NotifyContext(context.Background(), "oncall", first.groupKey, model.LabelSet{"alertname": "URP"})
	require.NoError(t, g.Notify(ctx, ra, rb).Err())
	require.Len(t, rcv.notifications(), 3, "the flush of already resolved alerts sends nothing")

	// Resolving again (Prometheus resends resolved alerts for a while) sends nothing more.
	put(t, d, resolved(a))
	d.sends.Wait()
	require.Len(t, rcv.notifications(), 3)
}

// TestResolvedNotSentWithoutSendResolved checks the prompt path honours send_resolved: false
// and does not resolve what was never notified as firing.
func TestResolvedNotSentWithoutSendResolved(t *testing.T) {
	const routing = `
route:
  receiver: quiet
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
receivers:
  - name: quiet
`
	d, fakes := newTestDispatcher(t, routing, GuardOptions{}, newFakeClock())
	rcv := fakes["quiet"]
	rcv.sendResolved = false
	a := firing("URP", "a")
	put(t, d, a)
	testutil.WaitFor(t, 5*time.Second, "firing notification", func() bool { return len(rcv.notifications()) == 1 })
	put(t, d, resolved(a))
	d.sends.Wait()
	require.Len(t, rcv.notifications(), 1)

	// An alert resolved before its group was ever flushed has nothing to resolve promptly.
	b := firing("Other", "b")
	b.StartsAt = time.Now().Add(-time.Minute)
	put(t, d, resolved(b))
	d.sends.Wait()
	require.Len(t, rcv.notifications(), 1)
}

// TestFlappingHeldUntilStable fires and resolves one alert three times within the flap window:
// the third firing yields one FLAPPING notification and then nothing about it, while the
// other alerts of its group are still notified; once stable, one normal notification.
func TestFlappingHeldUntilStable(t *testing.T) {
	const routing = `
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 100ms
  repeat_interval: 1h
receivers:
  - name: oncall
`
	clk := newFakeClock()
	d, fakes := newTestDispatcher(t, routing, GuardOptions{FlapCount: 3, FlapWindow: 10 * time.Minute}, clk)
	rcv := fakes["oncall"]

	// Two full episodes: normal notifications, resolutions promptly.
	for i := 1; i <= 2; i++ {
		clk.Advance(time.Minute)
		a := firing("Flappy", "a")
		put(t, d, a)
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("episode %d firing", i), func() bool { _, _, ok := rcv.find(isEpisode(a, false)); return ok })
		put(t, d, resolved(a))
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("episode %d resolved", i), func() bool { _, _, ok := rcv.find(isEpisode(a, true)); return ok })
	}
	require.Len(t, rcv.about("a"), 4)

	// The third firing within 10 minutes: one FLAPPING notification.
	clk.Advance(time.Minute)
	a3 := firing("Flappy", "a")
	put(t, d, a3)
	testutil.WaitFor(t, 5*time.Second, "the FLAPPING notification", func() bool { return len(rcv.about("a")) == 5 })
	_, flap, _ := rcv.find(isEpisode(a3, false))
	require.Contains(t, string(flap.Annotations["flapping"]), "fired 3 times in 10m0s")
	require.Equal(t, "[FLAPPING] Flappy on a", string(flap.Annotations["summary"]))

	// It keeps flapping: nothing about it, not even prompt resolutions. Each state is waited
	// for in a group flush, as Alertmanager's ingestion workers may reorder alerts put at once.
	g := d.receivers["oncall"][0]
	put(t, d, resolved(a3))
	waitHeld(t, g, a3, true)
	clk.Advance(time.Minute)
	a4 := firing("Flappy", "a")
	put(t, d, a4)
	waitHeld(t, g, a4, false)
	put(t, d, resolved(a4))
	waitHeld(t, g, a4, true)
	d.sends.Wait()
	// Another alert of the same group fires after all that: its notification, flushed with
	// the flapping one's latest state, does not carry it.
	b := firing("Flappy", "b")
	put(t, d, b)
	testutil.WaitFor(t, 5*time.Second, "b's notification", func() bool { return len(rcv.about("b")) == 1 })
	for _, al := range rcv.about("b")[0].alerts {
		require.Equal(t, "b", string(al.Labels["instance"]), "a flapping alert is held out of its group's notifications")
	}
	d.releaseStable(context.Background())
	require.Len(t, rcv.about("a"), 5, "nothing more about a while it flaps")
	require.Len(t, rcv.about("b"), 1, "b is not notified again for a's changes")

	// Ten minutes without a new firing: stable, and its current state (resolved) is notified
	// once, as a normal notification.
	clk.Advance(11 * time.Minute)
	d.releaseStable(context.Background())
	require.Len(t, rcv.about("a"), 6)
	last := rcv.about("a")[5]
	require.Len(t, last.alerts, 1)
	require.True(t, isEpisode(a4, true)(last.alerts[0]), "the current state: episode 4 resolved")
	require.Empty(t, last.alerts[0].Annotations["flapping"])
	d.releaseStable(context.Background())
	require.Len(t, rcv.about("a"), 6, "released once")

	// From now on it is notified normally again.
	a5 := firing("Flappy", "a")
	put(t, d, a5)
	testutil.WaitFor(t, 5*time.Second, "episode 5 firing, normally", func() bool { _, _, ok := rcv.find(isEpisode(a5, false)); return ok })
	_, got, _ := rcv.find(isEpisode(a5, false))
	require.Empty(t, got.Annotations["flapping"])
}

// TestFlappingStableWhileFiring checks an alert that stops flapping by staying firing gets a
// normal firing notification, and is then resolved promptly as usual.
func TestFlappingStableWhileFiring(t *testing.T) {
	clk := newFakeClock()
	flaps := newFlapTracker(GuardOptions{FlapCount: 2, FlapWindow: 5 * time.Minute})
	rcv := &fakeReceiver{sendResolved: true}
	g := newTestGuard(rcv, flaps, GuardOptions{FlapCount: 2, FlapWindow: 5 * time.Minute}, clk)
	ctx := NotifyContext(context.Background(), "oncall", "{}:{alertname=\"X\"}", model.LabelSet{"alertname": "X"})

	a1 := observe(flaps, clk, firing("X", "a"))
	require.NoError(t, g.Notify(ctx, a1).Err())
	clk.Advance(time.Minute)
	m2 := firing("X", "a")
	m2.StartsAt = a1.StartsAt.Add(time.Second)
	a2 := observe(flaps, clk, m2)
	require.NoError(t, g.Notify(ctx, a2).Err())
	require.Len(t, rcv.notifications(), 2)
	require.NotEmpty(t, rcv.notifications()[1].alerts[0].Annotations["flapping"])

	current := func(model.Fingerprint) *alert.Alert { return a2 }
	g.releaseStable(ctx, current)
	require.Len(t, rcv.notifications(), 2, "still flapping")
	clk.Advance(6 * time.Minute)
	g.releaseStable(ctx, current)
	require.Len(t, rcv.notifications(), 3)
	n := rcv.notifications()[2]
	require.Equal(t, "{}:{alertname=\"X\"}", n.groupKey)
	require.False(t, n.alerts[0].Resolved())
	require.Empty(t, n.alerts[0].Annotations["flapping"])
	require.True(t, g.firingNotified(resolvedAlert(a2)), "a later resolution goes out promptly")
}

// TestFlappingNotificationRetried checks a failed FLAPPING notification is not lost: the
// pipeline's retry sends it.
func TestFlappingNotificationRetried(t *testing.T) {
	clk := newFakeClock()
	o := GuardOptions{FlapCount: 1, FlapWindow: 5 * time.Minute}
	flaps := newFlapTracker(o)
	rcv := &fakeReceiver{sendResolved: true}
	rcv.fails = []notify.NotifyVerdict{notify.Retry(0, errors.New("503"), notify.ServerErrorReason)}
	g := newTestGuard(rcv, flaps, o, clk)
	ctx := NotifyContext(context.Background(), "oncall", "k", nil)
	a := observe(flaps, clk, firing("X", "a"))
	v := g.Notify(ctx, a)
	require.Error(t, v.Err())
	require.True(t, v.ShouldRetry())
	require.NoError(t, g.Notify(ctx, a).Err())
	require.Len(t, rcv.notifications(), 1)
	require.NotEmpty(t, rcv.notifications()[0].alerts[0].Annotations["flapping"])
	require.NoError(t, g.Notify(ctx, a).Err())
	require.Len(t, rcv.notifications(), 1, "one FLAPPING notification")
}

// TestRateLimitOneSummary sends a storm of notifications through one receiver: the burst goes
// out, the rest is held and reported in exactly one summary, other receivers are not limited,
// and the limit refills with time.
func TestRateLimitOneSummary(t *testing.T) {
	clk := newFakeClock()
	o := GuardOptions{RatePerMinute: 1, Burst: 5, SummaryDelay: 200 * time.Millisecond}
	o.setDefaults()
	flaps := newFlapTracker(o)
	rcv, other := &fakeReceiver{sendResolved: true}, &fakeReceiver{sendResolved: true}
	g := newTestGuard(rcv, flaps, o, clk)
	g2 := newTestGuard(other, flaps, o, clk)
	g2.receiver = "other"

	for i := range 30 {
		name := "Storm"
		if i%3 == 0 {
			name = "Other"
		}
		a := alert.New(*firing(name, fmt.Sprint(i)), time.Now(), false)
		ctx := NotifyContext(context.Background(), "oncall", fmt.Sprintf("group-%d", i), nil)
		require.NoError(t, g.Notify(ctx, a).Err(), "held notifications are not failures")
	}
	require.Len(t, rcv.notifications(), 5, "the burst goes out")

	// Another receiver has its own budget.
	for i := range 5 {
		a := alert.New(*firing("Storm", fmt.Sprint(i)), time.Now(), false)
		require.NoError(t, g2.Notify(NotifyContext(context.Background(), "other", "k", nil), a).Err())
	}
	require.Len(t, other.notifications(), 5)

	testutil.WaitFor(t, 5*time.Second, "the storm summary", func() bool { return len(rcv.notifications()) == 6 })
	require.False(t, g.summaryPending(), "nothing left for a second summary")
	sum := rcv.notifications()[5]
	require.Len(t, sum.alerts, 1)
	s := sum.alerts[0]
	require.Equal(t, "SluiceNotificationStorm", s.Name())
	require.Equal(t, "oncall", string(s.Labels["receiver"]))
	require.Equal(t, "Alert storm: 25 notifications held back by the rate limit of oncall", string(s.Annotations["summary"]))
	// 30 alerts, 10 of them Other (i = 0, 3, ...): the first five sent were Other, Storm,
	// Storm, Other, Storm, so 8 Other and 17 Storm were held.
	require.Equal(t, "Held back: Storm (17), Other (8). See the active alerts in the alerting API.", string(s.Annotations["description"]))
	require.Len(t, other.notifications(), 5, "no summary where nothing was held")

	// A minute later the budget has one more notification: the storm is over.
	clk.Advance(time.Minute)
	a := alert.New(*firing("After", "x"), time.Now(), false)
	require.NoError(t, g.Notify(NotifyContext(context.Background(), "oncall", "after", nil), a).Err())
	require.Len(t, rcv.notifications(), 7)
	require.Equal(t, "After", rcv.notifications()[6].alerts[0].Name())
	require.False(t, g.summaryPending())
}

// TestStormSummaryThroughDispatcher routes a storm of groups to two receivers through
// Alertmanager's pipeline: the limited receiver gets its burst and one summary.
func TestStormSummaryThroughDispatcher(t *testing.T) {
	const routing = `
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1h
  routes:
    - receiver: oncall
      continue: true
    - receiver: audit
receivers:
  - name: oncall
  - name: audit
`
	clk := newFakeClock()
	d, fakes := newTestDispatcher(t, routing, GuardOptions{RatePerMinute: 1, Burst: 3, SummaryDelay: 2 * time.Second}, clk)
	var storm []*model.Alert
	for i := range 12 {
		storm = append(storm, firing(fmt.Sprintf("Storm%02d", i), "a"))
	}
	put(t, d, storm...)
	g := d.receivers["oncall"][0]
	testutil.WaitFor(t, 10*time.Second, "the summary", func() bool { return len(fakes["oncall"].notifications()) == 4 })
	require.False(t, g.summaryPending())
	sum := fakes["oncall"].notifications()[3].alerts[0]
	require.Equal(t, "SluiceNotificationStorm", sum.Name())
	require.True(t, strings.HasPrefix(string(sum.Annotations["summary"]), "Alert storm: 9 notifications held back"), string(sum.Annotations["summary"]))
	testutil.WaitFor(t, 10*time.Second, "audit's burst", func() bool { return len(fakes["audit"].notifications()) >= 3 })
}

// waitHeld waits until a group flush has shown the guard m's episode in the given state,
// held back as flapping.
func waitHeld(t *testing.T, g *guard, m *model.Alert, resolved bool) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, "the flapping alert's state in a group flush", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		h, ok := g.flapHeld[m.Fingerprint()]
		return ok && isEpisode(m, resolved)(h.alert)
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestGuard(rcv *fakeReceiver, flaps *flapTracker, o GuardOptions, clk *fakeClock) *guard {
	o.setDefaults()
	in := rcv.integration("oncall")
	return newGuard("oncall", &in, flaps, o, discardLogger(), clk.Now)
}

// observe records a as Dispatcher.Put does and returns it as the pipeline passes it on.
func observe(flaps *flapTracker, clk *fakeClock, m *model.Alert) *alert.Alert {
	a := alert.New(*m, time.Now(), false)
	flaps.observe(a, clk.Now())
	return a
}

func resolvedAlert(a *alert.Alert) *alert.Alert {
	m := a.Alert
	m.EndsAt = time.Now().Add(-time.Millisecond)
	return alert.New(m, time.Now(), false)
}

// TestPromptResolveHonoursRetryAfter checks that a prompt resolved notification the receiver
// refuses with a retry delay (Slack's Retry-After) is retried after that delay, not sooner.
func TestPromptResolveHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := newFakeClock()
		o := GuardOptions{}
		flaps := newFlapTracker(o)
		rcv := &fakeReceiver{sendResolved: true}
		g := newTestGuard(rcv, flaps, o, clk)
		defer g.stop()
		ctx := NotifyContext(context.Background(), "oncall", "k", model.LabelSet{"alertname": "X"})
		a := observe(flaps, clk, firing("X", "a"))
		require.NoError(t, g.Notify(ctx, a).Err())
		require.True(t, g.firingNotified(resolvedAlert(a)))

		rcv.mu.Lock()
		rcv.fails = []notify.NotifyVerdict{notify.Retry(30*time.Second, errors.New("429"), notify.ClientErrorReason)}
		rcv.mu.Unlock()
		start := time.Now()
		g.resolvePromptly(ctx, resolvedAlert(a))
		require.Len(t, rcv.notifications(), 2, "the resolution went out on the retry")
		require.GreaterOrEqual(t, time.Since(start), 30*time.Second, "not before the receiver's Retry-After")
		require.Less(t, time.Since(start), 35*time.Second)
	})
}
