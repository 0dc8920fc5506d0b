package stack

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"

	"github.com/sluicemq/sluice/alerting/rules"
)

// stackTargetLabels are the label sets the local stack's targets put on every series they yield:
// job plus the target's static labels.
func stackTargetLabels() []map[string]string {
	w := opsWiring{
		bootstrap:     []string{"127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"},
		brokerMetrics: []string{"127.0.0.1:9642", "127.0.0.1:9643", "127.0.0.1:9644"},
		exporter:      "127.0.0.1:9308",
	}
	var out []map[string]string
	for _, t := range scrapeTargets(w, "sluice") {
		ls := map[string]string{"job": t.Job, "instance": t.Address}
		for k, v := range t.Labels {
			ls[k] = v
		}
		out = append(out, ls)
	}
	return out
}

func deployTargetLabels(t *testing.T) []map[string]string {
	cfg, err := promconfig.LoadFile(filepath.Join("..", "deploy", "prometheus.yml"), false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var out []map[string]string
	for _, sc := range cfg.ScrapeConfigs {
		for _, d := range sc.ServiceDiscoveryConfigs {
			static, ok := d.(discovery.StaticConfig)
			require.True(t, ok, "job %s: only static_configs are checked", sc.JobName)
			for _, g := range static {
				for _, tg := range g.Targets {
					ls := map[string]string{"job": sc.JobName, "instance": string(tg["__address__"])}
					for k, v := range g.Labels {
						ls[string(k)] = string(v)
					}
					out = append(out, ls)
				}
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// unmatchedSelectors returns, for every selector of the rule expressions that
// constrains a target label (a label some target sets, such as job), a line
// naming it when no target's labels satisfy its matchers on those labels: such
// a rule can never fire against these targets.
func unmatchedSelectors(exprs map[string]string, targets []map[string]string) []string {
	targetLabels := map[string]bool{}
	for _, ls := range targets {
		for k := range ls {
			targetLabels[k] = true
		}
	}
	var bad []string
	for name, expr := range exprs {
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			var ms []*labels.Matcher
			for _, m := range vs.LabelMatchers {
				if targetLabels[m.Name] {
					ms = append(ms, m)
				}
			}
			for _, ls := range targets {
				all := true
				for _, m := range ms {
					if !m.Matches(ls[m.Name]) {
						all = false
						break
					}
				}
				if all {
					return nil
				}
			}
			bad = append(bad, fmt.Sprintf("%s: selector %s matches no target", name, vs.String()))
			return nil
		})
	}
	return bad
}

func packExprs(t *testing.T) map[string]string {
	exprs := map[string]string{}
	err := fs.WalkDir(rules.DefaultPack, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := rules.DefaultPack.ReadFile(p)
		if err != nil {
			return err
		}
		groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
		if len(errs) > 0 {
			return errs[0]
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				exprs[r.Alert+r.Record] = r.Expr
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, exprs)
	return exprs
}

// TestRuleSelectorsMatchTargets fails when a rule of the default pack selects
// a job (or another target label) that neither the local stack nor
// deploy/prometheus.yml scrapes, as SluiceBrokerDown did when the stack
// scraped under sluice-broker.
func TestRuleSelectorsMatchTargets(t *testing.T) {
	exprs := packExprs(t)
	for name, targets := range map[string][]map[string]string{
		"local stack":           stackTargetLabels(),
		"deploy/prometheus.yml": deployTargetLabels(t),
	} {
		t.Run(name, func(t *testing.T) {
			require.Empty(t, unmatchedSelectors(exprs, targets))
			// Every broker target names its node and Kafka address for the
			// alert summaries.
			brokers := 0
			for _, ls := range targets {
				if ls["job"] == "broker" {
					brokers++
					require.NotEmpty(t, ls["broker"], "%v", ls)
					require.NotEmpty(t, ls["kafka_address"], "%v", ls)
				}
			}
			require.Equal(t, 3, brokers)
		})
	}
	// The check itself catches the old job names.
	old := []map[string]string{{"job": "sluice-broker", "instance": "a"}, {"job": "sluice-exporter", "instance": "b"}}
	require.Len(t, unmatchedSelectors(map[string]string{
		"SluiceBrokerDown":   `up{job="broker"} == 0`,
		"SluiceExporterDown": `up{job="exporter"} == 0`,
	}, old), 2)
}
