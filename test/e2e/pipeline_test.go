package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// pipeline is what turns the brokers' metrics into notifications to the ticket service: real
// Prometheus and Alertmanager, or `sluice alerting`.
type pipeline interface {
	// ready reports whether every target is scraped and up and every rule group has been
	// evaluated.
	ready(ctx context.Context) (bool, error)
	// firing returns the names of the alerts firing now.
	firing(ctx context.Context) (map[string]bool, error)
	// alive returns an error if a process of the pipeline has exited.
	alive() error
	// stop ends the pipeline's processes.
	stop()
	// logs returns the tails of the pipeline's logs.
	logs() string
	// String describes the pipeline and its timings, for the results.
	String() string
}

// Scrape and evaluation timings of both pipelines.
const (
	scrapeInterval     = "2s"
	scrapeTimeout      = "1s"
	evaluationInterval = "5s"
)

// configData is what the drill's configuration files are made from.
type configData struct {
	Cluster            string
	ScrapeInterval     string
	ScrapeTimeout      string
	EvaluationInterval string
	RuleFiles          []string
	Brokers            []brokerTarget
	ExporterAddr       string
	AlertmanagerAddr   string
	TicketsURL         string
	TokenFile          string
	Listen             string
	DataDir            string
}

type brokerTarget struct {
	ID   int32
	Addr string
}

func (s *stack) configData(cluster string) configData {
	d := configData{Cluster: cluster, ScrapeInterval: scrapeInterval, ScrapeTimeout: scrapeTimeout,
		EvaluationInterval: evaluationInterval, ExporterAddr: s.exporterAddr, TicketsURL: s.ticketsURL,
		TokenFile: s.webhookTokenFile}
	for _, n := range s.cluster.Nodes() {
		d.Brokers = append(d.Brokers, brokerTarget{ID: n.ID, Addr: n.MetricsAddr})
	}
	return d
}

// render writes testdata/<name>.tmpl filled with d to dir/<name>.
func render(t *testing.T, dir, name string, d configData) string {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name+".tmpl"))
	require.NoError(t, err)
	out := filepath.Join(dir, name)
	f, err := os.Create(out)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, tmpl.Execute(f, d))
	return out
}

// findBinary returns the path of a Debian binary, or "" if it is not installed.
func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// promPipeline is Debian's Prometheus evaluating Sluice's rule pack (alerting/rules/*.yml,
// unchanged) and Debian's Alertmanager delivering to the ticket webhook, both configured from
// deploy/ (deploy_test.go).
type promPipeline struct {
	prom, am               *proc
	promURL, amURL         string
	promVersion, amVersion string
}

func startPromPipeline(t *testing.T, s *stack, cluster, promBin, amBin string) *promPipeline {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(filepath.Join("..", "..", "alerting", "rules", "*.yml"))
	require.NoError(t, err)
	matches, err := filepath.Glob(rules)
	require.NoError(t, err)
	require.NotEmpty(t, matches, "no rule files at %s", rules)

	d := s.configData(cluster)
	d.RuleFiles = []string{rules}
	d.AlertmanagerAddr = testutil.Addrs(t, 1)[0]
	amCfg := alertmanagerConfig(t, dir, d)
	promCfg := prometheusConfig(t, dir, d, s.promAddr)
	for _, check := range [][]string{{"promtool", "check", "config", promCfg}, {"amtool", "check-config", amCfg}} {
		if bin := findBinary(check[0]); bin != "" {
			out, err := exec.Command(bin, check[1:]...).CombinedOutput()
			require.NoError(t, err, "%v:\n%s", check, out)
		}
	}
	p := &promPipeline{promURL: "http://" + s.promAddr, amURL: "http://" + d.AlertmanagerAddr,
		promVersion: version(promBin), amVersion: version(amBin)}
	p.am = startProc(t, dir, "alertmanager", []string{amBin, "--config.file", amCfg,
		"--storage.path", filepath.Join(dir, "alertmanager-data"), "--web.listen-address", d.AlertmanagerAddr,
		"--cluster.listen-address=", "--log.level", "debug"})
	p.prom = startProc(t, dir, "prometheus", []string{promBin, "--config.file", promCfg,
		"--storage.tsdb.path", filepath.Join(dir, "prometheus-data"), "--web.listen-address", s.promAddr})
	return p
}

func (p *promPipeline) alive() error {
	if err := p.am.alive(); err != nil {
		return err
	}
	return p.prom.alive()
}

