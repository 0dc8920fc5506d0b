package sla

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/tickets/store"
)

// Collector exports the SLA report as Prometheus metrics, computed from the store
// at each scrape over the trailing Window:
//
//	sluice_tickets_mtta_seconds{severity|cluster, quantile}
//	sluice_tickets_mttr_seconds{severity|cluster, quantile}
//	sluice_tickets_incidents{severity, status}
//	sluice_tickets_sla_breaches{severity, kind="ack"|"resolve"}
type Collector struct {
	Store   *store.Store
	Targets Targets
	Window  time.Duration

	mtta, mttr, incidents, breaches, up *prometheus.Desc
}

// NewCollector returns a collector over the trailing window.
func NewCollector(st *store.Store, t Targets, window time.Duration) *Collector {
	return &Collector{Store: st, Targets: t, Window: window,
		mtta: prometheus.NewDesc("sluice_tickets_mtta_seconds", "Time from detection to first acknowledgement of the incidents detected in the SLA window, by severity or cluster.",
			[]string{"severity", "cluster", "quantile"}, nil),
		mttr: prometheus.NewDesc("sluice_tickets_mttr_seconds", "Time from detection to resolution of the incidents detected in the SLA window, by severity or cluster.",
			[]string{"severity", "cluster", "quantile"}, nil),
		incidents: prometheus.NewDesc("sluice_tickets_incidents", "Incidents detected in the SLA window, by severity and current status.",
			[]string{"severity", "status"}, nil),
		breaches: prometheus.NewDesc("sluice_tickets_sla_breaches", "Incidents detected in the SLA window that breached their acknowledge or resolve target, by severity.",
			[]string{"severity", "kind"}, nil),
		up: prometheus.NewDesc("sluice_tickets_sla_report_up", "1 if the SLA report could be computed from the database at this scrape.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.mtta, c.mttr, c.incidents, c.breaches, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := c.Store.Now()
	incs, err := c.Store.IncidentsDetectedSince(ctx, now.Add(-c.Window))
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	r := Compute(incs, c.Targets, now.Add(-c.Window), now)
	emit := func(sev, cluster string, s *Stats) {
		if s.Acknowledged > 0 {
			ch <- prometheus.MustNewConstMetric(c.mtta, prometheus.GaugeValue, s.MTTAP50Seconds, sev, cluster, "0.5")
			ch <- prometheus.MustNewConstMetric(c.mtta, prometheus.GaugeValue, s.MTTAP90Seconds, sev, cluster, "0.9")
		}
		if s.Resolved > 0 {
			ch <- prometheus.MustNewConstMetric(c.mttr, prometheus.GaugeValue, s.MTTRP50Seconds, sev, cluster, "0.5")
			ch <- prometheus.MustNewConstMetric(c.mttr, prometheus.GaugeValue, s.MTTRP90Seconds, sev, cluster, "0.9")
		}
	}
	for sev, s := range r.Severity {
		emit(sev, "", s)
		ch <- prometheus.MustNewConstMetric(c.breaches, prometheus.GaugeValue, float64(s.AckBreaches), sev, "ack")
		ch <- prometheus.MustNewConstMetric(c.breaches, prometheus.GaugeValue, float64(s.ResolveBreaches), sev, "resolve")
	}
	for cl, s := range r.Cluster {
		emit("", cl, s)
	}
	counts := map[[2]string]int{}
	for _, inc := range incs {
		counts[[2]string{inc.Severity, inc.Status}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.incidents, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
