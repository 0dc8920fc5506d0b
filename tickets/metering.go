package tickets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// Metering: every minute the service reads the brokers' per-tenant metrics
// (sluice_tenant_*) from the Prometheus query API — a Prometheus that
// scrapes the brokers, or Sluice's alerting, which serves the same API — and
// writes one integer row per tenant and minute (store.TenantSample).
//
// Counters are read raw, per broker series, at every minute boundary (range
// queries with a 60 s step) and turned into deltas here, so the figures are
// exact integers, not PromQL's extrapolated increase(). A counter that went
// down was reset (a broker restarted): the new value is the delta. Collection
// resumes from the last minute it counted (the counter marks in the
// database), so minutes the service was down are filled from the metrics
// history when it starts again; where the history itself has a hole, the
// counter delta across the hole is spread evenly over its minutes and those
// rows are marked store.SourceSpread.

// MeteringConfig says where tenant usage is read from and how long it is
// kept.
type MeteringConfig struct {
	// PrometheusURL is the Prometheus query API the samples are read from;
	// snapshot.prometheus_url (with its prometheus_http_config) by default.
	// Metering is off when both are empty.
	PrometheusURL string `yaml:"prometheus_url"`
	// PrometheusHTTPConfig is Prometheus' HTTP client configuration for
	// PrometheusURL (bearer token, basic auth, TLS).
	PrometheusHTTPConfig commoncfg.HTTPClientConfig `yaml:"prometheus_http_config"`
	// Interval is how often samples are collected, 1m by default.
	Interval time.Duration `yaml:"interval"`
	// Delay is how old a minute must be before it is counted, so that the
	// scrapes of its end have reached Prometheus; 1m by default.
	Delay time.Duration `yaml:"delay"`
	// Backfill is how far back the first collection of an empty database
	// reaches into the metrics history, 35 days by default (Prometheus keeps
	// 15 days unless told otherwise).
	Backfill time.Duration `yaml:"backfill"`
	// Retention is how long samples are kept, 400 days by default and at
	// least that: a statement can be recomputed for the past 13 months.
	Retention time.Duration `yaml:"retention"`
}

const minMeteringRetention = 400 * 24 * time.Hour

// setDefaults fills the zero values: the snapshot's Prometheus, 1m, 1m, 35
// days, 400 days.
func (m *MeteringConfig) setDefaults(snap snapshot.Config) {
	if m.PrometheusURL == "" && snap.PrometheusURL != "" {
		m.PrometheusURL, m.PrometheusHTTPConfig = snap.PrometheusURL, snap.PrometheusHTTPConfig
	}
	if m.Interval == 0 {
		m.Interval = time.Minute
	}
	if m.Delay == 0 {
		m.Delay = time.Minute
	}
	if m.Backfill == 0 {
		m.Backfill = 35 * 24 * time.Hour
	}
	if m.Retention == 0 {
		m.Retention = minMeteringRetention
	}
}

// validate checks the configuration; it changes nothing. Zero values are the defaults.
func (m *MeteringConfig) validate() error {
	if m.Interval != 0 && (m.Interval < time.Second || m.Interval > time.Hour) {
		return errors.New("metering.interval: from 1s to 1h")
	}
	if m.Delay < 0 || m.Delay > time.Hour {
		return errors.New("metering.delay: from 0 to 1h")
	}
	if m.Backfill != 0 && (m.Backfill < time.Minute || m.Backfill > minMeteringRetention) {
		return errors.New("metering.backfill: from 1m to 9600h (400 days)")
	}
	if m.Retention != 0 && m.Retention < minMeteringRetention {
		return fmt.Errorf("metering.retention: at least 9600h (400 days), not %s", m.Retention)
	}
	if err := m.PrometheusHTTPConfig.Validate(); err != nil {
		return fmt.Errorf("metering.prometheus_http_config: %w", err)
	}
	return nil
}

// meterCounter is a broker counter metered per tenant; scale turns its value
// into the sample's integer unit.
type meterCounter struct {
	name   string
	metric string
	scale  float64
	add    func(*store.TenantSample, int64)
}

