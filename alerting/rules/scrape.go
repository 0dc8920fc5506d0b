package rules

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// Target is one /metrics endpoint the evaluator scrapes, like a static_configs entry of a
// Prometheus scrape config.
type Target struct {
	// Job is the job label of every series scraped from the target, e.g. "broker" or "exporter".
	Job string `yaml:"job" json:"job"`
	// Address is host:port; the instance label.
	Address string `yaml:"address" json:"address"`
	// Path is the metrics path, default /metrics.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Labels are added to every series of the target (e.g. broker: "1").
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// BasicAuth, Authorization and TLSConfig are the fields of the same names of a Prometheus
	// scrape config, for targets behind a web config (basic auth, bearer token, TLS and client
	// certificates); use an https:// Address with TLS. They are never shown by the API.
	BasicAuth     *commoncfg.BasicAuth     `yaml:"basic_auth,omitempty" json:"-"`
	Authorization *commoncfg.Authorization `yaml:"authorization,omitempty" json:"-"`
	TLSConfig     *commoncfg.TLSConfig     `yaml:"tls_config,omitempty" json:"-"`
}

// HTTPClientConfig is the target's client configuration in Prometheus' terms.
func (t Target) HTTPClientConfig() commoncfg.HTTPClientConfig {
	hc := commoncfg.DefaultHTTPClientConfig
	hc.BasicAuth, hc.Authorization = t.BasicAuth, t.Authorization
	if t.TLSConfig != nil {
		hc.TLSConfig = *t.TLSConfig
	}
	return hc
}

// SetDirectory makes the target's credential and certificate file names relative to dir.
func (t *Target) SetDirectory(dir string) {
	if t.BasicAuth != nil {
		b := *t.BasicAuth
		b.SetDirectory(dir)
		t.BasicAuth = &b
	}
	if t.Authorization != nil {
		a := *t.Authorization
		a.SetDirectory(dir)
		t.Authorization = &a
	}
	if t.TLSConfig != nil {
		c := *t.TLSConfig
		c.SetDirectory(dir)
		t.TLSConfig = &c
	}
}

// URL is the address the target is scraped at.
func (t Target) URL() string {
	p := t.Path
	if p == "" {
		p = "/metrics"
	}
	if strings.HasPrefix(t.Address, "http://") || strings.HasPrefix(t.Address, "https://") {
		return strings.TrimSuffix(t.Address, "/") + p
	}
	return "http://" + t.Address + p
}

// key identifies a target's loop: a change of its address or credentials restarts it.
func (t Target) key() string {
	k := t.Job + "|" + t.Address + "|" + t.Path
	if t.BasicAuth != nil {
		k += fmt.Sprintf("|%+v", *t.BasicAuth)
	}
	if t.Authorization != nil {
		k += fmt.Sprintf("|%+v", *t.Authorization)
	}
	if t.TLSConfig != nil {
		k += fmt.Sprintf("|%+v", *t.TLSConfig)
	}
	return k
}

// scraper scrapes each target every interval into the TSDB, with up{job,instance}, and writes
// staleness markers for series that vanish or whose target fails, as Prometheus does, so that an
// expression stops seeing a dead broker's last values at once instead of after the 5 m lookback.
type scraper struct {
	db       storage.Appendable
	logger   *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	targets map[string]*targetLoop
	wg      sync.WaitGroup
}

type targetLoop struct {
	t      Target
	client *http.Client
	cancel context.CancelFunc

	mu       sync.Mutex
	health   string
	lastErr  string
	lastTime time.Time
}

func newScraper(db storage.Appendable, interval time.Duration, logger *slog.Logger) *scraper {
	return &scraper{
		db: db, logger: logger, interval: interval,
		targets: map[string]*targetLoop{},
	}
}

// apply starts loops for new targets and stops those no longer listed.
func (s *scraper) apply(ctx context.Context, targets []Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]Target{}
	for _, t := range targets {
		want[t.key()] = t
	}
	for k, l := range s.targets {
		if _, ok := want[k]; !ok {
			l.cancel()
			delete(s.targets, k)
		}
	}
	for k, t := range want {
		if _, ok := s.targets[k]; ok {
			continue
		}
		client, err := commoncfg.NewClientFromConfig(t.HTTPClientConfig(), "sluice_alerting")
		if err != nil {
			// Validated with the configuration; a certificate file may have gone since.
			s.logger.Error("scrape target not started", "job", t.Job, "address", t.Address, "err", err)
			continue
		}
		client.Timeout = s.interval
		lctx, cancel := context.WithCancel(ctx)
		l := &targetLoop{t: t, client: client, cancel: cancel, health: "unknown"}
		s.targets[k] = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(lctx, l)
		}()
	}
}

