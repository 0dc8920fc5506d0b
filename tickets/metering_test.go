package tickets

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

// meterHistory is the synthetic metrics history of two tenants on two
// brokers: what each minute counted (the truth the test compares with) and
// the broker series as Prometheus scraped them every 15 s.
type meterHistory struct {
	t0      time.Time // first minute, on a minute boundary
	minutes int
	// holeFrom and holeTo: broker b1 was not scraped in [holeFrom, holeTo)
	// (minutes from t0); resetAt: broker b2 restarted (its counters began
	// again from zero) in that minute.
	holeFrom, holeTo, resetAt int
}

var meterTenants = []string{"alpha", "beta"}

// delta is what broker b of tenant tn counted of counter c in minute m.
func (h meterHistory) delta(c, tn, b, m int) int64 {
	return int64((c+1)*1_000_003 + tn*77_777 + b*1_111 + (m*7919)%10_007)
}

func (h meterHistory) disk(tn, b, m int) int64 {
	return int64(5_000_000_000 + tn*1_000_000 + b*1000 + m)
}

// openMetrics writes the history in the OpenMetrics text format promtool
// turns into TSDB blocks. A counter changes at second 30 of its minute, so
// its reading at a minute boundary holds exactly the minutes before.
func (h meterHistory) openMetrics(t *testing.T, path string) {
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	counters := []string{"sluice_tenant_bytes_in_total", "sluice_tenant_bytes_out_total", "sluice_tenant_requests_total"}
	scraped := func(b, sec int) bool { return b != 1 || sec < h.holeFrom*60 || sec >= h.holeTo*60 }
	for c, name := range counters {
		fmt.Fprintf(w, "# TYPE %s gauge\n", name)
		for tn, tenant := range meterTenants {
			for b := 1; b <= 2; b++ {
				var cum int64
				m := 0
				for sec := 0; sec <= h.minutes*60; sec += 15 {
					for ; m < h.minutes && m*60+30 <= sec; m++ {
						if b == 2 && m == h.resetAt {
							cum = 0
						}
						cum += h.delta(c, tn, b, m)
					}
					if scraped(b, sec) {
						fmt.Fprintf(w, "%s{tenant=%q,instance=\"b%d\"} %d %d\n", name, tenant, b, cum, h.t0.Unix()+int64(sec))
					}
				}
			}
		}
	}
	gauges := map[string]func(tn, b, m int) int64{
		"sluice_tenant_disk_bytes":                    h.disk,
		"sluice_tenant_partitions":                    func(tn, b, m int) int64 { return int64(6 + tn) },
		"sluice_tenant_plan_produce_bytes_per_second": func(tn, b, m int) int64 { return int64(5_000_000 * (tn + 1)) },
		"sluice_tenant_plan_disk_bytes":               func(tn, b, m int) int64 { return 20_000_000_000 },
		"sluice_tenant_plan_partitions":               func(tn, b, m int) int64 { return 12 },
		"sluice_tenant_plan_fetch_bytes_per_second":   func(tn, b, m int) int64 { return 10_000_000 },
		"sluice_tenant_plan_connections":              func(tn, b, m int) int64 { return 100 },
	}
	for name, val := range gauges {
		fmt.Fprintf(w, "# TYPE %s gauge\n", name)
		for tn, tenant := range meterTenants {
			for b := 1; b <= 2; b++ {
				for sec := 0; sec <= h.minutes*60; sec += 15 {
					if scraped(b, sec) {
						fmt.Fprintf(w, "%s{tenant=%q,instance=\"b%d\"} %d %d\n", name, tenant, b, val(tn, b, (sec-1)/60), h.t0.Unix()+int64(sec))
					}
				}
			}
		}
	}
	fmt.Fprintln(w, "# EOF")
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
}

// startPrometheusWith runs Debian's Prometheus on the TSDB blocks promtool
// made of the OpenMetrics file and returns its URL.
func startPrometheusWith(t *testing.T, openMetricsFile string) string {
	t.Helper()
	tsdb := filepath.Join(t.TempDir(), "tsdb")
	out, err := exec.Command("promtool", "tsdb", "create-blocks-from", "openmetrics", openMetricsFile, tsdb).CombinedOutput()
	require.NoError(t, err, "promtool: %s", out)
	return testutil.Prometheus(t, "global: {scrape_interval: 15s}\n", tsdb, "--storage.tsdb.retention.time", "30d")
}

