package dashboards

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/exporter"
	"github.com/sluicemq/sluice/gateway"
	"github.com/sluicemq/sluice/internal/testutil"
)

// prometheusSeries are series Prometheus writes itself: the state of
// alerting rules, and the health of each scrape. Nothing in Sluice exports
// them, so their names and labels are not checked against live metrics.
var prometheusSeries = map[string]bool{"ALERTS": true, "ALERTS_FOR_STATE": true, "up": true}

// targetLabels are labels Prometheus attaches at scrape time: job and
// instance always, cluster from the scrape configuration (see
// provisioning/datasources/prometheus.yaml).
var targetLabels = map[string]bool{"job": true, "instance": true, "cluster": true}

// series describes one series name a live process exports: who exports it,
// and the labels seen with the values seen for each.
type series struct {
	source string
	labels map[string]map[string]bool
}

// catalog maps the series names Prometheus would store, histograms and
// summaries expanded to their _bucket, _sum and _count series, to what is
// known about them.
type catalog map[string]*series

func (c catalog) add(source string, fams map[string]*dto.MetricFamily) {
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			base := map[string]string{}
			for _, l := range m.GetLabel() {
				base[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					c.note(source, name+"_bucket", base, "le", model.FloatString(b.GetUpperBound()).String())
				}
				c.note(source, name+"_bucket", base, "le", "+Inf")
				c.note(source, name+"_sum", base, "", "")
				c.note(source, name+"_count", base, "", "")
			case dto.MetricType_SUMMARY:
				for _, q := range m.GetSummary().GetQuantile() {
					c.note(source, name, base, "quantile", model.FloatString(q.GetQuantile()).String())
				}
				c.note(source, name+"_sum", base, "", "")
				c.note(source, name+"_count", base, "", "")
			default:
				c.note(source, name, base, "", "")
			}
		}
	}
}

// note records a sample of name with labels, plus one extra label if named.
func (c catalog) note(source, name string, base map[string]string, extra, extraValue string) {
	s := c[name]
	if s == nil {
		s = &series{source: source, labels: map[string]map[string]bool{}}
		c[name] = s
	} else if !strings.Contains(s.source, source) {
		s.source += "+" + source
	}
	add := func(k, v string) {
		if s.labels[k] == nil {
			s.labels[k] = map[string]bool{}
		}
		s.labels[k][v] = true
	}
	for k, v := range base {
		add(k, v)
	}
	if extra != "" {
		add(extra, extraValue)
	}
}

