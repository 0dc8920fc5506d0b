package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func signal(group string, alarms ...AlarmSignal) GroupSignal {
	return GroupSignal{GroupKey: `{}:{alertname="` + group + `"}`, Receiver: "tickets",
		GroupLabels: map[string]string{"alertname": group}, CommonLabels: map[string]string{"alertname": group, "cluster": "sluice"}, Alarms: alarms}
}

func alarm(name, fp, status string, at time.Time, labels ...string) AlarmSignal {
	ls := map[string]string{"alertname": name, "cluster": "sluice", "severity": "warning"}
	for i := 0; i+1 < len(labels); i += 2 {
		ls[labels[i]] = labels[i+1]
	}
	return AlarmSignal{Fingerprint: fp, Status: status, StartsAt: at, Labels: ls,
		Annotations: map[string]string{"summary": name + " " + fp}}
}

// TestAlarmsOfOneCauseJoinOneIncident: the alarms of one broker fault arrive
// in three Alertmanager groups; those diagnosed with the broker as cause join
// one incident titled from the diagnosis, the timeline shows each joining and
// leaving, an alarm without a cause keeps its group's incident, and the
// incident reopens only for the same cause and cluster id.
func TestAlarmsOfOneCauseJoinOneIncident(t *testing.T) {
	st, _ := openTest(t)
	clk := &fakeClock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	st.now = clk.now
	ctx := context.Background()
	t0 := clk.now()
	broker2 := &Cause{Key: "cid-1/broker/2", Title: "Broker 2 (127.0.0.1:9093) down: 57 partitions under-replicated, 2 offline", Severity: "critical", Impact: 59}
	pol := func(causes map[string]*Cause) IntakePolicy {
		return IntakePolicy{ReopenWindow: 10 * time.Minute, DefaultCluster: "sluice", Causes: causes, ClusterID: "cid-1", TransientWindow: 30 * time.Second}
	}

	down := alarm("SluiceBrokerDown", "fp-down", AlarmFiring, t0, "broker", "2")
	res, err := st.ApplyGroup(ctx, signal("SluiceBrokerDown", down), pol(map[string]*Cause{"fp-down": broker2}))
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	id := res.Opened[0]
	inc, err := st.GetIncident(ctx, id)
	require.NoError(t, err)
	require.Equal(t, broker2.Title, inc.Title)
	require.Equal(t, "critical", inc.Severity)
	require.Equal(t, "cid-1/broker/2", inc.CauseKey)

	clk.add(10 * time.Second)
	urp1 := alarm("SluiceUnderReplicatedPartitions", "fp-urp1", AlarmFiring, t0, "broker", "1")
	urp3 := alarm("SluiceUnderReplicatedPartitions", "fp-urp3", AlarmFiring, t0, "broker", "3")
	lag := alarm("SluiceConsumerGroupStatus", "fp-lag", AlarmFiring, t0, "consumergroup", "billing")
	res, err = st.ApplyGroup(ctx, signal("SluiceUnderReplicatedPartitions", urp1, urp3), pol(map[string]*Cause{"fp-urp1": broker2, "fp-urp3": broker2}))
	require.NoError(t, err)
	require.Empty(t, res.Opened)
	require.Equal(t, []uint{id}, res.Touched)
	res, err = st.ApplyGroup(ctx, signal("SluiceConsumerGroupStatus", lag), pol(nil))
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	lagID := res.Opened[0]
	require.NotEqual(t, id, lagID)

	open, err := st.ListIncidents(ctx, IncidentFilter{Status: "open"})
	require.NoError(t, err)
	require.Len(t, open, 2)
	d, err := st.IncidentDetail(ctx, id)
	require.NoError(t, err)
	require.Len(t, d.Alarms, 3)
	joined := 0
	for _, e := range d.Timeline {
		if e.Kind == "alarm_firing" && strings.HasPrefix(e.Detail, "joined: ") {
			joined++
		}
	}
	require.Equal(t, 3, joined)
	require.True(t, st.mustOpen(t, id))

	// The broker returns: alarms leave one by one; the last resolves it.
	clk.add(2 * time.Minute)
	_, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp-down", AlarmResolved, t0, "broker", "2")), pol(nil))
	require.NoError(t, err)
	require.True(t, st.mustOpen(t, id))
	res, err = st.ApplyGroup(ctx, signal("SluiceUnderReplicatedPartitions",
		alarm("SluiceUnderReplicatedPartitions", "fp-urp1", AlarmResolved, t0, "broker", "1"),
		alarm("SluiceUnderReplicatedPartitions", "fp-urp3", AlarmResolved, t0, "broker", "3")), pol(nil))
	require.NoError(t, err)
	require.Equal(t, []uint{id}, res.Resolved)
	d, err = st.IncidentDetail(ctx, id)
	require.NoError(t, err)
	require.False(t, d.Incident.Transient, "open for two minutes")
	left := 0
	for _, e := range d.Timeline {
		if e.Kind == "alarm_resolved" && strings.HasPrefix(e.Detail, "left (resolved): ") {
			left++
		}
	}
	require.Equal(t, 3, left)

	// Same cause within the window: reopens.
	clk.add(time.Minute)
	t1 := clk.now()
	res, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp-down", AlarmFiring, t1, "broker", "2")),
		pol(map[string]*Cause{"fp-down": broker2}))
	require.NoError(t, err)
	require.Equal(t, []uint{id}, res.Opened)
	inc, err = st.GetIncident(ctx, id)
	require.NoError(t, err)
	require.Equal(t, 1, inc.ReopenCount)

	// Another broker's fault is another incident.
	broker3 := &Cause{Key: "cid-1/broker/3", Title: "Broker 3 (127.0.0.1:9094) down", Severity: "critical"}
	res, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp-down3", AlarmFiring, t1, "broker", "3")),
		pol(map[string]*Cause{"fp-down3": broker3}))
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	require.NotEqual(t, id, res.Opened[0])

	// A grouped (causeless) incident does not reopen across a cleared state
	// directory (another cluster id), even within the window.
	_, err = st.ApplyGroup(ctx, signal("SluiceConsumerGroupStatus", alarm("SluiceConsumerGroupStatus", "fp-lag", AlarmResolved, t0, "consumergroup", "billing")), pol(nil))
	require.NoError(t, err)
	clk.add(time.Minute)
	p2 := pol(nil)
	p2.ClusterID = "cid-2"
	res, err = st.ApplyGroup(ctx, signal("SluiceConsumerGroupStatus", alarm("SluiceConsumerGroupStatus", "fp-lag", AlarmFiring, clk.now(), "consumergroup", "billing")), p2)
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	require.NotEqual(t, lagID, res.Opened[0])
	old, err := st.GetIncident(ctx, lagID)
	require.NoError(t, err)
	require.Equal(t, StatusClosed, old.Status)
}

