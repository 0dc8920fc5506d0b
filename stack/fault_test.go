package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/dashboards"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

// getJSON GETs u with an optional bearer token and decodes the answer.
func getJSON(t *testing.T, u, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
	return resp.StatusCode
}

// grafanaVars replaces Grafana's variables as Grafana does at query time:
// interval variables by durations, every other variable by ".*" (All).
var grafanaVars = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

func grafanaSubstitute(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVars.FindStringSubmatch(ref)
		switch m[1] + m[2] + m[3] {
		case "__rate_interval":
			return "1m"
		case "__interval":
			return "15s"
		case "__range":
			return "5m"
		}
		return ".*"
	})
}

func panelTargets(ps []*dashboards.Panel, where string, out map[string]string) {
	for _, p := range ps {
		for _, tg := range p.Targets {
			out[where+" / "+p.Title+" / "+tg.RefID] = tg.Expr
		}
		panelTargets(p.Panels, where, out)
	}
}

// dataOf returns the part of a panel expression that must return data on a
// healthy cluster: a panel that filters (`x > 0`, `max by (g) (x == 1)`)
// shows nothing while all is well, so its filters are dropped and the
// unfiltered series checked.
func dataOf(t *testing.T, expr string) string {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	require.NoError(t, err, expr)
	return unfilter(e).String()
}

func unfilter(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.ParenExpr:
		n.Expr = unfilter(n.Expr)
	case *parser.AggregateExpr:
		n.Expr = unfilter(n.Expr)
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = unfilter(a)
		}
	case *parser.BinaryExpr:
		if _, lit := n.RHS.(*parser.NumberLiteral); lit && n.Op.IsComparisonOperator() && !n.ReturnBool {
			return unfilter(n.LHS)
		}
		if n.Op == parser.LUNLESS {
			// `x unless on (g) (y == 1)` leaves out the matches of a filter: without
			// the filter it would leave out everything, so only x is unfiltered.
			n.LHS = unfilter(n.LHS)
			break
		}
		n.LHS, n.RHS = unfilter(n.LHS), unfilter(n.RHS)
	}
	return e
}

