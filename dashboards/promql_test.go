package dashboards

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// query is one PromQL expression found in a dashboard file, as written there.
type query struct {
	where string // file, panel or variable, target
	expr  string
	// label is the label a label_values variable reads from expr's series.
	label string
}

// selector is a vector selector of a query, after template variables were
// replaced.
type selector struct {
	metric   string
	matchers []*labels.Matcher
}

// grouping is a list of labels a query groups or matches on (by, on,
// ignoring), with the selectors whose series it applies to.
type grouping struct {
	what      string // "by", "on", "ignoring"
	labels    []string
	selectors []selector
}

// analysis is what a query uses: its selectors and groupings.
type analysis struct {
	selectors []selector
	groupings []grouping
}

// builtinIntervals are Grafana's interval variables and the values they are
// replaced with before parsing, like Grafana does at query time.
var builtinIntervals = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
	"__interval_ms":   "15000",
}

// variableRef matches the ways Grafana lets a template variable be referenced:
// $name, ${name}, ${name:format} and [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]`)

// variableRefs returns the names of the variables s refers to.
func variableRefs(s string) []string {
	var names []string
	for _, m := range variableRef.FindAllStringSubmatch(s, -1) {
		names = append(names, m[1]+m[2]+m[3])
	}
	return names
}

// substitute replaces template variables as Grafana would with sensible
// values: interval variables with durations, every other variable with ".*"
// (All of a multi-value variable, and what any value looks like inside the
// regex matchers the dashboards use them in). A variable used outside a label
// matcher's string then no longer parses, which the test reports.
func substitute(expr string) string {
	return variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		if v, ok := builtinIntervals[name]; ok {
			return v
		}
		return ".*"
	})
}

// fromVariable reports whether a matcher value came from a template variable
// (see substitute), so its value cannot be checked against live series.
func fromVariable(value string) bool { return strings.Contains(value, ".*") }

var (
	labelValuesQuery = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	labelOnlyQuery   = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	queryResultQuery = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

// variableQuery turns the query of a Prometheus query variable into the
// PromQL it runs. Grafana's Prometheus variable functions label_names() and
// metrics() are not used by the dashboards and rejected, so that every query
// stays checkable.
func variableQuery(where, q string) (query, error) {
	if m := labelValuesQuery.FindStringSubmatch(q); m != nil {
		return query{where: where, expr: m[1], label: m[2]}, nil
	}
	if labelOnlyQuery.MatchString(q) {
		return query{}, fmt.Errorf("%s: %q reads a label from every series; name a metric: label_values(metric, label)", where, q)
	}
	if m := queryResultQuery.FindStringSubmatch(q); m != nil {
		return query{where: where, expr: m[1]}, nil
	}
	return query{}, fmt.Errorf("%s: variable query %q is not label_values(metric, label) or query_result(expr)", where, q)
}

// promqlParser parses with the default options, those of a Prometheus server
// started without feature flags.
var promqlParser = parser.NewParser(parser.Options{})

// analyse parses a query with variables substituted and returns the
// selectors and groupings it uses.
func analyse(q query) (analysis, error) {
	expr, err := promqlParser.ParseExpr(substitute(q.expr))
	if err != nil {
		return analysis{}, fmt.Errorf("%s: %w\n\texpr: %s\n\tsubstituted: %s", q.where, err, q.expr, substitute(q.expr))
	}
	var a analysis
	var errs []error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			s, err := selectorOf(n)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", q.where, err))
				return nil
			}
			a.selectors = append(a.selectors, s)
		case *parser.AggregateExpr:
			if len(n.Grouping) > 0 && !n.Without {
				a.groupings = append(a.groupings, grouping{what: "by", labels: n.Grouping, selectors: selectorsUnder(n.Expr)})
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && len(vm.MatchingLabels) > 0 {
				what := "ignoring"
				if vm.On {
					what = "on"
				}
				a.groupings = append(a.groupings, grouping{what: what, labels: vm.MatchingLabels,
					selectors: append(selectorsUnder(n.LHS), selectorsUnder(n.RHS)...)})
			}
		case *parser.Call:
			switch n.Func.Name {
			case "label_replace", "label_join":
				// They make labels no metric has; the grouping check
				// would need to know them.
				errs = append(errs, fmt.Errorf("%s: %s is not supported by this test; extend it first", q.where, n.Func.Name))
			}
		}
		return nil
	})
	if len(a.selectors) == 0 && q.label != "" {
		errs = append(errs, fmt.Errorf("%s: label_values needs a metric selector, got %q", q.where, q.expr))
	}
	return a, errors.Join(errs...)
}

// selectorOf returns the metric name and matchers of a vector selector. A
// name matched by a regular expression cannot be checked, so it is refused.
func selectorOf(vs *parser.VectorSelector) (selector, error) {
	s := selector{metric: vs.Name}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			if m.Type != labels.MatchEqual {
				return s, fmt.Errorf("selector %s matches the metric name with %s; name the metric", vs, m.Type)
			}
			s.metric = m.Value
			continue
		}
		s.matchers = append(s.matchers, m)
	}
	if s.metric == "" {
		return s, fmt.Errorf("selector %s has no metric name", vs)
	}
	return s, nil
}

// selectorsUnder returns the selectors of an expression.
func selectorsUnder(e parser.Expr) []selector {
	var out []selector
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			if s, err := selectorOf(vs); err == nil {
				out = append(out, s)
			}
		}
		return nil
	})
	return out
}
