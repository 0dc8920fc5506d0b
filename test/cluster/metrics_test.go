package cluster

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/chaos"
)

// scrapeSum sums a metric's samples over the running brokers' /metrics.
func scrapeSum(ctx context.Context, cl *chaos.Cluster, name string) (float64, error) {
	var sum float64
	for _, id := range cl.Running() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cl.Node(id).MetricsAddr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		f := fams[name]
		if f == nil {
			return 0, fmt.Errorf("broker %d does not export %s", id, name)
		}
		for _, m := range f.Metric {
			sum += metricValue(m)
		}
	}
	return sum, nil
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// TestMetricsAfterBrokerLoss checks the brokers' own metrics against a known fault: a killed
// broker leaves every partition of an RF-3 topic under-replicated on the survivors, the cluster
// keeps exactly one active controller, and the ISR shrinks are counted.
func TestMetricsAfterBrokerLoss(t *testing.T) {
	cl := startCluster(t)
	createTopic(t, cl, "watched", 4, 3, 2)
	ctx := testCtx(t, 60*time.Second)
	require.NoError(t, chaos.WaitFor(ctx, 20*time.Second, "one active controller, no URP", func(ctx context.Context) (bool, error) {
		ctl, err := scrapeSum(ctx, cl, "sluice_active_controller")
		if err != nil {
			return false, err
		}
		urp, err := scrapeSum(ctx, cl, "sluice_under_replicated_partitions")
		if err != nil {
			return false, err
		}
		return ctl == 1 && urp == 0, fmt.Errorf("active controllers %v, URP %v", ctl, urp)
	}))

	ctlID, err := cl.Controller(ctx)
	require.NoError(t, err)
	victim := int32(1)
	if victim == ctlID {
		victim = 2
	}
	// Every partition of "watched" has a replica on the victim; so do those of __consumer_offsets and
	// __transaction_state (replication factor 3 over three brokers): the survivors' URP is their sum.
	wantURP := 4.0
	for _, internal := range []string{"__consumer_offsets", "__transaction_state"} {
		n := len(viewOf(t, cl, internal).Partitions[internal])
		require.NotZero(t, n, internal)
		wantURP += float64(n)
	}
	require.NoError(t, cl.Kill(victim))
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "URP on the survivors", func(ctx context.Context) (bool, error) {
		urp, err := scrapeSum(ctx, cl, "sluice_under_replicated_partitions")
		if err != nil {
			return false, err
		}
		ctl, err := scrapeSum(ctx, cl, "sluice_active_controller")
		if err != nil {
			return false, err
		}
		return urp == wantURP && ctl == 1, fmt.Errorf("URP %v (want %v), active controllers %v", urp, wantURP, ctl)
	}))
	shrinks, err := scrapeSum(ctx, cl, "sluice_isr_shrinks_total")
	require.NoError(t, err)
	require.Greater(t, shrinks, 0.0, "the survivors saw the ISRs of partitions they lead shrink")

	require.NoError(t, cl.Restart(ctx, victim))
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "URP back to 0", func(ctx context.Context) (bool, error) {
		urp, err := scrapeSum(ctx, cl, "sluice_under_replicated_partitions")
		if err != nil {
			return false, err
		}
		return urp == 0, fmt.Errorf("URP %v", urp)
	}))
	expands, err := scrapeSum(ctx, cl, "sluice_isr_expands_total")
	require.NoError(t, err)
	require.Greater(t, expands, 0.0)
}
