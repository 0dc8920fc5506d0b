package snapshot

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// Capturer takes snapshots with one configuration.
type Capturer struct {
	cfg   Config
	admin *http.Client // brokers' admin interfaces
	prom  *http.Client // the Prometheus query API
}

// NewCapturer returns a capturer for cfg. Credentials of AdminHTTPConfig and
// PrometheusHTTPConfig that cannot be loaded (a missing file) make every call
// of that client fail, which each snapshot then lists in its Errors.
func NewCapturer(cfg Config) *Capturer {
	cfg = cfg.WithDefaults()
	return &Capturer{cfg: cfg, admin: httpClient(cfg.AdminHTTPConfig, cfg.Timeout), prom: httpClient(cfg.PrometheusHTTPConfig, cfg.Timeout)}
}

// httpClient builds a client of Prometheus' HTTP client configuration.
func httpClient(hc commoncfg.HTTPClientConfig, timeout time.Duration) *http.Client {
	c, err := commoncfg.NewClientFromConfig(hc, "sluice_tickets_snapshot")
	if err != nil {
		return &http.Client{Transport: failingTransport{err}}
	}
	c.Timeout = timeout
	return c
}

// failingTransport answers every request with the error of a client configuration.
type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("http client configuration: %w", f.err)
}

// Capture observes the cluster for target. It never fails: a source that cannot
// be reached is noted in Errors and the rest is captured.
func (c *Capturer) Capture(ctx context.Context, target Target, now time.Time) *Snapshot {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	s := &Snapshot{CapturedAt: now.UTC(), Target: target, Affected: []PartitionState{}, UnderReplicated: []PartitionState{},
		Offline: []PartitionState{}, Groups: []GroupLag{}, Events: []Event{}, Logs: []LogLine{}, Charts: []Chart{},
		Findings: []string{}, Errors: []string{}, Sources: []string{}}
	since := target.ImpactStart
	if since.IsZero() || since.After(now) {
		since = now
	}
	since = since.Add(-c.cfg.EventWindow)

	var mu sync.Mutex
	var wg sync.WaitGroup
	run := func(f func() error, what string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				s.Errors = append(s.Errors, what+": "+err.Error())
				mu.Unlock()
			}
		}()
	}
	run(func() error { return c.adminState(ctx, s, since, &mu) }, "cluster admin API")
	if len(c.cfg.Bootstrap) > 0 {
		run(func() error { return c.groups(ctx, s, &mu) }, "consumer groups")
	}
	if c.cfg.PrometheusURL != "" {
		run(func() error { return c.charts(ctx, s, now, &mu) }, "charts")
	}
	if len(c.cfg.LogFiles) > 0 {
		run(func() error { return c.logs(s, since, &mu) }, "broker logs")
	}
	if len(c.cfg.AdminURLs) > 0 {
		run(func() error { return c.remoteLogs(ctx, s, since, &mu) }, "broker logs over the admin API")
	}
	wg.Wait()
	sort.Strings(s.Errors)
	sort.Strings(s.Sources)
	Diagnose(s)
	return s
}

// getJSON decodes the JSON answer of a GET. Errors, which snapshots show,
// name the URL without its password (net/http already strips it from its own).
func (c *Capturer) getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	return getJSON(ctx, client, u, v)
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return errors.New("bad URL (not shown: it may hold a password)")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", req.URL.Redacted(), resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