// stop ends every loop and waits for them.
func (s *scraper) stop() {
	s.mu.Lock()
	for k, l := range s.targets {
		l.cancel()
		delete(s.targets, k)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// TargetState is a target's last scrape, for the API.
type TargetState struct {
	Target
	Health     string    `json:"health"`
	LastError  string    `json:"lastError,omitempty"`
	LastScrape time.Time `json:"lastScrape"`
}

func (s *scraper) states() []TargetState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetState, 0, len(s.targets))
	for _, l := range s.targets {
		l.mu.Lock()
		out = append(out, TargetState{Target: l.t, Health: l.health, LastError: l.lastErr, LastScrape: l.lastTime})
		l.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].t().key() < out[j].t().key() })
	return out
}

func (ts TargetState) t() Target { return ts.Target }

func (s *scraper) run(ctx context.Context, l *targetLoop) {
	prev := map[string]labels.Labels{}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		prev = s.scrapeOnce(ctx, l, prev)
		select {
		case <-ctx.Done():
			// Mark everything stale so a removed target stops matching at once.
			s.appendStale(prev, time.Now())
			return
		case <-tick.C:
		}
	}
}

func (s *scraper) scrapeOnce(ctx context.Context, l *targetLoop, prev map[string]labels.Labels) map[string]labels.Labels {
	start := time.Now()
	ts := start.UnixMilli()
	fams, err := s.fetch(ctx, l)
	base := map[string]string{"job": l.t.Job, "instance": l.t.Address}
	for k, v := range l.t.Labels {
		base[k] = v
	}
	cur := map[string]labels.Labels{}
	app := s.db.Appender(ctx)
	upVal := 1.0
	if err != nil {
		upVal = 0
	} else {
		for _, mf := range fams {
			for _, smp := range samples(mf) {
				b := labels.NewBuilder(labels.EmptyLabels())
				for k, v := range base {
					b.Set(k, v)
				}
				for k, v := range smp.labels {
					b.Set(k, v)
				}
				b.Set(model.MetricNameLabel, smp.name)
				ls := b.Labels()
				cur[ls.String()] = ls
				if _, aerr := app.Append(0, ls, ts, smp.value); aerr != nil {
					s.logger.Debug("append failed", "series", ls.String(), "err", aerr)
				}
			}
		}
	}
	upB := labels.NewBuilder(labels.EmptyLabels())
	for k, v := range base {
		upB.Set(k, v)
	}
	upB.Set(model.MetricNameLabel, "up")
	_, _ = app.Append(0, upB.Labels(), ts, upVal)
	durB := labels.NewBuilder(upB.Labels())
	durB.Set(model.MetricNameLabel, "scrape_duration_seconds")
	_, _ = app.Append(0, durB.Labels(), ts, time.Since(start).Seconds())
	for k, ls := range prev {
		if _, ok := cur[k]; !ok {
			_, _ = app.Append(0, ls, ts, math.Float64frombits(value.StaleNaN))
		}
	}
	if cerr := app.Commit(); cerr != nil {
		s.logger.Warn("commit of scraped samples failed", "target", l.t.Address, "err", cerr)
	}
	l.mu.Lock()
	l.lastTime = start
	if err != nil {
		l.health, l.lastErr = "down", err.Error()
	} else {
		l.health, l.lastErr = "up", ""
	}
	l.mu.Unlock()
	if err != nil {
		s.logger.Debug("scrape failed", "target", l.t.URL(), "err", err)
	}
	return cur
}

func (s *scraper) appendStale(series map[string]labels.Labels, now time.Time) {
	if len(series) == 0 {
		return
	}
	app := s.db.Appender(context.Background())
	for _, ls := range series {
		_, _ = app.Append(0, ls, now.UnixMilli(), math.Float64frombits(value.StaleNaN))
	}
	_ = app.Commit()
}

func (s *scraper) fetch(ctx context.Context, l *targetLoop) (map[string]*dto.MetricFamily, error) {
	t := l.t
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s: HTTP %s", t.URL(), resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// samples flattens a metric family the way the text exposition format names its series.
func samples(mf *dto.MetricFamily) []sample {
	var out []sample
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		ls := map[string]string{}
		for _, lp := range m.GetLabel() {
			ls[lp.GetName()] = lp.GetValue()
		}
		with := func(k, v string) map[string]string {
			c := make(map[string]string, len(ls)+1)
			for a, b := range ls {
				c[a] = b
			}
			c[k] = v
			return c
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, sample{name, ls, m.GetCounter().GetValue()})
		case dto.MetricType_GAUGE:
			out = append(out, sample{name, ls, m.GetGauge().GetValue()})
		case dto.MetricType_UNTYPED:
			out = append(out, sample{name, ls, m.GetUntyped().GetValue()})
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				out = append(out, sample{name, with("quantile", formatFloat(q.GetQuantile())), q.GetValue()})
			}
			out = append(out, sample{name + "_sum", ls, s.GetSampleSum()}, sample{name + "_count", ls, float64(s.GetSampleCount())})
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					inf = true
				}
				out = append(out, sample{name + "_bucket", with("le", formatFloat(b.GetUpperBound())), float64(b.GetCumulativeCount())})
			}
			if !inf {
				out = append(out, sample{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())})
			}
			out = append(out, sample{name + "_sum", ls, h.GetSampleSum()}, sample{name + "_count", ls, float64(h.GetSampleCount())})
		}
	}
	return out
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
