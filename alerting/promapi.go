package alerting

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// maxQueryForm bounds a request body (the API reads its parameters from the
// URL; a body is not expected).
const maxQueryForm = 1 << 20

// promAPI registers Prometheus' query HTTP API over the evaluator's TSDB, in
// Prometheus' wire format, so Grafana can use `sluice alerting` as a
// Prometheus data source:
//
//	GET      /api/v1/query                  query, time (expr is accepted for query)
//	GET      /api/v1/query_range            query, start, end, step
//	GET      /api/v1/series                 match[], start, end
//	GET      /api/v1/labels                 match[], start, end
//	GET      /api/v1/label/{name}/values    match[], start, end
//	GET      /api/v1/metadata               empty: the TSDB keeps no metadata
func (m *Manager) promAPI(mux *http.ServeMux) {
	query := func(w http.ResponseWriter, r *http.Request) {
		if !parseForm(w, r) {
			return
		}
		expr := r.Form.Get("query")
		if expr == "" {
			expr = r.Form.Get("expr")
		}
		ts, err := parseTime(r.Form.Get("time"), time.Now())
		if err != nil {
			badData(w, fmt.Errorf("time: %w", err))
			return
		}
		v, err := m.evaluator.InstantQuery(r.Context(), expr, ts)
		if err != nil {
			badData(w, err)
			return
		}
		writeData(w, map[string]any{"resultType": v.Type(), "result": v})
	}
	queryRange := func(w http.ResponseWriter, r *http.Request) {
		if !parseForm(w, r) {
			return
		}
		start, err := parseTime(r.Form.Get("start"), time.Time{})
		if err != nil {
			badData(w, fmt.Errorf("start: %w", err))
			return
		}
		end, err := parseTime(r.Form.Get("end"), time.Time{})
		if err != nil {
			badData(w, fmt.Errorf("end: %w", err))
			return
		}
		step, err := parseDuration(r.Form.Get("step"))
		if err != nil {
			badData(w, fmt.Errorf("step: %w", err))
			return
		}
		v, err := m.evaluator.RangeQuery(r.Context(), r.Form.Get("query"), start, end, step)
		if err != nil {
			badData(w, err)
			return
		}
		writeData(w, map[string]any{"resultType": v.Type(), "result": v})
	}
	// window parses match[], start and end (default: the last 6 hours, like
	// Prometheus' default for these endpoints is everything).
	window := func(w http.ResponseWriter, r *http.Request) (sel [][]*labels.Matcher, start, end time.Time, ok bool) {
		if !parseForm(w, r) {
			return nil, start, end, false
		}
		var err error
		if sel, err = m.evaluator.ParseMatchers(r.Form["match[]"]); err != nil {
			badData(w, err)
			return nil, start, end, false
		}
		if start, err = parseTime(r.Form.Get("start"), time.Unix(0, 0)); err != nil {
			badData(w, fmt.Errorf("start: %w", err))
			return nil, start, end, false
		}
		if end, err = parseTime(r.Form.Get("end"), time.Now().Add(time.Minute)); err != nil {
			badData(w, fmt.Errorf("end: %w", err))
			return nil, start, end, false
		}
		return sel, start, end, true
	}
	series := func(w http.ResponseWriter, r *http.Request) {
		sel, start, end, ok := window(w, r)
		if !ok {
			return
		}
		if len(sel) == 0 {
			badData(w, errors.New("match[]: at least one series selector is required"))
			return
		}
		ss, err := m.evaluator.Series(r.Context(), sel, start, end)
		if err != nil {
			badData(w, err)
			return
		}
		out := make([]map[string]string, 0, len(ss))
		for _, ls := range ss {
			out = append(out, ls.Map())
		}
		writeData(w, out)
	}
	labelNames := func(w http.ResponseWriter, r *http.Request) {
		sel, start, end, ok := window(w, r)
		if !ok {
			return
		}
		names, err := m.evaluator.LabelNames(r.Context(), sel, start, end)
		if err != nil {
			badData(w, err)
			return
		}
		writeData(w, names)
	}
	// GET only: the API takes no form POSTs (a browser can send those
	// cross-site), so Grafana's data source uses HTTP method GET.
	mux.HandleFunc("GET /api/v1/query", query)
	mux.HandleFunc("GET /api/v1/query_range", queryRange)
	mux.HandleFunc("GET /api/v1/series", series)
	mux.HandleFunc("GET /api/v1/labels", labelNames)
	mux.HandleFunc("GET /api/v1/label/{name}/values", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !model.UTF8Validation.IsValidLabelName(name) {
			badData(w, fmt.Errorf("invalid label name %q", name))
			return
		}
		sel, start, end, ok := window(w, r)
		if !ok {
			return
		}
		vals, err := m.evaluator.LabelValues(r.Context(), name, sel, start, end)
		if err != nil {
			badData(w, err)
			return
		}
		writeData(w, vals)
	})
	mux.HandleFunc("GET /api/v1/metadata", func(w http.ResponseWriter, r *http.Request) {
		writeData(w, map[string]any{})
	})
}

func parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxQueryForm)
	if err := r.ParseForm(); err != nil {
		badData(w, err)
		return false
	}
	return true
}

func badData(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`+"\n", err.Error())
}

// parseTime reads Prometheus' time parameters: RFC 3339 or Unix seconds with
// a fraction; empty gives def (an error when def is zero).
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		if def.IsZero() {
			return def, errors.New("required")
		}
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("%q is not a time", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix seconds", s)
	}
	return t, nil
}

// parseDuration reads a step: seconds with a fraction, or a Prometheus
// duration such as 15s.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("required")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || f > float64(math.MaxInt64/int64(time.Second)) || math.IsNaN(f) {
			return 0, fmt.Errorf("%q is not a positive duration", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return time.Duration(d), nil
}
