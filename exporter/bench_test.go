package exporter

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// benchEnv reads a positive int from the environment, or def.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkScale measures a collection and a scrape against an in-process
// broker really holding TOPICS x PARTITIONS partitions (default 100 x 100)
// with 5 records each, and GROUPS consumer groups (default 1,000), group g
// having committed offset 2 on 10 partitions of topic g%TOPICS, so every
// group partition lags by 3 and needs a record read for lag in seconds.
// Sizes come from SLUICE_EXPORTER_BENCH_{TOPICS,PARTITIONS,GROUPS}.
//
//	go test -run '^$' -bench BenchmarkScale -benchtime 10x ./exporter/
//
// collect/cold is the first collection (every timestamp read), collect/warm
// the following ones; scrape is GET /metrics through the handler, plain and
// gzip. Each reports its median in ms besides Go's mean ns/op.
func BenchmarkScale(b *testing.B) {
	topics := benchEnv("SLUICE_EXPORTER_BENCH_TOPICS", 100)
	partitions := benchEnv("SLUICE_EXPORTER_BENCH_PARTITIONS", 100)
	groups := benchEnv("SLUICE_EXPORTER_BENCH_GROUPS", 1000)
	const perGroup = 10
	require.GreaterOrEqual(b, partitions, perGroup)

	br := startBroker(b)
	kcl := newClient(b, br.Addr(), kgo.MaxBufferedRecords(1<<20), kgo.ProducerBatchMaxBytes(1<<20))
	adm := kadm.NewClient(kcl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	start := time.Now()
	names := make([]string, topics)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%03d", i)
	}
	for chunk := range slices.Chunk(names, 10) {
		resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, chunk...)
		require.NoError(b, err)
		require.NoError(b, resp.Error())
	}
	var recs []*kgo.Record
	for _, t := range names {
		for p := range partitions {
			for range 5 {
				recs = append(recs, &kgo.Record{Topic: t, Partition: int32(p), Value: []byte("v")})
			}
		}
	}
	require.NoError(b, kcl.ProduceSync(ctx, recs...).FirstErr())
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(16)
	for g := range groups {
		eg.Go(func() error {
			var os kadm.Offsets
			first := (g / topics * perGroup) % (partitions - perGroup + 1)
			for p := first; p < first+perGroup; p++ {
				os.AddOffset(names[g%topics], int32(p), 2, -1)
			}
			resp, err := adm.CommitOffsets(gctx, fmt.Sprintf("bench-group-%04d", g), os)
			if err == nil {
				err = resp.Error()
			}
			return err
		})
	}
	require.NoError(b, eg.Wait())
	b.Logf("setup: %d topics x %d partitions = %d partitions, %d groups x %d committed partitions, in %s",
		topics, partitions, topics*partitions, groups, perGroup, time.Since(start).Round(time.Millisecond))

	cfg := testConfig(br.Addr())
	cfg.CollectTimeout = 5 * time.Minute
	e := newExporter(b, cfg)
	t0 := time.Now()
	require.NoError(b, e.Collect(ctx))
	b.Logf("first collection: %s", time.Since(t0).Round(time.Millisecond))

	b.Run("collect/cold", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			e.timestamps = newTimestampCache()
			t0 := time.Now()
			require.NoError(b, e.Collect(ctx))
			ds = append(ds, time.Since(t0))
		}
		reportMedian(b, ds)
	})
	b.Run("collect/warm", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			require.NoError(b, e.Collect(ctx))
			ds = append(ds, time.Since(t0))
		}
		reportMedian(b, ds)
	})
	m := scrape(b, e.Handler())
	series := 0
	for _, f := range m {
		series += len(f.GetMetric())
	}
	require.Equal(b, float64(groups*perGroup*3), sumFamily(m, "kafka_consumergroup_lag"))
	require.Equal(b, groups*perGroup, len(m["sluice_consumergroup_lag_seconds"].GetMetric()))
	for _, enc := range []string{"plain", "gzip"} {
		b.Run("scrape/"+enc, func(b *testing.B) {
			h := e.Handler()
			var ds []time.Duration
			var size int
			body := bytes.NewBuffer(make([]byte, 0, 64<<20))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				if enc == "gzip" {
					req.Header.Set("Accept-Encoding", "gzip")
				}
				rec := httptest.NewRecorder()
				body.Reset()
				rec.Body = body
				t0 := time.Now()
				h.ServeHTTP(rec, req)
				ds = append(ds, time.Since(t0))
				size = rec.Body.Len()
			}
			reportMedian(b, ds)
			b.ReportMetric(float64(series), "series")
			b.ReportMetric(float64(size)/1e6, "MB")
		})
	}
}

func sumFamily(m metrics, name string) float64 {
	var s float64
	for _, x := range m[name].GetMetric() {
		s += x.GetGauge().GetValue()
	}
	return s
}

var reportMu sync.Mutex

func reportMedian(b *testing.B, ds []time.Duration) {
	reportMu.Lock()
	defer reportMu.Unlock()
	slices.Sort(ds)
	if len(ds) > 0 {
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "median-ms")
	}
}
