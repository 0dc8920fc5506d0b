package alerting

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/sluicemq/sluice/alerting/dispatch"
)

// Handler is the HTTP API:
//
//	GET    /api/v1/alerts                      active alerts (silenced ones marked suppressed)
//	GET    /api/v1/rules                       every rule with state and current values
//	GET    /api/v1/targets                     scrape targets and their health
//	GET    /api/v1/query, /api/v1/query_range, /api/v1/series, /api/v1/labels,
//	       /api/v1/label/{name}/values         Prometheus' query API over the local TSDB (promapi.go)
//	GET    /api/v1/silences                    silences
//	POST   /api/v1/silences                    create (or update, with id) a silence
//	DELETE /api/v1/silences/{id}               expire a silence
//	GET    /api/v1/receivers                   receiver names
//	POST   /api/v1/receivers/{name}/test       send a test notification through a receiver
//	POST   /api/v1/slack/interactions          Slack's interaction requests (signed)
//	POST   /api/v2/alerts                      Alertmanager's alert ingestion, for a stock Prometheus
//	GET    /-/healthy, /-/ready
//
// Every /api/ endpoint but Slack's is authenticated when any credential is configured, and
// writes take only application/json (see protect).
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
		as := m.dispatcher.Alerts(r.Context())
		sort.Slice(as, func(i, j int) bool { return as[i].StartsAt.Before(as[j].StartsAt) })
		writeData(w, as)
	})
	mux.HandleFunc("GET /api/v1/rules", func(w http.ResponseWriter, r *http.Request) {
		writeData(w, m.evaluator.Rules())
	})
	mux.HandleFunc("GET /api/v1/targets", func(w http.ResponseWriter, r *http.Request) {
		writeData(w, m.evaluator.Targets())
	})
	m.promAPI(mux)
	mux.HandleFunc("GET /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		s, err := m.dispatcher.Silences(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeData(w, s)
	})
	mux.HandleFunc("POST /api/v1/silences", func(w http.ResponseWriter, r *http.Request) {
		var s dispatch.Silence
		if err := decodeJSON(r, &s); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := m.checkSilenceLength(s, time.Now()); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		id, err := m.dispatcher.SetSilence(r.Context(), s)
		switch {
		case errors.Is(err, dispatch.ErrSilenceNotFound):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusBadRequest, err)
		default:
			writeData(w, map[string]string{"silenceID": id})
		}
	})
	mux.HandleFunc("DELETE /api/v1/silences/{id}", func(w http.ResponseWriter, r *http.Request) {
		err := m.dispatcher.ExpireSilence(r.Context(), r.PathValue("id"))
		switch {
		case errors.Is(err, dispatch.ErrSilenceNotFound):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusBadRequest, err)
		default:
			writeData(w, map[string]string{"expired": r.PathValue("id")})
		}
	})
	mux.HandleFunc("GET /api/v1/receivers", func(w http.ResponseWriter, r *http.Request) {
		rs := m.dispatcher.Receivers()
		sort.Strings(rs)
		writeData(w, rs)
	})
	mux.HandleFunc("POST /api/v1/receivers/{name}/test", func(w http.ResponseWriter, r *http.Request) {
		err := m.dispatcher.TestReceiver(r.Context(), r.PathValue("name"))
		switch {
		case errors.Is(err, dispatch.ErrUnknownReceiver):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusBadGateway, err)
		default:
			writeData(w, map[string]string{"sent": r.PathValue("name")})
		}
	})
	mux.Handle("POST "+slackInteractionsPath, m.slackHTTP)
	mux.HandleFunc("POST /api/v2/alerts", func(w http.ResponseWriter, r *http.Request) {
		var alerts []*model.Alert
		if err := decodeJSON(r, &alerts); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if err := m.dispatcher.Put(r.Context(), alerts...); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "OK\n") }
	mux.HandleFunc("GET /-/healthy", ok)
	mux.HandleFunc("GET /-/ready", ok)
	return m.protect(mux)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func writeData(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": v})
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "error": err.Error()})
}
