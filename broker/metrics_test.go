package broker

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/testutil"
)

// value is the value of the sample with the given labels (a subset), or -1.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

func TestBrokerMetrics(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.MetricsListen = "127.0.0.1:0"
		c.Flush = "always"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("metered"))
	adm := kadm.NewClient(cl)
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "metered")
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, cl.ProduceSync(ctx, kgo.StringRecord("m"+itoa(i))).FirstErr())
	}
	consumer := newClient(t, tb.Addr(), kgo.ConsumeTopics("metered"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 10 {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, fs.Err0())
		got += fs.NumRecords()
	}

	topic := map[string]string{"topic": "metered"}
	part := map[string]string{"topic": "metered", "partition": "0"}
	// A request's total time is observed once its response is written, which can
	// be just after the client has read it.
	var fams map[string]*dto.MetricFamily
	testutil.WaitFor(t, 10*time.Second, "the tenth produce request's total time", func() bool {
		fams = testutil.Scrape(t, tb.MetricsAddr())
		return value(fams, "sluice_request_total_seconds", map[string]string{"api": "Produce"}) >= 10
	})
	require.Equal(t, 10.0, value(fams, "sluice_topic_records_in_total", topic))
	require.Equal(t, 10.0, value(fams, "sluice_topic_records_out_total", topic))
	require.Equal(t, 10.0*70, value(fams, "sluice_topic_bytes_in_total", topic), "ten single-record batches of 70 bytes (61-byte header, 9-byte record)")
	require.Equal(t, 10.0, value(fams, "sluice_log_end_offset", part))
	require.Equal(t, 10.0, value(fams, "sluice_log_high_watermark", part))
	require.Equal(t, 1.0, value(fams, "sluice_log_segments", part))
	require.Equal(t, 1.0, value(fams, "sluice_partition_leader", part))
	require.Equal(t, 1.0, value(fams, "sluice_active_controller", nil))
	require.Equal(t, 0.0, value(fams, "sluice_under_replicated_partitions", nil))
	require.Equal(t, 0.0, value(fams, "sluice_offline_partitions", nil))
	require.Equal(t, 1.0, value(fams, "sluice_brokers", map[string]string{"state": "unfenced"}))
	require.Equal(t, 1.0, value(fams, "sluice_raft_state", map[string]string{"state": "Leader"}))
	require.GreaterOrEqual(t, value(fams, "sluice_requests_total", map[string]string{"api": "Produce"}), 10.0)
	require.GreaterOrEqual(t, value(fams, "sluice_request_total_seconds", map[string]string{"api": "Produce"}), 10.0)
	require.GreaterOrEqual(t, value(fams, "sluice_log_fsync_seconds", nil), 10.0, "flush=always fsyncs every produce")
	require.GreaterOrEqual(t, value(fams, "sluice_connections", map[string]string{"client_software_name": "kgo"}), 1.0)
	require.Greater(t, value(fams, "sluice_log_dir_total_bytes", nil), 0.0)
	require.NotNil(t, fams["go_goroutines"])
	require.NotNil(t, fams["process_cpu_seconds_total"])

	// An error code is counted by API and name.
	_, err = adm.CreateTopic(ctx, 1, 1, nil, "metered")
	require.Error(t, err)
	fams = testutil.Scrape(t, tb.MetricsAddr())
	require.Equal(t, 1.0, value(fams, "sluice_request_errors_total", map[string]string{"api": "CreateTopics", "error": "TOPIC_ALREADY_EXISTS"}))

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + tb.MetricsAddr() + path)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "%s: %s", path, strings.TrimSpace(string(body)))
	}
}