// TestTransientIncident: every alarm resolved within the transient window
// marks the incident transient.
func TestTransientIncident(t *testing.T) {
	st, _ := openTest(t)
	clk := &fakeClock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	st.now = clk.now
	ctx := context.Background()
	t0 := clk.now()
	pol := IntakePolicy{ReopenWindow: time.Minute, DefaultCluster: "sluice", TransientWindow: 30 * time.Second}
	res, err := st.ApplyGroup(ctx, signal("SluiceOfflinePartitions", alarm("SluiceOfflinePartitions", "fp", AlarmFiring, t0)), pol)
	require.NoError(t, err)
	id := res.Opened[0]
	clk.add(20 * time.Second)
	_, err = st.ApplyGroup(ctx, signal("SluiceOfflinePartitions", alarm("SluiceOfflinePartitions", "fp", AlarmResolved, t0)), pol)
	require.NoError(t, err)
	inc, err := st.GetIncident(ctx, id)
	require.NoError(t, err)
	require.Equal(t, StatusResolved, inc.Status)
	require.True(t, inc.Transient)
}

func (s *Store) mustOpen(t *testing.T, id uint) bool {
	inc, err := s.GetIncident(context.Background(), id)
	require.NoError(t, err)
	return inc.Open()
}

// TestNoReopenAcrossClearedState: the same cause within the reopen window
// does not reopen an incident when the cluster's metadata log index went
// backwards since it opened (its brokers' state directories were cleared:
// `make clean`), even under the same cluster id.
func TestNoReopenAcrossClearedState(t *testing.T) {
	st, _ := openTest(t)
	clk := &fakeClock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}
	st.now = clk.now
	ctx := context.Background()
	cause := &Cause{Key: "sluice/broker/2", Title: "Broker 2 (127.0.0.1:9093) down", Severity: "critical"}
	pol := func(idx uint64) IntakePolicy {
		return IntakePolicy{ReopenWindow: time.Hour, DefaultCluster: "sluice", ClusterID: "sluice", MetadataIndex: idx,
			Causes: map[string]*Cause{"fp": cause}}
	}
	t0 := clk.now()
	res, err := st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp", AlarmFiring, t0)), pol(500))
	require.NoError(t, err)
	first := res.Opened[0]
	clk.add(time.Minute)
	_, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp", AlarmResolved, t0)), pol(520))
	require.NoError(t, err)

	// Fires again ten minutes later in a fresh cluster: metadata index 40.
	clk.add(10 * time.Minute)
	res, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp", AlarmFiring, clk.now())), pol(40))
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	require.NotEqual(t, first, res.Opened[0])
	old, err := st.GetIncident(ctx, first)
	require.NoError(t, err)
	require.Equal(t, StatusClosed, old.Status)
	require.Zero(t, old.ReopenCount)

	// In the same cluster (index grew) it reopens.
	second := res.Opened[0]
	clk.add(time.Minute)
	_, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp", AlarmResolved, clk.now().Add(-time.Minute))), pol(60))
	require.NoError(t, err)
	clk.add(time.Minute)
	res, err = st.ApplyGroup(ctx, signal("SluiceBrokerDown", alarm("SluiceBrokerDown", "fp", AlarmFiring, clk.now())), pol(80))
	require.NoError(t, err)
	require.Equal(t, []uint{second}, res.Opened)
}
