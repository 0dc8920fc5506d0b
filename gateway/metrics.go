package gateway

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the gateway's sluice_gateway_* series.
type metrics struct {
	connections prometheus.Gauge
	rejected    prometheus.Counter
	requests    *prometheus.CounterVec
	backend     *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	refreshes   *prometheus.CounterVec
	badRequests prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		connections: f.NewGauge(prometheus.GaugeOpts{Name: "sluice_gateway_connections",
			Help: "Open client connections."}),
		rejected: f.NewCounter(prometheus.CounterOpts{Name: "sluice_gateway_connections_rejected_total",
			Help: "Client connections closed at once because max.connections were open."}),
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_gateway_requests_total",
			Help: "Client requests answered, by API and result (ok, or error: the connection was closed)."}, []string{"api", "result"}),
		backend: f.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_gateway_backend_request_seconds",
			Help:    "Time from sending a request to a broker to its response, by API.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"api"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_gateway_retries_total",
			Help: "Requests (or parts of them) the gateway sent again after a leader or coordinator moved, by API."}, []string{"api"}),
		refreshes: f.NewCounterVec(prometheus.CounterOpts{Name: "sluice_gateway_metadata_refreshes_total",
			Help: "Refreshes of the gateway's view of the cluster, by result."}, []string{"result"}),
		badRequests: f.NewCounter(prometheus.CounterOpts{Name: "sluice_gateway_bad_requests_total",
			Help: "Client connections closed for a malformed, oversized or unsupported request."}),
	}
}

// init creates the series of every API the gateway routes, at zero, so that
// dashboards and alerts see them before the first retry.
func (m *metrics) init() {
	for key := range routes {
		name := kmsg.NameForKey(key)
		m.retries.WithLabelValues(name)
	}
	m.refreshes.WithLabelValues("ok")
	m.refreshes.WithLabelValues("error")
}

// result is the label of an outcome.
func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
