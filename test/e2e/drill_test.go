package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// The alerts a killed broker must raise: its own target down, and the partitions it followed
// under-replicated on the leaders that are left.
const (
	alertBrokerDown = "SluiceBrokerDown"
	alertURP        = "SluiceUnderReplicatedPartitions"
)

var drillAlerts = []string{alertURP, alertBrokerDown}

// TestDrill runs the fault drill twice over one cluster: with Prometheus and Alertmanager, then
// with `sluice alerting`. Each mode kills a different broker and labels its alerts with its own
// cluster name, so that its incidents are told apart.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill starts a 3-broker cluster, Prometheus and Alertmanager and takes minutes")
	}
	require.NoError(t, binErr)
	ctx, cancel := context.WithTimeout(context.Background(), 13*time.Minute)
	defer cancel()
	s := startStack(t, ctx)

	t.Run("prometheus-alertmanager", func(t *testing.T) {
		promBin, amBin := findBinary("prometheus"), findBinary("prometheus-alertmanager")
		if promBin == "" || amBin == "" {
			t.Skipf("skipping the Prometheus mode: Debian's prometheus (%q) and prometheus-alertmanager (%q) must be installed (apt-get install prometheus prometheus-alertmanager)", promBin, amBin)
		}
		const cluster = "drill-prometheus"
		drill(t, ctx, s, "drill-a", 2, cluster, func() pipeline { return startPromPipeline(t, s, cluster, promBin, amBin) })
	})
	t.Run("sluice-alerting", func(t *testing.T) {
		const cluster = "drill-alerting"
		drill(t, ctx, s, "drill-b", 3, cluster, func() pipeline { return startSluicePipeline(t, s, cluster) })
	})
}

// observed is an incident as the drill saw it.
type observed struct {
	ticketIncident
	alerts   []string // names of the alarms that joined it
	alarms   int      // alarms that joined it
	snapshot *ticketSnapshot
}

func (o *observed) names(victim int32) bool {
	return o.snapshot != nil && strings.Contains(o.snapshot.Diagnosis+" ", fmt.Sprintf("broker %d ", victim))
}