func (s *series) labelNames() []string {
	names := make([]string, 0, len(s.labels))
	for k := range s.labels {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// check returns what is wrong with a query's use of the catalog: metric
// names nobody exports, labels those metrics do not have, and literal label
// values (those not from template variables) that no series carries.
func (c catalog) check(q query, a analysis) []string {
	var problems []string
	hasLabel := func(sel selector, label string) bool {
		if prometheusSeries[sel.metric] {
			return true // alert labels come from the rules
		}
		s := c[sel.metric]
		return s != nil && s.labels[label] != nil
	}
	for _, sel := range a.selectors {
		if prometheusSeries[sel.metric] {
			continue
		}
		s := c[sel.metric]
		if s == nil {
			problems = append(problems, fmt.Sprintf("%s: metric %s is exported by neither the broker nor the exporter", q.where, sel.metric))
			continue
		}
		for _, m := range sel.matchers {
			if targetLabels[m.Name] {
				continue
			}
			values := s.labels[m.Name]
			if values == nil {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %q (it has %v)", q.where, sel.metric, m.Name, s.labelNames()))
				continue
			}
			if fromVariable(m.Value) || m.Value == "" {
				continue
			}
			if !matchesAny(m, values) {
				problems = append(problems, fmt.Sprintf("%s: no %s series has %s (values seen: %v)", q.where, sel.metric, literal(m), sortedKeys(values)))
			}
		}
	}
	for _, g := range a.groupings {
		for _, label := range g.labels {
			if targetLabels[label] || len(g.selectors) == 0 {
				continue
			}
			found := false
			for _, sel := range g.selectors {
				found = found || hasLabel(sel, label)
			}
			if !found {
				problems = append(problems, fmt.Sprintf("%s: %s (%s) names a label none of its metrics has", q.where, g.what, label))
			}
		}
	}
	if q.label != "" && !targetLabels[q.label] {
		found := false
		for _, sel := range a.selectors {
			found = found || hasLabel(sel, q.label)
		}
		if !found {
			problems = append(problems, fmt.Sprintf("%s: label_values reads label %q, which %s does not have", q.where, q.label, q.expr))
		}
	}
	return problems
}

// matchesAny reports whether the matcher's literal value or regex matches
// a value seen; for != and !~ this asks whether the value it excludes exists,
// so that a misspelt exclusion does not pass silently.
func matchesAny(m *labels.Matcher, values map[string]bool) bool {
	probe := m
	switch m.Type {
	case labels.MatchNotEqual:
		probe = labels.MustNewMatcher(labels.MatchEqual, m.Name, m.Value)
	case labels.MatchNotRegexp:
		probe = labels.MustNewMatcher(labels.MatchRegexp, m.Name, m.Value)
	}
	for v := range values {
		if probe.Matches(v) {
			return true
		}
	}
	return false
}

func literal(m *labels.Matcher) string { return fmt.Sprintf("%s%s%q", m.Name, m.Type, m.Value) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestMetricsExist starts a broker and an exporter in-process, makes
// traffic and a consumer group with a known lag so that labelled series
// exist, scrapes both /metrics, and checks that every metric, label and
// literal label value the dashboards' PromQL uses is really exported.
func TestMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker and an exporter")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	b := startBroker(t)
	consumer := makeTraffic(ctx, t, b.Addr())
	defer consumer.Close()
	e := startExporter(t, b.Addr())

	// The exporter has seen the group once it reports the lag committed
	// below, in records and in seconds.
	var exporterFams map[string]*dto.MetricFamily
	testutil.WaitFor(t, 20*time.Second, "the exporter's lag series", func() bool {
		exporterFams = scrape(t, e.Addr())
		return hasSample(exporterFams, "kafka_consumergroup_lag", map[string]string{"consumergroup": testGroup, "partition": "0"}, 5) &&
			hasSample(exporterFams, "sluice_consumergroup_lag_seconds", map[string]string{"consumergroup": testGroup, "partition": "0"}, -1) &&
			hasSample(exporterFams, "sluice_consumergroup_partition_committed", map[string]string{"consumergroup": testGroup, "partition": "2"}, 0)
	})
	brokerFams := scrape(t, b.MetricsAddr())
	gw := startGateway(t, b.Addr())
	gatewayTraffic(ctx, t, gw.Addr())

	cat := catalog{}
	cat.add("broker", brokerFams)
	cat.add("exporter", exporterFams)
	cat.add("gateway", scrape(t, gw.MetricsAddr()))

	used := map[string]bool{}
	var problems []string
	n := 0
	for _, f := range loadDashboards(t) {
		for _, q := range queries(t, f) {
			a, err := analyse(q)
			require.NoError(t, err)
			n++
			for _, sel := range a.selectors {
				used[sel.metric] = true
			}
			problems = append(problems, cat.check(q, a)...)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d expressions checked, %d metric names used, %d problems", n, len(used), len(problems))

	// The check itself: each of these mistakes must be caught against the
	// same live metrics, and the correct forms must pass.
	for _, tc := range []struct {
		q    query
		want string // part of the problem reported; empty for none
	}{
		{query{expr: `sum(rate(sluice_topic_bytes_in_total{cluster=~"$cluster"}[$__rate_interval]))`}, ""},
		{query{expr: `sum(rate(sluice_topic_bytez_in_total{cluster=~"$cluster"}[$__rate_interval]))`}, "exported by neither"},
		{query{expr: `kafka_consumergroup_lag{consumer_group=~"$consumergroup"}`}, `has no label "consumer_group"`},
		{query{expr: `sluice_brokers{state="unfencd"}`}, "no sluice_brokers series has"},
		{query{expr: `sluice_consumergroup_status{status!="Ok"}`}, "no sluice_consumergroup_status series has"},
		{query{expr: `sluice_request_total_seconds_bucket{api=~"Produce|Fetch"}`}, ""},
		{query{expr: `sluice_request_total_seconds_bucket{api=~"Produse|Fecth"}`}, "no sluice_request_total_seconds_bucket series has"},
		{query{expr: `histogram_quantile(0.99, sum by (le) (rate(sluice_request_total_seconds[1m])))`}, "exported by neither"},
		{query{expr: `sum by (api) (sluice_topic_bytes_in_total)`}, "by (api)"},
		{query{expr: `sluice_log_high_watermark and on (topic, partiton) sluice_partition_leader`}, "on (partiton)"},
		{query{expr: `sluice_log_size_bytes`, label: "partition"}, ""},
		{query{expr: `sluice_log_size_bytes`, label: "consumergroup"}, "label_values reads label"},
		{query{expr: `count(ALERTS{alertstate="firing", severity="critical"}) or vector(0)`}, ""},
	} {
		a, err := analyse(tc.q)
		require.NoError(t, err, tc.q.expr)
		got := strings.Join(cat.check(tc.q, a), "\n")
		if tc.want == "" {
			require.Empty(t, got, tc.q.expr)
		} else {
			require.Contains(t, got, tc.want, tc.q.expr)
		}
	}

	// Not a failure: what the dashboards leave out, to see at a glance.
	var unused []string
	for name := range cat {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if (strings.HasPrefix(name, "sluice_") || strings.HasPrefix(name, "kafka_")) && !used[name] &&
			!used[base+"_bucket"] && !used[base+"_sum"] && !used[base+"_count"] && !used[base] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	t.Logf("exported but on no dashboard: %v", unused)
}

const (
	testTopic    = "dash-orders"
	testGroup    = "dash-billing"
	testTxnTopic = "dash-payments"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker runs a single-node broker in-process on ports the kernel
// picks, with /metrics served, until the test ends.
func startBroker(t *testing.T) *brokertest.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.OffsetsTopicNumPartitions = 1
	cfg.Flush = "always" // so fsync latency has observations
	noDelay := int64(0)
	cfg.GroupInitialRebalanceDelayMs = &noDelay
	return brokertest.Run(t, cfg)
}

// makeTraffic creates a topic of three partitions with ten records each,
// fails one request on purpose so an error code is counted, commits one
// transaction and aborts another on a topic of its own, and leaves a
// consumer group member that consumed everything but committed partition 0
// at 5 (lag 5), partition 1 at 10 (caught up) and partition 2 not at all.
// The returned consumer stays in the group until closed.
func makeTraffic(ctx context.Context, t *testing.T, addr string) *kgo.Client {
	t.Helper()
	producer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(testTopic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer producer.Close()
	adm := kadm.NewClient(producer)
	_, err = adm.CreateTopic(ctx, 3, 1, nil, testTopic)
	require.NoError(t, err)
	var records []*kgo.Record
	for p := range int32(3) {
		for i := range 10 {
			records = append(records, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "record %d of partition %d", i, p)})
		}
	}
	require.NoError(t, producer.ProduceSync(ctx, records...).FirstErr())
	_, err = adm.CreateTopic(ctx, 3, 1, nil, testTopic)
	require.Error(t, err, "creating the topic twice fails with TOPIC_ALREADY_EXISTS, counted in sluice_request_errors_total")

	// One committed and one aborted transaction on a topic of their own, so that the coordinator's
	// counters have both results.
	_, err = adm.CreateTopic(ctx, 1, 1, nil, testTxnTopic)
	require.NoError(t, err)
	txn, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(testTxnTopic), kgo.TransactionalID("dash-txn"))
	require.NoError(t, err)
	defer txn.Close()
	for _, end := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		require.NoError(t, txn.BeginTransaction())
		require.NoError(t, txn.ProduceSync(ctx, &kgo.Record{Value: []byte("in a transaction")}).FirstErr())
		require.NoError(t, txn.EndTransaction(ctx, end))
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumerGroup(testGroup), kgo.ConsumeTopics(testTopic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	got := 0
	for got < len(records) {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			consumer.Close()
			require.NoError(t, err)
		}
		got += fs.NumRecords()
	}
	var commitErr error
	consumer.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{
		testTopic: {0: {Epoch: -1, Offset: 5}, 1: {Epoch: -1, Offset: 10}},
	}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		if err == nil {
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if p.ErrorCode != 0 {
						commitErr = fmt.Errorf("commit %s/%d: error code %d", tp.Topic, p.Partition, p.ErrorCode)
					}
				}
			}
		}
	})
	if commitErr != nil {
		consumer.Close()
		require.NoError(t, commitErr)
	}
	return consumer
}

