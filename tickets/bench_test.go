package tickets

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

var (
	loadRate     = flag.Int("load.rate", 200, "requests per second of BenchmarkAPILoad")
	loadDuration = flag.Duration("load.duration", 15*time.Second, "duration of BenchmarkAPILoad")
	loadSeed     = flag.Int("load.incidents", 500, "incidents and tickets in the database before BenchmarkAPILoad")
)

// BenchmarkAPILoad sends an open-loop mix of API requests at a fixed rate to a
// service on SQLite and reports latency quantiles (the request timer starts at
// the scheduled send time, so queueing counts):
//
//	go test -run '^$' -bench APILoad -benchtime 1x ./tickets/ [-load.rate 200 -load.duration 15s]
//
// Mix: 40% list open incidents, 25% incident detail, 15% Alertmanager
// notifications (re-sends and new groups), 10% file a ticket, 10% comment.
func BenchmarkAPILoad(b *testing.B) {
	ts := startService(b)
	ctx := context.Background()
	for i := range *loadSeed {
		_, err := ts.Store().ApplyGroup(ctx, store.GroupSignal{GroupKey: fmt.Sprintf("seed-%d", i), Alarms: []store.AlarmSignal{{
			Fingerprint: fmt.Sprintf("seed-%d", i), Status: "firing", StartsAt: t0,
			Labels: map[string]string{"alertname": "Seed", "severity": []string{"critical", "warning", "info"}[i%3]}}}}, store.IntakePolicy{ReopenWindow: time.Hour})
		require.NoError(b, err)
		require.NoError(b, ts.Store().CreateTicket(ctx, &store.Ticket{Title: fmt.Sprintf("seed %d", i), Priority: "P3"}, "seed"))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	type req struct {
		method, path string
		body         any
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	next := func(i int) req {
		mu.Lock()
		defer mu.Unlock()
		id := rng.IntN(*loadSeed) + 1
		switch r := rng.IntN(100); {
		case r < 40:
			return req{"GET", "/api/v1/incidents?status=open&limit=50", nil}
		case r < 65:
			return req{"GET", fmt.Sprintf("/api/v1/incidents/%d", id), nil}
		case r < 80:
			g := rng.IntN(50)
			return req{"POST", "/api/v1/integrations/alertmanager", amPayload(fmt.Sprintf("Load%d", g), "firing", 0,
				amAlert{fmt.Sprintf("Load%d", g), fmt.Sprintf("lfp%d", g), "firing", t0, nil})}
		case r < 90:
			return req{"POST", "/api/v1/tickets", map[string]string{"title": fmt.Sprintf("load %d", i), "priority": "P2"}}
		default:
			return req{"POST", fmt.Sprintf("/api/v1/incidents/%d/comments", id), map[string]string{"body": "load comment"}}
		}
	}
	for range b.N {
		total := int(float64(*loadRate) * loadDuration.Seconds())
		lat := make([]time.Duration, total)
		codes := make([]int, total)
		interval := time.Second / time.Duration(*loadRate)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range total {
			sched := start.Add(time.Duration(i) * interval)
			time.Sleep(time.Until(sched))
			r := next(i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body io.Reader
				if r.body != nil {
					j, _ := json.Marshal(r.body)
					body = bytes.NewReader(j)
				}
				hr, _ := http.NewRequest(r.method, ts.base+r.path, body)
				hr.Header.Set("Authorization", "Bearer "+ts.operator)
				if body != nil {
					hr.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(hr)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[i] = resp.StatusCode
				}
				lat[i] = time.Since(sched)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		errs := 0
		for _, c := range codes {
			if c < 200 || c >= 300 {
				errs++
			}
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		b.Logf("SQLite, %d incidents + %d tickets preloaded, %d req/s open loop for %s (%d requests, achieved %.0f req/s): p50 %s p90 %s p99 %s max %s, %d non-2xx",
			*loadSeed, *loadSeed, *loadRate, *loadDuration, total, float64(total)/elapsed.Seconds(),
			q(0.5).Round(10*time.Microsecond), q(0.9).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond), errs)
		b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(errs), "non2xx")
	}
}