// drill runs one mode: load, kill, incident, restart, resolve, read back.
func drill(t *testing.T, ctx context.Context, s *stack, topic string, victim int32, cluster string, start func() pipeline) {
	seeds := s.cluster.Bootstrap()
	require.NoError(t, createTopic(ctx, seeds, topic))
	require.NoError(t, s.cluster.WaitHealthy(ctx, 60*time.Second, topic))

	p := start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s", p.logs())
		}
	})
	defer p.stop()
	alive := func() error {
		if err := s.alive(); err != nil {
			return testutil.Permanent(err)
		}
		if err := p.alive(); err != nil {
			return testutil.Permanent(err)
		}
		return nil
	}
	testutil.WaitForErr(t, 90*time.Second, "every target up and every rule group evaluated", func() (bool, error) {
		if err := alive(); err != nil {
			return false, err
		}
		return p.ready(ctx)
	})
	testutil.WaitForErr(t, 60*time.Second, "no drill alert firing before the fault", func() (bool, error) {
		f, err := p.firing(ctx)
		if err != nil {
			return false, err
		}
		for _, a := range drillAlerts {
			if f[a] {
				return false, fmt.Errorf("%s is firing before the fault", a)
			}
		}
		return true, nil
	})
	before, err := s.incidents(ctx, cluster)
	require.NoError(t, err)
	require.Empty(t, before, "incidents of %s before the fault", cluster)

	l, err := startLoad(seeds, topic)
	require.NoError(t, err)
	defer l.close()
	testutil.WaitForErr(t, 30*time.Second, "acknowledgements on every partition", func() (bool, error) {
		return l.minAcked() >= 100, nil
	})
	ackedBefore, _ := l.counts()

	// The fault. If the drill stops before the repair, the broker is restarted for the next mode.
	t.Cleanup(func() {
		if !s.cluster.Node(victim).Running() {
			_ = s.cluster.Restart(ctx, victim)
		}
	})
	killAt := time.Now()
	require.NoError(t, s.cluster.Kill(victim))
	t.Logf("%s: killed broker %d (kill -9) at %s with %d records acknowledged", cluster, victim, killAt.Format(time.TimeOnly), ackedBefore)

	firedAt := map[string]time.Duration{}
	incs := map[uint]*observed{}
	byAlert := func(name string) *observed {
		for _, o := range incs {
			if slices.Contains(o.alerts, name) {
				return o
			}
		}
		return nil
	}
	testutil.WaitForErr(t, 4*time.Minute, fmt.Sprintf("incidents of %v with a snapshot", drillAlerts), func() (bool, error) {
		if err := alive(); err != nil {
			return false, err
		}
		f, err := p.firing(ctx)
		if err != nil {
			return false, err
		}
		for a := range f {
			if _, ok := firedAt[a]; !ok {
				firedAt[a] = time.Since(killAt)
				t.Logf("%s: %s firing %s after the kill", cluster, a, firedAt[a].Round(100*time.Millisecond))
			}
		}
		if err := observeIncidents(ctx, s, cluster, incs); err != nil {
			return false, err
		}
		for _, a := range drillAlerts {
			if byAlert(a) == nil {
				return false, fmt.Errorf("no incident for %s yet (firing: %v)", a, keys(f))
			}
		}
		for _, o := range incs {
			if o.snapshot == nil {
				return false, fmt.Errorf("incident %d (%v) has no snapshot yet", o.ID, o.alerts)
			}
		}
		return true, nil
	})

	// Every incident of the fault has a snapshot naming the killed broker.
	var killToIncident time.Duration = -1
	for _, o := range sortedIncidents(incs) {
		snap, _ := json.MarshalIndent(o.snapshot, "", "  ")
		if o.snapshot == nil {
			// Opened since the wait ended: checked at the next pass of the resolve wait.
			continue
		}
		t.Logf("%s: incident %d %q (%v, receiver %s, brokers %v) opened %s after the kill; diagnosis: %s",
			cluster, o.ID, o.Title, o.alerts, o.Receiver, o.Brokers, o.DetectedAt.Sub(killAt).Round(100*time.Millisecond), o.snapshot.Diagnosis)
		assert.True(t, o.names(victim), "incident %d (%v): the snapshot's diagnosis does not name broker %d; snapshot:\n%s", o.ID, o.alerts, victim, snap)
		assert.Equal(t, "triggered", o.Status)
		assert.Equal(t, "critical", o.Severity)
		if d := o.DetectedAt.Sub(killAt); o.names(victim) && (killToIncident < 0 || d < killToIncident) {
			killToIncident = d
		}
	}
	assert.Contains(t, byAlert(alertBrokerDown).Brokers, fmt.Sprint(victim), "the broker-down incident lists the killed broker")

	// The repair.
	restartAt := time.Now()
	require.NoError(t, s.cluster.Restart(ctx, victim))
	t.Logf("%s: broker %d restarted and ready %s after the restart", cluster, victim, time.Since(restartAt).Round(100*time.Millisecond))
	testutil.WaitForErr(t, 4*time.Minute, "every incident of the fault resolved by its alarms", func() (bool, error) {
		if err := alive(); err != nil {
			return false, err
		}
		if err := observeIncidents(ctx, s, cluster, incs); err != nil {
			return false, err
		}
		f, err := p.firing(ctx)
		if err != nil {
			return false, err
		}
		for _, o := range incs {
			if o.Status != "resolved" {
				return false, fmt.Errorf("incident %d (%v) is %s (firing: %v)", o.ID, o.alerts, o.Status, keys(f))
			}
		}
		return true, nil
	})
	// One fault, one incident: the alarms of every group share the diagnosed cause.
	assert.Len(t, incs, 1, "one incident for the killed broker")
	var restartToResolved time.Duration
	for _, o := range sortedIncidents(incs) {
		if o.snapshot != nil {
			assert.True(t, o.names(victim), "incident %d (%v): the snapshot's diagnosis %q does not name broker %d", o.ID, o.alerts, o.snapshot.Diagnosis, victim)
		}
		d := o.ResolvedAt.Sub(restartAt)
		restartToResolved = max(restartToResolved, d)
		t.Logf("%s: incident %d %q (%d alarms of %v) resolved by %q %s after the restart", cluster, o.ID, o.Title, o.alarms, o.alerts, o.ResolvedBy, d.Round(100*time.Millisecond))
		assert.Equal(t, "alertmanager", o.ResolvedBy, "incident %d resolves by itself, not by a person", o.ID)
	}

	// Nothing acknowledged was lost.
	require.NoError(t, s.cluster.WaitHealthy(ctx, 60*time.Second, topic))
	require.NoError(t, l.stop(60*time.Second))
	acked, failed := l.counts()
	check, err := l.verify(ctx, seeds)
	require.NoError(t, err)
	t.Logf("%s: %d records acknowledged (%d after the kill), %d failed %v; read back %d: lost %d, moved %d, duplicated %d, reordered %d, foreign %d, unacknowledged but present %d",
		cluster, acked, acked-ackedBefore, failed, l.failureSummary(), check.InLog, check.Lost, check.Moved, check.Duplicated, check.Reordered, check.Foreign, check.Unacked)
	if check.Violations() > 0 {
		for _, pc := range check.Partitions {
			for _, e := range pc.Examples {
				t.Logf("partition %d: %s", pc.Partition, e)
			}
		}
	}
	assert.Zero(t, check.Violations(), "acknowledged records lost, moved, duplicated or reordered")
	assert.Zero(t, l.dataLoss, "franz-go detected data loss")
	assert.Greater(t, acked, ackedBefore, "the load kept being acknowledged through the fault")

	var fired []string
	for _, a := range drillAlerts {
		fired = append(fired, fmt.Sprintf("%s firing %s", a, firedAt[a].Round(100*time.Millisecond)))
	}
	t.Logf("RESULT %s: kill->incident %s (first incident whose diagnosis names broker %d), restart->resolved %s (all %d incidents); %s; %s",
		cluster, killToIncident.Round(100*time.Millisecond), victim, restartToResolved.Round(100*time.Millisecond), len(incs),
		strings.Join(fired, ", "), p)
}

// observeIncidents refreshes incs with the ticket service's incidents of cluster, reading each
// incident's alarms (alarms of other groups join an incident of the same diagnosed cause) and,
// until it has one, its snapshot.
func observeIncidents(ctx context.Context, s *stack, cluster string, incs map[uint]*observed) error {
	list, err := s.incidents(ctx, cluster)
	if err != nil {
		return err
	}
	for _, inc := range list {
		o, ok := incs[inc.ID]
		if !ok {
			o = &observed{}
			incs[inc.ID] = o
		}
		names, n, err := s.alertNames(ctx, inc.ID)
		if err != nil {
			return err
		}
		o.alerts, o.alarms = names, n
		o.ticketIncident = inc
		if o.snapshot == nil {
			snap, ok, err := s.snapshot(ctx, inc.ID)
			if err != nil {
				return err
			}
			if ok {
				o.snapshot = &snap
			}
		}
	}
	return nil
}

func sortedIncidents(incs map[uint]*observed) []*observed {
	var out []*observed
	for _, o := range incs {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b *observed) int { return int(a.ID) - int(b.ID) })
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
