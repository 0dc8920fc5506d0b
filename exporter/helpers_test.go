package exporter

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startBroker starts an in-process broker on a loopback port 0, stopped at
// cleanup.
func startBroker(t testing.TB) *brokertest.Broker {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.OffsetsTopicNumPartitions = 2
	cfg.GroupInitialRebalanceDelayMs = new(int64)
	return brokertest.Run(t, cfg)
}

// newClient returns a kgo client of the broker that writes to explicit
// partitions, closed at cleanup.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	kcl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	return kcl
}

func createTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// produce writes n records to topic/partition, the i-th with timestamp
// ts(i), and waits for their acknowledgements.
func produce(t testing.TB, kcl *kgo.Client, topic string, partition int32, n int, ts func(i int) time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Value: []byte("v")}
		if ts != nil {
			recs[i].Timestamp = ts(i)
		}
	}
	require.NoError(t, kcl.ProduceSync(ctx, recs...).FirstErr())
}

func commit(t testing.TB, adm *kadm.Client, group, topic string, offsets map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var os kadm.Offsets
	for p, o := range offsets {
		os.AddOffset(topic, p, o, -1)
	}
	resp, err := adm.CommitOffsets(ctx, group, os)
	require.NoError(t, err)
	require.NoError(t, resp.Error())
}

func newExporter(t testing.TB, cfg Config) *Exporter {
	t.Helper()
	e, err := New(cfg, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

func collect(t testing.TB, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.Collect(ctx))
}

// metrics is a parsed /metrics page.
type metrics map[string]*dto.MetricFamily

// scrape gets /metrics from the exporter's handler and parses it with the
// Prometheus text parser.
func scrape(t testing.TB, h http.Handler) metrics {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return parseMetrics(t, rec.Body)
}

func parseMetrics(t testing.TB, r io.Reader) metrics {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	require.NoError(t, err)
	return fams
}

// get returns the value of the series of name whose labels are exactly
// labels ("k=v" pairs), and whether it exists.
func (m metrics) get(name string, labels ...string) (float64, bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		want[k] = v
	}
next:
	for _, s := range f.GetMetric() {
		if len(s.GetLabel()) != len(want) {
			continue
		}
		for _, lp := range s.GetLabel() {
			if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
				continue next
			}
		}
		switch {
		case s.Gauge != nil:
			return s.GetGauge().GetValue(), true
		case s.Counter != nil:
			return s.GetCounter().GetValue(), true
		case s.Untyped != nil:
			return s.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// value is get for a series that must exist.
func (m metrics) value(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := m.get(name, labels...)
	require.Truef(t, ok, "no series %s%v", name, labels)
	return v
}

// status returns the one status whose one-hot series is 1, failing unless
// exactly one is.
func (m metrics) status(t testing.TB, name string, labels ...string) string {
	t.Helper()
	var got []string
	for _, st := range statuses {
		if m.value(t, name, append(labels, "status="+st.String())...) == 1 {
			got = append(got, st.String())
		}
	}
	require.Lenf(t, got, 1, "%s%v is not one-hot", name, labels)
	return got[0]
}

func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Bootstrap = []string{addr}
	cfg.Listen = "127.0.0.1:0"
	cfg.Interval = time.Hour // tests call Collect themselves unless they say otherwise
	cfg.CollectTimeout = 20 * time.Second
	cfg.StatusWindow = 3
	return cfg
}

func httptestGet(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}
