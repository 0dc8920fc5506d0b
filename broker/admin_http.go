package broker

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
)

// adminHandler serves the broker's admin interface over HTTP (the tenant and plan
// management API is in tenant_http.go):
//
//	GET /api/v1/cluster          brokers, controller, topics with leaders and ISRs
//	GET /api/v1/logs             this broker's recent WARN and ERROR log lines
//	                             (slog text format, oldest first, at most 500)
//	GET /api/v1/events?since=N   cluster events recorded in the metadata log after
//	                             log index N (broker joined/fenced, leader elected
//	                             clean/unclean, ISR shrink/expand, topic and config
//	                             changes), oldest first, with timestamps
//
// Every broker answers from its own copy of the metadata log, so any of them can be
// asked; the monitoring and ticket services use the events to explain incidents.
func (b *Broker) adminHandler(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/logs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, b.logs.recent())
	})
	mux.HandleFunc("GET /api/v1/cluster", func(w http.ResponseWriter, r *http.Request) {
		img := b.quorum.Image()
		view := adminapi.Cluster{ClusterID: b.cfg.ClusterID, ControllerID: b.quorum.ControllerID(), MetadataIndex: img.Index,
			Brokers: []adminapi.Broker{}, Topics: []adminapi.Topic{}}
		for _, br := range img.Brokers {
			view.Brokers = append(view.Brokers, adminapi.Broker{ID: br.ID, Host: br.Host, Port: br.Port, Rack: br.Rack, Fenced: br.Fenced})
		}
		slices.SortFunc(view.Brokers, func(a, b adminapi.Broker) int { return cmp.Compare(a.ID, b.ID) })
		for _, t := range img.SortedTopics() {
			tv := adminapi.Topic{Name: t.Name, ID: fmt.Sprintf("%x", t.ID), Configs: t.Configs}
			for i, p := range t.Partitions {
				tv.Partitions = append(tv.Partitions, adminapi.Partition{Partition: i, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR})
			}
			view.Topics = append(view.Topics, tv)
		}
		writeJSON(w, view)
	})
	mux.HandleFunc("GET /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		var since uint64
		if s := r.URL.Query().Get("since"); s != "" {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				http.Error(w, fmt.Sprintf("since: %q is not a metadata log index", s), http.StatusBadRequest)
				return
			}
			since = v
		}
		events := []adminapi.Event{}
		for _, e := range b.quorum.Image().EventsSince(since) {
			if e.Type == metadata.EventBrokerJoined {
				e.Detail = brokerEpochDetail.ReplaceAllString(e.Detail, "")
			}
			events = append(events, e)
		}
		writeJSON(w, events)
	})
}

// httpHandler serves /metrics, /healthz (the process serves), /readyz (registered
// and unfenced) and the admin interface.
func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.registry, promhttp.HandlerOpts{Registry: b.registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-b.ready:
			w.Write([]byte("ready\n"))
		default:
			http.Error(w, "not registered with the controller yet", http.StatusServiceUnavailable)
		}
	})
	b.adminHandler(mux)
	b.tenantHandler(mux) // tenant_http.go
	return mux
}

// brokerEpochDetail is the broker epoch in a broker_joined event's detail, which the
// admin interface does not publish.
var brokerEpochDetail = regexp.MustCompile(` epoch=[0-9]+`)

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