var labelValuesVar = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$`)

// TestDemoBrokerFault runs `make demo`'s broker fault on a stack on free
// ports. After a minute of demo traffic, every dashboard panel's expression
// and every variable query returns data through `sluice alerting`'s
// Prometheus query API; broker 2 stopped becomes exactly one open incident
// titled by the diagnosis with broker 2's id and Kafka address, which
// SluiceBrokerDown joined, and which resolves after the broker returns.
func TestDemoBrokerFault(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for several minutes")
	}
	base := freeBase(t, 12)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaPort, cfg.ControllerPort, cfg.MetricsPort, cfg.ExporterPort = base, base+3, base+6, base+9
	cfg.AlertingPort, cfg.TicketsPort = base+10, base+11
	cfg.GatewayPort, cfg.GatewayMetricsPort = 0, 0 // free ports
	cfg.AdminPassword = "local-admin-pw"
	cfg.Demo = &Demo{Fault: "broker", FaultAfter: 80 * time.Second, FaultFor: 100 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	logs := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), out)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("last log lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	defer func() {
		mark := len(logs.String())
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("stack did not stop within 60s")
		}
		// A clean shutdown logs no ERROR.
		require.NotContains(t, logs.String()[mark:], "level=ERROR")
	}()
	alerting := "http://127.0.0.1:" + strconv.Itoa(cfg.AlertingPort)
	tickets := "http://127.0.0.1:" + strconv.Itoa(cfg.TicketsPort)
	testutil.WaitFor(t, 2*time.Minute, "stack up", func() bool { return strings.Contains(out.String(), "demo: producing") })
	started := time.Now()
	tokenRaw, err := os.ReadFile(filepath.Join(cfg.DataDir, "tickets", "alerting-token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tokenRaw))

	// The fault starts after 80 s of traffic; wait for it, then for the
	// incident.
	testutil.WaitFor(t, 3*time.Minute, "broker 2 stopped", func() bool { return strings.Contains(out.String(), "broker 2 stopped") })
	var incidents struct{ Incidents []store.Incident }
	wantTitle := fmt.Sprintf("Broker 2 (127.0.0.1:%d) down", cfg.KafkaPort+1)
	testutil.WaitFor(t, 3*time.Minute, "an incident titled "+wantTitle, func() bool {
		incidents.Incidents = nil
		getJSON(t, tickets+"/api/v1/incidents?status=open", token, &incidents)
		for _, inc := range incidents.Incidents {
			if strings.HasPrefix(inc.Title, wantTitle) {
				return true
			}
		}
		return false
	})
	var id uint
	var detail store.IncidentDetail
	testutil.WaitFor(t, 2*time.Minute, "SluiceBrokerDown joins the incident", func() bool {
		incidents.Incidents = nil
		getJSON(t, tickets+"/api/v1/incidents?status=open", token, &incidents)
		for _, inc := range incidents.Incidents {
			if strings.HasPrefix(inc.Title, wantTitle) {
				id = inc.ID
			}
		}
		detail = store.IncidentDetail{}
		getJSON(t, fmt.Sprintf("%s/api/v1/incidents/%d", tickets, id), token, &detail)
		for _, a := range detail.Alarms {
			if a.AlertName == "SluiceBrokerDown" {
				require.Equal(t, "2", a.Labels["broker"])
				return true
			}
		}
		return false
	})
	require.Len(t, incidents.Incidents, 1, "one fault, one incident: %+v", incidents.Incidents)
	t.Logf("incident %d %q (%s) with %d alarms", id, detail.Title, detail.Severity, len(detail.Alarms))
	require.Equal(t, "critical", detail.Severity)

	// Broker 2 returns; the incident resolves.
	testutil.WaitFor(t, 4*time.Minute, "broker 2 restarted", func() bool { return strings.Contains(out.String(), "broker 2 restarted") })
	// Every dashboard query returns data over the last five minutes (traffic
	// before the fault, alerts during it).
	now := time.Now()
	exprs := map[string]string{}
	for file, d := range dashboards.All() {
		panelTargets(d.Panels, file, exprs)
		for _, v := range d.Templating.List {
			q, ok := v.Query.(dashboards.VariableQuery)
			if !ok {
				if p, ok := v.Query.(*dashboards.VariableQuery); ok {
					q = *p
				} else {
					continue
				}
			}
			m := labelValuesVar.FindStringSubmatch(q.Query)
			if m == nil {
				continue
			}
			var vals struct{ Data []string }
			code := getJSON(t, alerting+"/api/v1/label/"+m[2]+"/values?"+url.Values{"match[]": {grafanaSubstitute(m[1])}}.Encode(), "", &vals)
			require.Equal(t, http.StatusOK, code, "%s variable %s", file, v.Name)
			require.NotEmpty(t, vals.Data, "%s variable %s: %s has no values", file, v.Name, q.Query)
		}
	}
	require.NotEmpty(t, exprs)
	var empty []string
	for where, expr := range exprs {
		var res struct {
			Data struct {
				Result []struct {
					Values [][2]any `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		v := url.Values{"query": {dataOf(t, grafanaSubstitute(expr))}, "start": {strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10)},
			"end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"15"}}
		code := getJSON(t, alerting+"/api/v1/query_range?"+v.Encode(), "", &res)
		require.Equal(t, http.StatusOK, code, "%s: %s", where, expr)
		if len(res.Data.Result) == 0 {
			empty = append(empty, where+": "+expr)
		}
	}
	require.Empty(t, empty, "panel expressions without data")

	testutil.WaitForErr(t, 5*time.Minute, "the incident resolves", func() (bool, error) {
		var inc store.IncidentDetail
		getJSON(t, fmt.Sprintf("%s/api/v1/incidents/%d", tickets, id), token, &inc)
		detail = inc
		if inc.Status == store.StatusResolved {
			return true, nil
		}
		var firing []string
		for _, a := range inc.Alarms {
			if a.Status == store.AlarmFiring {
				firing = append(firing, a.AlertName+" "+a.Labels["broker"])
			}
		}
		return false, fmt.Errorf("still firing: %v", firing)
	})
	names := map[string]int{}
	for _, a := range detail.Alarms {
		names[a.AlertName]++
	}
	t.Logf("incident %d %q absorbed %d alarms: %v", id, detail.Title, len(detail.Alarms), names)
	var all struct{ Incidents []store.Incident }
	getJSON(t, tickets+"/api/v1/incidents", token, &all)
	for _, inc := range all.Incidents {
		t.Logf("incident %d %s %q transient=%v", inc.ID, inc.Status, inc.Title, inc.Transient)
	}
	require.Len(t, all.Incidents, 1, "one fault, one incident")
	t.Logf("%d ERROR and %d WARN log lines over the demo (%s of traffic, broker 2 down for %s)",
		strings.Count(logs.String(), "level=ERROR"), strings.Count(logs.String(), "level=WARN"),
		time.Since(started).Round(time.Second), cfg.Demo.FaultFor)
	// The demo's fault is routine for the cluster: nothing in it is an ERROR
	// (it was 402 lines in five minutes, mostly Raft retrying the stopped
	// broker, and the notifier's "Missing notification reason").
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Error(line)
		}
	}
}