// startExporter runs the exporter in-process against the broker, collecting
// every 200ms, until the test ends.
func startExporter(t *testing.T, bootstrap string) *exporter.Exporter {
	t.Helper()
	cfg := exporter.DefaultConfig()
	cfg.Bootstrap = []string{bootstrap}
	cfg.Listen = "127.0.0.1:0"
	cfg.Interval = 200 * time.Millisecond
	cfg.CollectTimeout = 10 * time.Second
	e, err := exporter.New(cfg, testLogger())
	require.NoError(t, err)
	testutil.Start(t, "the exporter", e.Run).WaitReady(t, e.Ready(), time.Minute)
	return e
}

// scrape reads /metrics and returns the families by name.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// hasSample reports whether a family has a sample with the given labels
// (a subset) and value; a negative want accepts any value.
func hasSample(fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) bool {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		if want < 0 || m.GetGauge().GetValue() == want {
			return true
		}
	}
	return false
}

// startGateway starts `sluice gateway` in front of bootstrap, with /metrics.
func startGateway(t *testing.T, bootstrap string) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0", Bootstrap: []string{bootstrap},
		MetricsListen: "127.0.0.1:0"}, testLogger(), nil)
	require.NoError(t, err)
	testutil.Start(t, "the gateway", g.Run)
	return g
}

// gatewayTraffic produces and fetches through the gateway so that its
// labelled series exist.
func gatewayTraffic(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(testTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: testTopic, Value: []byte("through the gateway")}).FirstErr())
	fs := cl.PollFetches(ctx)
	require.NoError(t, fs.Err0())
}