var meterCounters = []meterCounter{
	{"bytes_in", "sluice_tenant_bytes_in_total", 1, func(s *store.TenantSample, v int64) { s.BytesIn += v }},
	{"bytes_out", "sluice_tenant_bytes_out_total", 1, func(s *store.TenantSample, v int64) { s.BytesOut += v }},
	{"requests", "sluice_tenant_requests_total", 1, func(s *store.TenantSample, v int64) { s.Requests += v }},
	{"throttle_ms", "sluice_tenant_throttle_seconds_total", 1000, func(s *store.TenantSample, v int64) { s.ThrottleMs += v }},
}

// meterGauge is a gauge read at the end of each minute, aggregated over the
// brokers by expr.
type meterGauge struct {
	expr string
	set  func(*store.TenantSample, int64)
}

var meterGauges = []meterGauge{
	// Every broker reports the log size times the replication factor of
	// the tenant's partitions it leads, and how many it leads: the sums are
	// the tenant's.
	{"sum by (tenant) (sluice_tenant_disk_bytes)", func(s *store.TenantSample, v int64) { s.DiskBytes = v }},
	{"sum by (tenant) (sluice_tenant_partitions)", func(s *store.TenantSample, v int64) { s.Partitions = v }},
	// Plans come from the metadata log: every broker reports the same.
	{"max by (tenant) (sluice_tenant_plan_produce_bytes_per_second)", func(s *store.TenantSample, v int64) { s.PlanProduceBps = v }},
	{"max by (tenant) (sluice_tenant_plan_fetch_bytes_per_second)", func(s *store.TenantSample, v int64) { s.PlanFetchBps = v }},
	{"max by (tenant) (sluice_tenant_plan_disk_bytes)", func(s *store.TenantSample, v int64) { s.PlanDiskBytes = v }},
	{"max by (tenant) (sluice_tenant_plan_partitions)", func(s *store.TenantSample, v int64) { s.PlanPartitions = v }},
	{"max by (tenant) (sluice_tenant_plan_connections)", func(s *store.TenantSample, v int64) { s.PlanConnections = v }},
}

// meteringChunk bounds one range query (Prometheus refuses more than 11,000
// points per series).
const meteringChunk = 720 // minutes

// meter collects tenant samples from a Prometheus query API.
type meter struct {
	cfg   MeteringConfig
	st    *store.Store
	prom  *http.Client
	log   *slog.Logger
	now   func() time.Time
	query func(ctx context.Context, expr string, start, end time.Time) ([]snapshot.Series, error)

	collections *prometheus.CounterVec // by result
	counted     prometheus.Gauge       // the end of the last minute counted
}

func newMeter(cfg MeteringConfig, st *store.Store, log *slog.Logger, reg prometheus.Registerer) (*meter, error) {
	hc, err := commoncfg.NewClientFromConfig(cfg.PrometheusHTTPConfig, "sluice_tickets_metering")
	if err != nil {
		return nil, fmt.Errorf("metering.prometheus_http_config: %w", err)
	}
	hc.Timeout = time.Minute
	m := &meter{cfg: cfg, st: st, prom: hc, log: log, now: st.Now}
	f := promauto.With(reg)
	m.collections = f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_tickets_metering_collections_total",
		Help: "Tenant metering collections from the Prometheus query API, by result (ok, failed); failed minutes are collected at the next one."}, []string{"result"})
	m.counted = f.NewGauge(prometheus.GaugeOpts{Name: "sluice_tickets_metering_counted_until_seconds",
		Help: "Unix time up to which tenant usage has been counted into samples; time() minus it is how far metering lags."})
	m.query = func(ctx context.Context, expr string, start, end time.Time) ([]snapshot.Series, error) {
		return snapshot.QueryRange(ctx, m.prom, m.cfg.PrometheusURL, expr, start, end, time.Minute)
	}
	return m, nil
}