func (c *Capturer) adminState(ctx context.Context, s *Snapshot, since time.Time, mu *sync.Mutex) error {
	if len(c.cfg.AdminURLs) == 0 {
		return fmt.Errorf("no broker admin URL configured (--admin-url)")
	}
	var view adminapi.Cluster
	var base string
	var errs []string
	for _, u := range c.cfg.AdminURLs {
		u = strings.TrimRight(normalizeURL(u), "/")
		if err := c.getJSON(ctx, c.admin, u+"/api/v1/cluster", &view); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		base = u
		break
	}
	if base == "" {
		return fmt.Errorf("no broker admin interface answered: %s", strings.Join(errs, "; "))
	}
	var events []Event
	evErr := c.getJSON(ctx, c.admin, base+"/api/v1/events?since=0", &events)

	cl := &Cluster{ID: view.ClusterID, ControllerID: view.ControllerID, MetadataIndex: view.MetadataIndex, Topics: len(view.Topics)}
	var dials sync.WaitGroup
	cl.Brokers = make([]BrokerInfo, len(view.Brokers))
	for i, b := range view.Brokers {
		cl.Brokers[i] = BrokerInfo{ID: b.ID, Host: b.Host, Port: b.Port, Rack: b.Rack, Fenced: b.Fenced}
		dials.Add(1)
		go func(bi *BrokerInfo) {
			defer dials.Done()
			d := net.Dialer{Timeout: 2 * time.Second}
			conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(bi.Host, strconv.Itoa(int(bi.Port))))
			if err != nil {
				bi.DialError = err.Error()
				return
			}
			conn.Close()
			bi.Reachable = true
		}(&cl.Brokers[i])
	}
	dials.Wait()
	sort.Slice(cl.Brokers, func(i, j int) bool { return cl.Brokers[i].ID < cl.Brokers[j].ID })

	var affected, urp, offline []PartitionState
	for _, t := range view.Topics {
		for _, p := range t.Partitions {
			ps := PartitionState{Topic: t.Name, Partition: p.Partition, Leader: p.Leader, Replicas: p.Replicas, ISR: p.ISR}
			cl.Partitions++
			if slices.Contains(s.Target.Topics, t.Name) {
				affected = append(affected, ps)
			}
			if p.Leader < 0 {
				offline = append(offline, ps)
			} else if len(p.ISR) < len(p.Replicas) {
				urp = append(urp, ps)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	s.Cluster = cl
	s.Sources = append(s.Sources, "admin "+base)
	s.Affected = append(s.Affected, affected...)
	s.UnderReplicated = append(s.UnderReplicated, urp...)
	s.Offline = append(s.Offline, offline...)
	if evErr != nil {
		return fmt.Errorf("events: %w", evErr)
	}
	for _, e := range events {
		if !e.Time.Before(since) {
			s.Events = append(s.Events, e)
		}
	}
	if len(s.Events) > maxEvents {
		s.Events = s.Events[len(s.Events)-maxEvents:]
	}
	return nil
}

const (
	maxEvents   = 500
	maxLogLines = 300
	maxGroups   = 10
)

func normalizeURL(u string) string {
	if !strings.Contains(u, "://") {
		return "http://" + u
	}
	return u
}

func (c *Capturer) groups(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	secOpts, err := c.cfg.KafkaSecurity.Opts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.cfg.Bootstrap...), kgo.RequestTimeoutOverhead(2 * time.Second)}, secOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	names := listed.Groups()
	if len(names) == 0 {
		return nil
	}
	lags, err := adm.Lag(ctx, names...)
	if err != nil {
		return fmt.Errorf("lag: %w", err)
	}
	var out []GroupLag
	for _, l := range lags {
		g := GroupLag{Group: l.Group, State: l.State, Members: len(l.Members), Lag: l.Lag.Total()}
		if e := l.Error(); e != nil {
			g.Error = e.Error()
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Lag != out[j].Lag {
			return out[i].Lag > out[j].Lag
		}
		return out[i].Group < out[j].Group
	})
	// The incident's own groups first, then the most lagging.
	var top []GroupLag
	for _, g := range out {
		if slices.Contains(s.Target.Groups, g.Group) {
			top = append(top, g)
		}
	}
	for _, g := range out {
		if len(top) >= maxGroups {
			break
		}
		if !slices.Contains(s.Target.Groups, g.Group) {
			top = append(top, g)
		}
	}
	mu.Lock()
	s.Groups = top
	s.Sources = append(s.Sources, "kafka "+strings.Join(c.cfg.Bootstrap, ","))
	mu.Unlock()
	return nil
}

