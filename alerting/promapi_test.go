package alerting

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/alerting/rules"

	"github.com/sluicemq/sluice/internal/testutil"
)

type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func promGet(t *testing.T, u string) (int, promResponse) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r promResponse
	require.NoError(t, json.Unmarshal(b, &r), "%s", b)
	return resp.StatusCode, r
}

// TestPrometheusQueryAPI: `sluice alerting` answers Prometheus' query API over
// the series it scraped, in Prometheus' wire format (what Grafana's
// Prometheus data source reads), and rejects bad input with
// 400 bad_data naming the parameter.
func TestPrometheusQueryAPI(t *testing.T) {
	// A broker's /metrics in the text format a registry writes.
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_under_replicated_partitions", Help: "h"}, []string{"topic"})
	reg.MustRegister(g)
	g.WithLabelValues("orders").Set(3)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ScrapeInterval = 200 * time.Millisecond
	cfg.Targets = []rules.Target{{Job: "broker", Address: strings.TrimPrefix(target.URL, "http://"), Labels: map[string]string{"broker": "1"}}}
	m, err := New(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	defer testutil.Start(t, "alerting", m.Run).Stop(t)
	base := "http://" + m.Addr()

	var vec struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	testutil.WaitFor(t, 30*time.Second, "a scrape", func() bool {
		code, r := promGet(t, base+"/api/v1/query?query="+url.QueryEscape(`sluice_under_replicated_partitions`))
		if code != http.StatusOK {
			return false
		}
		require.NoError(t, json.Unmarshal(r.Data, &vec))
		return len(vec.Result) == 1
	})
	require.Equal(t, "vector", vec.ResultType)
	require.Equal(t, map[string]string{"__name__": "sluice_under_replicated_partitions", "job": "broker", "broker": "1",
		"instance": strings.TrimPrefix(target.URL, "http://"), "topic": "orders"}, vec.Result[0].Metric)
	require.Equal(t, "3", vec.Result[0].Value[1])

	// With a time, as Grafana sends it (HTTP method GET).
	code, r := promGet(t, base+"/api/v1/query?"+url.Values{"query": {"sum(sluice_under_replicated_partitions) * 2"},
		"time": {strconv.FormatFloat(float64(time.Now().UnixMilli())/1000, 'f', 3, 64)}}.Encode())
	require.Equal(t, http.StatusOK, code, r.Error)
	require.Contains(t, string(r.Data), `"6"`)

	now := time.Now()
	v := url.Values{"query": {"up"}, "start": {now.Add(-time.Minute).Format(time.RFC3339)}, "end": {strconv.FormatFloat(float64(now.Add(time.Second).UnixMilli())/1000, 'f', 3, 64)}, "step": {"1s"}}
	code, r = promGet(t, base+"/api/v1/query_range?"+v.Encode())
	require.Equal(t, http.StatusOK, code, r.Error)
	var mat struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &mat))
	require.Equal(t, "matrix", mat.ResultType)
	require.Len(t, mat.Result, 1)
	require.NotEmpty(t, mat.Result[0].Values)

	code, r = promGet(t, base+"/api/v1/series?"+url.Values{"match[]": {`{job="broker"}`}}.Encode())
	require.Equal(t, http.StatusOK, code, r.Error)
	require.Contains(t, string(r.Data), `"__name__":"sluice_under_replicated_partitions"`)
	require.Contains(t, string(r.Data), `"__name__":"up"`)

	var names []string
	code, r = promGet(t, base+"/api/v1/labels")
	require.Equal(t, http.StatusOK, code, r.Error)
	require.NoError(t, json.Unmarshal(r.Data, &names))
	require.Subset(t, names, []string{"__name__", "broker", "instance", "job", "topic"})
	code, r = promGet(t, base+"/api/v1/label/topic/values?"+url.Values{"match[]": {"sluice_under_replicated_partitions"}}.Encode())
	require.Equal(t, http.StatusOK, code, r.Error)
	require.JSONEq(t, `["orders"]`, string(r.Data))
	code, r = promGet(t, base+"/api/v1/label/__name__/values")
	require.Equal(t, http.StatusOK, code, r.Error)
	require.Contains(t, string(r.Data), `"sluice_under_replicated_partitions"`)

	// Bad input: 400 bad_data naming what is wrong.
	for u, want := range map[string]string{
		"/api/v1/query?query=" + url.QueryEscape("sum(("):        "parse error",
		"/api/v1/query?query=up&time=yesterday":                  "time:",
		"/api/v1/query_range?query=up&start=0&end=100000&step=1": "exceeded maximum resolution",
		"/api/v1/query_range?query=up&start=0&end=10":            "step: required",
		"/api/v1/query_range?query=up&start=10&end=0&step=1":     "end: before start",
		"/api/v1/series": "match[]: at least one",
		"/api/v1/series?" + url.Values{"match[]": {"{"}}.Encode():                   "match[]",
		"/api/v1/label/" + url.PathEscape("no\xffgood") + "/values":                 "invalid label name",
		"/api/v1/query_range?query=up&start=0&end=10&step=" + url.QueryEscape("-1"): "step:",
		"/api/v1/labels?start=" + url.QueryEscape("1e400"):                          "start:",
	} {
		code, r := promGet(t, base+u)
		require.Equal(t, http.StatusBadRequest, code, u)
		require.Equal(t, "error", r.Status, u)
		require.Equal(t, "bad_data", r.ErrorType, u)
		require.Contains(t, r.Error, want, u)
	}
}