// run collects at once (the backfill after a restart) and then every
// interval until ctx ends.
func (m *meter) run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		n, err := m.collect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.collections.WithLabelValues("failed").Inc()
			m.log.Warn("tenant metering: collection failed; the minutes are collected at the next attempt", "err", err)
		} else {
			m.collections.WithLabelValues("ok").Inc()
			m.log.Debug("tenant metering: collected", "samples", n)
		}
		if marks, err := m.st.MeteringMarks(ctx); err == nil {
			m.counted.Set(float64(marks["cursor"].Minute * 60))
		}
		if err := m.expire(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("tenant metering: retention", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expire deletes the samples older than the retention.
func (m *meter) expire(ctx context.Context) error {
	n, err := m.st.DeleteTenantSamplesBefore(ctx, m.now().Add(-m.cfg.Retention))
	if n > 0 {
		m.log.Info("tenant metering: samples past the retention deleted", "samples", n, "retention", m.cfg.Retention)
	}
	return err
}

// collect counts the minutes from the last one counted up to now minus the
// delay, in chunks, and returns the number of samples written.
func (m *meter) collect(ctx context.Context) (int, error) {
	end := store.UnixMinute(m.now().Add(-m.cfg.Delay))
	marks, err := m.st.MeteringMarks(ctx)
	if err != nil {
		return 0, err
	}
	cursor, first := int64(0), len(marks) == 0
	for _, mk := range marks {
		cursor = max(cursor, mk.Minute)
	}
	if first {
		cursor = end - int64(m.cfg.Backfill/time.Minute)
	}
	written := 0
	for cursor < end {
		to := min(cursor+meteringChunk, end)
		if first {
			// A backfill into the history's empty past costs one query a
			// chunk, not one per metric.
			at := time.Unix(to*60, 0)
			probe, err := m.query(ctx, fmt.Sprintf(`count(last_over_time({__name__=~"sluice_tenant_.+"}[%dm]))`, to-cursor+1), at, at)
			if err != nil {
				return written, err
			}
			if len(probe) == 0 {
				cursor = to
				if cursor == end {
					// Nothing to meter yet: remember how far we looked.
					return written, m.st.RecordMetering(ctx, nil, []store.MeteringMark{{Series: "cursor", Metric: "cursor", Minute: end}})
				}
				continue
			}
		}
		n, err := m.collectChunk(ctx, marks, cursor, to, first)
		if err != nil {
			return written, err
		}
		written += n
		cursor = to
	}
	return written, nil
}

// minuteRow is a sample being built and whether it has gauge values.
type minuteRow struct {
	store.TenantSample
	gauged bool
}

// collectChunk reads the steps from..to (Unix minutes) and writes the
// minutes they complete. marks is updated in place. During the first
// collection of an empty database each series' first reading is its
// baseline: what it counted before is not metered. Afterwards a series
// without a mark is new and counted from zero.
func (m *meter) collectChunk(ctx context.Context, marks map[string]store.MeteringMark, from, to int64, first bool) (int, error) {
	rows := map[string]map[int64]*minuteRow{}
	row := func(tenant string, minute int64) *minuteRow {
		byMin := rows[tenant]
		if byMin == nil {
			byMin = map[int64]*minuteRow{}
			rows[tenant] = byMin
		}
		r := byMin[minute]
		if r == nil {
			r = &minuteRow{TenantSample: store.TenantSample{Tenant: tenant, Minute: minute}}
			byMin[minute] = r
		}
		return r
	}
	start, end := time.Unix(from*60, 0), time.Unix(to*60, 0)
	var newMarks []store.MeteringMark
	for _, mc := range meterCounters {
		// A reading older than two minutes at a step is no reading: the
		// 5-minute lookback of PromQL would repeat a stale value into a hole
		// of the history and hide it.
		expr := fmt.Sprintf("%[1]s unless (time() - timestamp(%[1]s) > 120)", mc.metric)
		series, err := m.query(ctx, expr, start, end)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", mc.metric, err)
		}
		for _, se := range series {
			tenant := se.Labels["tenant"]
			if tenant == "" || len(se.Points) == 0 {
				continue
			}
			key := seriesKey(mc.metric, se.Labels)
			prev, havePrev := marks[key]
			for _, p := range se.Points {
				minute, v := int64(p[0])/60, int64(math.Round(p[1]*mc.scale))
				if !havePrev {
					prev, havePrev = store.MeteringMark{Minute: minute, Value: v}, true
					if first {
						continue // the baseline
					}
					// A series that appears after the first collection
					// started counting from zero in the minute before.
					prev = store.MeteringMark{Minute: minute - 1, Value: 0}
				}
				if minute <= prev.Minute {
					continue // counted already
				}
				delta := v - prev.Value
				if delta < 0 {
					delta = v // reset: the broker restarted
				}
				gap := minute - prev.Minute
				per, extra := delta/gap, delta%gap
				for k := int64(0); k < gap; k++ {
					r := row(tenant, prev.Minute+k)
					d := per
					if k < extra {
						d++
					}
					mc.add(&r.TenantSample, d)
					if gap > 1 {
						r.Source = store.SourceSpread
					}
				}
				prev.Minute, prev.Value = minute, v
			}
			mk := store.MeteringMark{Series: key, Tenant: tenant, Metric: mc.name, Minute: prev.Minute, Value: prev.Value}
			marks[key] = mk
			newMarks = append(newMarks, mk)
		}
	}
	for _, g := range meterGauges {
		series, err := m.query(ctx, g.expr, start, end)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", g.expr, err)
		}
		for _, se := range series {
			tenant := se.Labels["tenant"]
			if tenant == "" {
				continue
			}
			for _, p := range se.Points {
				minute := int64(p[0])/60 - 1 // the value at a minute's end
				if minute < from {
					continue
				}
				r := row(tenant, minute)
				g.set(&r.TenantSample, int64(math.Round(p[1])))
				r.gauged = true
			}
		}
	}
	var out []store.TenantSample
	for tenant, byMin := range rows {
		minutes := make([]int64, 0, len(byMin))
		for mn := range byMin {
			minutes = append(minutes, mn)
		}
		sort.Slice(minutes, func(i, j int) bool { return minutes[i] < minutes[j] })
		// Minutes before this chunk (a series back after a hole older than
		// the cursor) already have rows: add to them.
		if minutes[0] < from {
			old, err := m.st.TenantSamples(ctx, tenant, time.Unix(minutes[0]*60, 0), start)
			if err != nil {
				return 0, err
			}
			for _, o := range old {
				if r := byMin[o.Minute]; r != nil {
					r.BytesIn += o.BytesIn
					r.BytesOut += o.BytesOut
					r.Requests += o.Requests
					r.ThrottleMs += o.ThrottleMs
					gaugesFrom(&r.TenantSample, o)
					r.gauged = true
					if o.Source == store.SourceSpread {
						r.Source = store.SourceSpread
					}
				}
			}
		}
		// Minutes of a hole have no gauge reading: they take the one read at
		// the hole's end (the rows are marked spread).
		var next *minuteRow
		for i := len(minutes) - 1; i >= 0; i-- {
			r := byMin[minutes[i]]
			if r.gauged {
				next = r
			} else if next != nil {
				gaugesFrom(&r.TenantSample, next.TenantSample)
				r.Source = store.SourceSpread
			}
		}
		for _, mn := range minutes {
			out = append(out, byMin[mn].TenantSample)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Tenant != out[j].Tenant {
			return out[i].Tenant < out[j].Tenant
		}
		return out[i].Minute < out[j].Minute
	})
	// The cursor advances even when no series answered: record it on a
	// mark of its own.
	cur := store.MeteringMark{Series: "cursor", Tenant: "", Metric: "cursor", Minute: to}
	marks[cur.Series] = cur
	newMarks = append(newMarks, cur)
	return len(out), m.st.RecordMetering(ctx, out, newMarks)
}

func gaugesFrom(dst *store.TenantSample, src store.TenantSample) {
	dst.DiskBytes, dst.Partitions = src.DiskBytes, src.Partitions
	dst.PlanProduceBps, dst.PlanFetchBps, dst.PlanDiskBytes = src.PlanProduceBps, src.PlanFetchBps, src.PlanDiskBytes
	dst.PlanPartitions, dst.PlanConnections = src.PlanPartitions, src.PlanConnections
}

// seriesKey names a series by its metric and sorted labels.
func seriesKey(metric string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(metric)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}
