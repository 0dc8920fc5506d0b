package rules

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
)

// MaxRangePoints bounds the points per series of a range query, like
// Prometheus' own limit of 11,000: (end-start)/step must not exceed it.
const MaxRangePoints = 11000

// MaxSeries bounds the series a series, labels or label values request reads.
const MaxSeries = 100000

// InstantQuery evaluates expr at ts over the local TSDB and returns the value
// in any of PromQL's types (vector, scalar, matrix, string).
func (e *Evaluator) InstantQuery(ctx context.Context, expr string, ts time.Time) (parser.Value, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.db, nil, expr, ts)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	return copyValue(res.Value), nil
}

// RangeQuery evaluates expr from start to end every step over the local TSDB.
func (e *Evaluator) RangeQuery(ctx context.Context, expr string, start, end time.Time, step time.Duration) (parser.Value, error) {
	if step <= 0 {
		return nil, fmt.Errorf("step: must be positive")
	}
	if end.Before(start) {
		return nil, fmt.Errorf("end: before start")
	}
	if end.Sub(start)/step > MaxRangePoints {
		return nil, fmt.Errorf("step: exceeded maximum resolution of %d points per series; raise the step", MaxRangePoints)
	}
	q, err := e.engine.NewRangeQuery(ctx, e.db, nil, expr, start, end, step)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	return copyValue(res.Value), nil
}

// copyValue detaches a result from the query's pooled memory, which Close
// returns.
func copyValue(v parser.Value) parser.Value {
	switch v := v.(type) {
	case promql.Vector:
		return slices.Clone(v)
	case promql.Matrix:
		out := make(promql.Matrix, len(v))
		for i, s := range v {
			out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: slices.Clone(s.Histograms)}
		}
		return out
	}
	return v
}

// ParseMatchers parses series selectors (the match[] parameters).
func (e *Evaluator) ParseMatchers(sel []string) ([][]*labels.Matcher, error) {
	var out [][]*labels.Matcher
	for _, s := range sel {
		ms, err := e.parser.ParseMetricSelector(s)
		if err != nil {
			return nil, fmt.Errorf("match[] %q: %w", s, err)
		}
		out = append(out, ms)
	}
	return out, nil
}

// Series returns the label sets of the series matching any of the selectors
// between start and end, at most MaxSeries.
func (e *Evaluator) Series(ctx context.Context, sel [][]*labels.Matcher, start, end time.Time) ([]labels.Labels, error) {
	q, err := e.db.Querier(start.UnixMilli(), end.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer q.Close()
	seen := map[uint64]bool{}
	var out []labels.Labels
	hints := &storage.SelectHints{Start: start.UnixMilli(), End: end.UnixMilli(), Func: "series"}
	for _, ms := range sel {
		ss := q.Select(ctx, false, hints, ms...)
		for ss.Next() {
			ls := ss.At().Labels()
			if h := ls.Hash(); !seen[h] {
				seen[h] = true
				out = append(out, ls)
				if len(out) > MaxSeries {
					return nil, fmt.Errorf("more than %d series match; narrow match[]", MaxSeries)
				}
			}
		}
		if err := ss.Err(); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i], out[j]) < 0 })
	return out, nil
}

// LabelNames returns the label names of the series matching the selectors (of
// every series when there is none) between start and end.
func (e *Evaluator) LabelNames(ctx context.Context, sel [][]*labels.Matcher, start, end time.Time) ([]string, error) {
	return e.labelSet(ctx, sel, start, end, func(ls labels.Labels, add func(string)) {
		ls.Range(func(l labels.Label) { add(l.Name) })
	}, func(q storage.Querier) ([]string, error) {
		names, _, err := q.LabelNames(ctx, nil)
		return names, err
	})
}

// LabelValues returns the values of label name on the series matching the
// selectors (every series when there is none) between start and end.
func (e *Evaluator) LabelValues(ctx context.Context, name string, sel [][]*labels.Matcher, start, end time.Time) ([]string, error) {
	return e.labelSet(ctx, sel, start, end, func(ls labels.Labels, add func(string)) {
		if v := ls.Get(name); v != "" {
			add(v)
		}
	}, func(q storage.Querier) ([]string, error) {
		vals, _, err := q.LabelValues(ctx, name, nil)
		return vals, err
	})
}

func (e *Evaluator) labelSet(ctx context.Context, sel [][]*labels.Matcher, start, end time.Time,
	pick func(labels.Labels, func(string)), all func(storage.Querier) ([]string, error)) ([]string, error) {
	if len(sel) == 0 {
		q, err := e.db.Querier(start.UnixMilli(), end.UnixMilli())
		if err != nil {
			return nil, err
		}
		defer q.Close()
		out, err := all(q)
		if out == nil {
			out = []string{}
		}
		return out, err
	}
	series, err := e.Series(ctx, sel, start, end)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, ls := range series {
		pick(ls, func(s string) { set[s] = true })
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