func (p *promPipeline) ready(ctx context.Context) (bool, error) {
	if ok, err := httpOK(p.amURL + "/-/ready"); !ok {
		return false, err
	}
	if ok, err := httpOK(p.promURL + "/-/ready"); !ok {
		return false, err
	}
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				ScrapeURL string            `json:"scrapeUrl"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.promURL+"/api/v1/targets", "", &targets); err != nil {
		return false, err
	}
	jobs := map[string]int{}
	for _, tg := range targets.Data.ActiveTargets {
		if tg.Health != "up" {
			return false, fmt.Errorf("target %s is %s: %s", tg.ScrapeURL, tg.Health, tg.LastError)
		}
		jobs[tg.Labels["job"]]++
	}
	if jobs["broker"] != 3 || jobs["exporter"] != 1 {
		return false, fmt.Errorf("prometheus scrapes %v, want 3 brokers and the exporter", jobs)
	}
	var rules struct {
		Data struct {
			Groups []struct {
				Name           string    `json:"name"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.promURL+"/api/v1/rules", "", &rules); err != nil {
		return false, err
	}
	if len(rules.Data.Groups) == 0 {
		return false, fmt.Errorf("prometheus loaded no rule groups")
	}
	for _, g := range rules.Data.Groups {
		if g.LastEvaluation.Year() < 2000 {
			return false, fmt.Errorf("rule group %s not evaluated yet", g.Name)
		}
	}
	return true, nil
}

func (p *promPipeline) firing(ctx context.Context) (map[string]bool, error) {
	var alerts struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.promURL+"/api/v1/alerts", "", &alerts); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range alerts.Data.Alerts {
		if a.State == "firing" {
			out[a.Labels["alertname"]] = true
		}
	}
	return out, nil
}

func (p *promPipeline) String() string {
	return fmt.Sprintf("%s and %s configured from deploy/ (scrape %s, evaluation %s, group_wait 1s, group_interval 5s)",
		p.promVersion, p.amVersion, scrapeInterval, evaluationInterval)
}

func (p *promPipeline) stop() {
	p.prom.stop(10 * time.Second)
	p.am.stop(10 * time.Second)
}

func (p *promPipeline) logs() string {
	return fmt.Sprintf("----- prometheus (%s) -----\n%s\n----- alertmanager (%s) -----\n%s",
		p.prom.logPath, p.prom.tail(40), p.am.logPath, p.am.tail(60))
}

// sluicePipeline is `sluice alerting` as a single machine runs it: the built-in rule pack
// evaluated in-process, the embedded default routing, and notifications to the ticket service
// (tickets.url with a token file).
type sluicePipeline struct {
	proc *proc
	url  string
}

func startSluicePipeline(t *testing.T, s *stack, cluster string) *sluicePipeline {
	t.Helper()
	dir := t.TempDir()
	d := s.configData(cluster)
	d.Listen = testutil.Addrs(t, 1)[0]
	d.DataDir = filepath.Join(dir, "data")
	cfg := render(t, dir, "alerting.yaml", d)
	p := &sluicePipeline{url: "http://" + d.Listen}
	p.proc = startProc(t, dir, "alerting", []string{sluiceBin, "alerting", "--config", cfg, "--log-level", "debug"})
	return p
}

func (p *sluicePipeline) alive() error { return p.proc.alive() }

func (p *sluicePipeline) ready(ctx context.Context) (bool, error) {
	var targets struct {
		Data []struct {
			Address   string `json:"address"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"data"`
	}
	if err := getJSON(ctx, p.url+"/api/v1/targets", "", &targets); err != nil {
		return false, err
	}
	if n := len(targets.Data); n != 4 {
		return false, fmt.Errorf("sluice alerting has %d targets, want 3 brokers and the exporter", n)
	}
	for _, tg := range targets.Data {
		if tg.Health != "up" {
			return false, fmt.Errorf("target %s is %q: %s", tg.Address, tg.Health, tg.LastError)
		}
	}
	rules, err := p.rules(ctx)
	if err != nil {
		return false, err
	}
	if len(rules) == 0 {
		return false, fmt.Errorf("sluice alerting loaded no rules")
	}
	for _, r := range rules {
		if r.LastEvaluation.Year() < 2000 {
			return false, fmt.Errorf("rule %s not evaluated yet", r.Name)
		}
	}
	return true, nil
}

type sluiceRule struct {
	Name           string    `json:"name"`
	Type           string    `json:"type"`
	State          string    `json:"state"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func (p *sluicePipeline) rules(ctx context.Context) ([]sluiceRule, error) {
	var rules struct {
		Data []sluiceRule `json:"data"`
	}
	err := getJSON(ctx, p.url+"/api/v1/rules", "", &rules)
	return rules.Data, err
}

func (p *sluicePipeline) firing(ctx context.Context) (map[string]bool, error) {
	rules, err := p.rules(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rules {
		if r.Type == "alerting" && r.State == "firing" {
			out[r.Name] = true
		}
	}
	return out, nil
}

func (p *sluicePipeline) String() string {
	return fmt.Sprintf("sluice alerting (scrape %s, evaluation %s, embedded default routing, tickets.url)", scrapeInterval, evaluationInterval)
}

func (p *sluicePipeline) stop() { p.proc.stop(10 * time.Second) }

func (p *sluicePipeline) logs() string {
	return fmt.Sprintf("----- sluice alerting (%s) -----\n%s", p.proc.logPath, p.proc.tail(60))
}

// version is the first line of `bin --version`, e.g. "prometheus, version 2.42.0+ds (...)".
func version(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	if i := strings.Index(line, " (branch"); i > 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}
