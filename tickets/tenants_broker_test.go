package tickets

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

// TestTenantsThroughARealBroker runs the tenant pages' API against a real
// broker's admin API and meters its tenant metrics through a real
// Prometheus: plans and tenants written through the ops service are in the
// metadata log (read back with the brokers' own client), the broker's
// refusals reach the caller, usage comes from the broker, and the samples
// carry the broker's disk, partitions and plan limits.
func TestTenantsThroughARealBroker(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminListen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.OffsetsTopicNumPartitions = 1
	cfg.Tenants.TenantDiskCheckIntervalMs = 100
	b := brokertest.Run(t, cfg)

	ts := startService(t, func(c *Config) { c.Snapshot.AdminURLs = []string{b.AdminAddr()} })
	direct := &adminapi.Client{URLs: []string{"http://" + b.AdminAddr()}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	small := Plan{Name: "small", ProduceBytesPerSecond: 1_000_000, FetchBytesPerSecond: 2_000_000, DiskBytes: 10_000_000_000, Partitions: 10, Connections: 50}
	ts.must(http.StatusOK, "PUT", "/api/v1/plans/small", ts.admin, small, nil)
	got, err := direct.Plan(ctx, "small")
	require.NoError(t, err)
	require.Equal(t, small.ProduceBytesPerSecond, got.ProduceBytesPerSecond)
	require.Equal(t, small.Partitions, got.Partitions)

	alpha := Tenant{Name: "alpha", Plan: "small", Prefixes: []string{"alpha."}, Principals: []string{"User:alpha-app"},
		SlackChannel: "#alpha-alerts"}
	ts.must(http.StatusOK, "PUT", "/api/v1/tenants/alpha", ts.admin, alpha, nil)
	stored, err := direct.Tenant(ctx, "alpha")
	require.NoError(t, err)
	require.Equal(t, []string{"alpha."}, stored.Prefixes)
	require.Equal(t, "#alpha-alerts", stored.SlackChannel)

	// The broker's own refusals come back with its message, and change nothing.
	code, body := ts.do("PUT", "/api/v1/tenants/beta", ts.admin, Tenant{Plan: "gold", Prefixes: []string{"beta."}})
	require.Equal(t, http.StatusBadRequest, code, "%s", body)
	require.Contains(t, string(body), "cluster refused")
	require.Contains(t, string(body), "gold")
	code, body = ts.do("PUT", "/api/v1/tenants/beta", ts.admin, Tenant{Plan: "small", Prefixes: []string{"alpha.x"}, Principals: []string{"User:beta-app"}})
	require.Equal(t, http.StatusConflict, code, "a prefix inside alpha's namespace: %s", body)
	ts.must(http.StatusNotFound, "GET", "/api/v1/tenants/beta", ts.admin, nil, nil)
	var list struct{ Tenants []Tenant }
	ts.must(http.StatusOK, "GET", "/api/v1/tenants", ts.viewer, nil, &list)
	require.Len(t, list.Tenants, 1)

	// A topic in alpha's namespace, with records: its partitions and disk.
	require.NotEmpty(t, b.ListenerAddr("PLAINTEXT"))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.ListenerAddr("PLAINTEXT")), kgo.ProducerBatchCompression(kgo.NoCompression()))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	_, err = adm.CreateTopic(ctx, 3, 1, nil, "alpha.orders")
	require.NoError(t, err)
	for i := range 50 {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "alpha.orders", Value: []byte(strings.Repeat("x", 1000) + fmt.Sprint(i))}).FirstErr())
	}
	var usage TenantUsage
	testutil.WaitForErr(t, 60*time.Second, "the broker reports alpha's partitions and disk", func() (bool, error) {
		code, body := ts.do("GET", "/api/v1/tenants/alpha/usage", ts.viewer, nil)
		if code != http.StatusOK {
			return false, fmt.Errorf("%d %s", code, body)
		}
		ts.must(http.StatusOK, "GET", "/api/v1/tenants/alpha/usage", ts.viewer, nil, &usage)
		return usage.Partitions == 3 && usage.DiskBytes > 1000, fmt.Errorf("%+v", usage)
	})
	require.Equal(t, 1, usage.Brokers)

	// A real Prometheus scrapes the broker; the meter reads it.
	promURL := testutil.Prometheus(t, fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: broker\n    static_configs: [{targets: [%q]}]\n", b.MetricsAddr()), "")
	mcfg := MeteringConfig{PrometheusURL: promURL}
	mcfg.setDefaults(ts.cfg.Snapshot)
	require.NoError(t, mcfg.validate())
	m, err := newMeter(mcfg, ts.Store(), testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	testutil.WaitForErr(t, 60*time.Second, "prometheus has alpha's plan", func() (bool, error) {
		series, err := m.query(ctx, "sluice_tenant_plan_disk_bytes", time.Now(), time.Now())
		return err == nil && len(series) == 1, err
	})
	// Gauges are read at minute ends; PromQL answers for the next minutes
	// from the last sample (its 5-minute lookback), so the meter can read
	// two minute ends without the test waiting for them.
	start := time.Now()
	m.now = func() time.Time { return start.Add(3 * time.Minute) }
	_, err = m.collect(ctx)
	require.NoError(t, err)
	rows, err := ts.Store().TenantSamples(ctx, "alpha", start.Add(-time.Hour), start.Add(time.Hour))
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	last := rows[len(rows)-1]
	require.Equal(t, int64(3), last.Partitions)
	require.Equal(t, usage.DiskBytes, last.DiskBytes)
	require.Equal(t, small.ProduceBytesPerSecond, last.PlanProduceBps)
	require.Equal(t, small.DiskBytes, last.PlanDiskBytes)
	require.Equal(t, int64(small.Connections), last.PlanConnections)
	var st Statement
	ts.must(http.StatusOK, "GET", "/api/v1/tenants/alpha/statements/"+currentPeriod(last.Start()), ts.viewer, nil, &st)
	require.Equal(t, small.DiskBytes, st.Plan.DiskBytes)
	require.Equal(t, usage.DiskBytes, st.PeakDiskBytes)
	require.Equal(t, "small", st.Suggested, st.SuggestedReason)
	require.Equal(t, store.SourceMeasured, last.Source)
}