// TestMeteringBackfillsFromRealPrometheus: the service was down for most of
// a 3-hour history and Prometheus itself missed 10 minutes of one broker;
// one broker restarted. The samples collected afterwards hold every byte:
// minutes outside the hole exactly, the hole's minutes spread and marked,
// and the totals exactly.
func TestMeteringBackfillsFromRealPrometheus(t *testing.T) {
	h := meterHistory{t0: time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Hour), minutes: 180, holeFrom: 60, holeTo: 70, resetAt: 100}
	om := filepath.Join(t.TempDir(), "history.om")
	h.openMetrics(t, om)
	promURL := startPrometheusWith(t, om)

	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir(), Database: testDatabase(t)})
	require.NoError(t, err)
	defer st.Close()
	cfg := MeteringConfig{PrometheusURL: promURL}
	cfg.setDefaults(DefaultConfig().Snapshot)
	require.NoError(t, cfg.validate())
	m, err := newMeter(cfg, st, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	clock := h.t0.Add(-time.Hour) // before the history: nothing to meter
	m.now = func() time.Time { return clock }
	ctx := context.Background()
	n, err := m.collect(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	marks, err := st.MeteringMarks(ctx)
	require.NoError(t, err)
	require.Equal(t, store.UnixMinute(clock)-1, marks["cursor"].Minute, "how far it looked is remembered")

	clock = h.t0.Add(31 * time.Minute) // 30 minutes final (the delay is 1m)

	// The service ran for the first 30 minutes, then was down.
	_, err = m.collect(ctx)
	require.NoError(t, err)
	// It starts again long after the history ends and catches up.
	clock = h.t0.Add(4 * time.Hour)
	_, err = m.collect(ctx)
	require.NoError(t, err)
	// Collecting again changes nothing.
	_, err = m.collect(ctx)
	require.NoError(t, err)

	for tn, tenant := range meterTenants {
		rows, err := st.TenantSamples(ctx, tenant, h.t0, h.t0.Add(time.Duration(h.minutes)*time.Minute))
		require.NoError(t, err)
		require.Len(t, rows, h.minutes, tenant)
		var wantIn, gotIn, wantOut, gotOut, holeWant, holeGot int64
		spread := 0
		for i, r := range rows {
			require.Equal(t, store.UnixMinute(h.t0)+int64(i), r.Minute)
			var in, out, req int64
			for b := 1; b <= 2; b++ {
				in += h.delta(0, tn, b, i)
				out += h.delta(1, tn, b, i)
				req += h.delta(2, tn, b, i)
			}
			wantIn, gotIn, wantOut, gotOut = wantIn+in, gotIn+r.BytesIn, wantOut+out, gotOut+r.BytesOut
			if r.Source == store.SourceSpread {
				spread++
			}
			// The hole: no reading of b1 from holeFrom-1 (stale readings
			// count as none after two minutes) to holeTo.
			if i >= h.holeFrom-2 && i < h.holeTo+1 {
				holeWant, holeGot = holeWant+in, holeGot+r.BytesIn
				continue
			}
			require.Equal(t, store.SourceMeasured, r.Source, "%s minute %d", tenant, i)
			require.Equal(t, in, r.BytesIn, "%s minute %d bytes in", tenant, i)
			require.Equal(t, out, r.BytesOut, "%s minute %d bytes out", tenant, i)
			require.Equal(t, req, r.Requests, "%s minute %d requests", tenant, i)
			require.Equal(t, h.disk(tn, 1, i)+h.disk(tn, 2, i), r.DiskBytes, "%s minute %d disk", tenant, i)
			require.Equal(t, int64(2*(6+tn)), r.Partitions, "partitions led by each broker, summed")
			require.Equal(t, int64(5_000_000*(tn+1)), r.PlanProduceBps)
			require.Equal(t, int64(100), r.PlanConnections)
		}
		require.Equal(t, wantIn, gotIn, "%s: total bytes in", tenant)
		require.Equal(t, wantOut, gotOut, "%s: total bytes out", tenant)
		require.Equal(t, holeWant, holeGot, "%s: bytes in over the hole", tenant)
		require.GreaterOrEqual(t, spread, h.holeTo-h.holeFrom-2, "%s: the hole's minutes are marked spread", tenant)
	}
}

// TestMeteringRetentionKeeps400Days: the retention job deletes samples
// older than metering.retention and keeps the 400 days before.
func TestMeteringRetentionKeeps400Days(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{DataDir: t.TempDir(), Database: testDatabase(t)})
	require.NoError(t, err)
	defer st.Close()
	cfg := MeteringConfig{PrometheusURL: "http://127.0.0.1:1"}
	cfg.setDefaults(DefaultConfig().Snapshot)
	require.NoError(t, cfg.validate())
	m, err := newMeter(cfg, st, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	now := time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	old, kept := now.Add(-401*24*time.Hour), now.Add(-399*24*time.Hour)
	ctx := context.Background()
	require.NoError(t, st.RecordMetering(ctx, []store.TenantSample{
		{Tenant: "a", Minute: store.UnixMinute(old), BytesIn: 1}, {Tenant: "a", Minute: store.UnixMinute(kept), BytesIn: 2}}, nil))
	require.NoError(t, m.expire(ctx))
	rows, err := st.TenantSamples(ctx, "a", old.Add(-time.Hour), now)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, int64(2), rows[0].BytesIn)
}