// logs keeps the WARN and ERROR lines of the configured log files written since
// since (lines without a parsable time are kept), the newest maxLogLines.
func (c *Capturer) logs(s *Snapshot, since time.Time, mu *sync.Mutex) error {
	var lines []LogLine
	var errs []string
	for _, g := range c.cfg.LogFiles {
		files, err := filepath.Glob(g)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, f := range files {
			got, err := tailWarnings(f, since)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			lines = append(lines, got...)
		}
	}
	if len(lines) > maxLogLines {
		lines = lines[len(lines)-maxLogLines:]
	}
	mu.Lock()
	s.Logs = append(s.Logs, lines...)
	mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// remoteLogs asks every broker's admin interface for its recent WARN and ERROR
// lines (GET /api/v1/logs), so brokers on other machines are covered too.
func (c *Capturer) remoteLogs(ctx context.Context, s *Snapshot, since time.Time, mu *sync.Mutex) error {
	var lines []LogLine
	var errs []string
	for _, u := range c.cfg.AdminURLs {
		u = strings.TrimRight(normalizeURL(u), "/")
		var got []string
		if err := c.getJSON(ctx, c.admin, u+"/api/v1/logs", &got); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, line := range got {
			if !isWarning(line) {
				continue
			}
			if t, ok := lineTime(line); ok && t.Before(since) {
				continue
			}
			lines = append(lines, LogLine{File: strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"), Line: Redact(clipLine(line))})
		}
	}
	if len(lines) > maxLogLines {
		lines = lines[len(lines)-maxLogLines:]
	}
	mu.Lock()
	s.Logs = append(s.Logs, lines...)
	mu.Unlock()
	if len(errs) > 0 && len(errs) == len(c.cfg.AdminURLs) {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func tailWarnings(path string, since time.Time) ([]LogLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read at most the last 8 MiB: recent lines are what matters.
	if st, err := f.Stat(); err == nil && st.Size() > 8<<20 {
		f.Seek(st.Size()-8<<20, io.SeekStart)
	}
	var out []LogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !isWarning(line) {
			continue
		}
		if t, ok := lineTime(line); ok && t.Before(since) {
			continue
		}
		out = append(out, LogLine{File: filepath.Base(path), Line: Redact(clipLine(line))})
		if len(out) > 2*maxLogLines {
			out = out[maxLogLines:]
		}
	}
	return out, sc.Err()
}

func isWarning(line string) bool {
	for _, k := range []string{"level=WARN", "level=ERROR", `"level":"WARN"`, `"level":"ERROR"`, " WARN ", " ERROR "} {
		if strings.Contains(line, k) {
			return true
		}
	}
	return false
}

func lineTime(line string) (time.Time, bool) {
	var v string
	if i := strings.Index(line, "time="); i >= 0 {
		v, _, _ = strings.Cut(line[i+5:], " ")
	} else if i := strings.Index(line, `"time":"`); i >= 0 {
		v, _, _ = strings.Cut(line[i+8:], `"`)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

func clipLine(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// charts queries the alert's expressions (from the generator URLs) and broker
// replication metrics over the chart window before now.
func (c *Capturer) charts(ctx context.Context, s *Snapshot, now time.Time, mu *sync.Mutex) error {
	type q struct{ title, expr string }
	var qs []q
	seen := map[string]bool{}
	for _, g := range s.Target.GeneratorURLs {
		if e := exprOf(g); e != "" && !seen[e] {
			seen[e] = true
			qs = append(qs, q{"alert expression", e})
		}
	}
	qs = append(qs,
		q{"under-replicated partitions", "sum by (instance) (sluice_under_replicated_partitions)"},
		q{"ISR shrinks per second", "sum by (instance) (rate(sluice_isr_shrinks_total[1m]))"},
		q{"request handler idle ratio", "sluice_request_handler_idle_ratio"},
	)
	start := now.Add(-c.cfg.ChartWindow)
	step := c.cfg.ChartWindow / 120
	var charts []Chart
	var failed int
	for _, x := range qs {
		ch := Chart{Title: x.title, Query: x.expr, Series: []Series{}}
		if err := c.queryRange(ctx, x.expr, start, now, step, &ch); err != nil {
			ch.Error = err.Error()
			failed++
		}
		charts = append(charts, ch)
	}
	mu.Lock()
	s.Charts = charts
	s.Sources = append(s.Sources, "prometheus "+c.cfg.PrometheusURL)
	mu.Unlock()
	if failed == len(qs) {
		return fmt.Errorf("every chart query failed, first: %s", charts[0].Error)
	}
	return nil
}

// exprOf returns the expression of a Prometheus generator URL (/graph?g0.expr=).
func exprOf(generatorURL string) string {
	u, err := url.Parse(generatorURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("g0.expr")
}

func (c *Capturer) queryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration, ch *Chart) error {
	series, err := QueryRange(ctx, c.prom, c.cfg.PrometheusURL, expr, start, end, step)
	if err != nil {
		return err
	}
	if len(series) > 10 {
		series = series[:10]
	}
	ch.Series = append(ch.Series, series...)
	return nil
}

// QueryRange runs a range query of the Prometheus HTTP API at baseURL (a
// Prometheus, or Sluice's alerting, which serves the same API) and returns
// its series. The ticket service's one Prometheus client: fault snapshot
// charts and tenant metering both use it.
func QueryRange(ctx context.Context, client *http.Client, baseURL, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	v := url.Values{"query": {expr}, "start": {fmtUnix(start)}, "end": {fmtUnix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	u := strings.TrimRight(normalizeURL(baseURL), "/") + "/api/v1/query_range?" + v.Encode()
	if err := getJSON(ctx, client, u, &resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", resp.Error)
	}
	var out []Series
	for _, r := range resp.Data.Result {
		se := Series{Labels: r.Metric, Points: [][2]float64{}}
		for _, p := range r.Values {
			ts, _ := p[0].(float64)
			str, _ := p[1].(string)
			val, err := strconv.ParseFloat(str, 64)
			if err != nil {
				continue
			}
			se.Points = append(se.Points, [2]float64{ts, val})
		}
		out = append(out, se)
	}
	return out, nil
}

func fmtUnix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
