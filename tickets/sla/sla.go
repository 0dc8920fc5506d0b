// Package sla measures how incidents are handled against per-severity targets:
// time to acknowledge (MTTA) and time to resolve (MTTR), p50 and p90 per severity
// and per cluster, and which incidents breached their targets.
//
// Both durations run from detected_at, the moment the service first heard of the
// incident (PagerDuty's convention). Incidents never acknowledged are left out of
// MTTA; incidents resolved by their alarms without a person are counted in MTTR
// and reported separately as auto-resolved, since they distort it.
package sla

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/sluicemq/sluice/tickets/store"
)

// Target is what a severity promises.
type Target struct {
	Ack     time.Duration `json:"ack" yaml:"ack"`
	Resolve time.Duration `json:"resolve" yaml:"resolve"`
}

// Targets maps severities to targets; "default" applies to severities not listed.
type Targets map[string]Target

// DefaultTargets are the targets without configuration: critical acknowledged in
// 5 minutes and resolved in 1 hour, warning in 30 minutes and 8 hours, info in 4
// and 72 hours.
func DefaultTargets() Targets {
	return Targets{
		"critical": {5 * time.Minute, time.Hour},
		"error":    {15 * time.Minute, 4 * time.Hour},
		"warning":  {30 * time.Minute, 8 * time.Hour},
		"info":     {4 * time.Hour, 72 * time.Hour},
		"default":  {30 * time.Minute, 8 * time.Hour},
	}
}

// For returns the target of severity.
func (t Targets) For(severity string) Target {
	if v, ok := t[severity]; ok {
		return v
	}
	return t["default"]
}

// Validate checks every target is positive.
func (t Targets) Validate() error {
	if _, ok := t["default"]; !ok {
		return fmt.Errorf("sla targets: no default target")
	}
	for sev, v := range t {
		if v.Ack <= 0 || v.Resolve <= 0 || v.Resolve < v.Ack {
			return fmt.Errorf("sla target %q: ack and resolve must be positive and ack <= resolve", sev)
		}
	}
	return nil
}

// Status is an incident's standing against its targets.
type Status struct {
	AckTarget       string `json:"ack_target"`
	ResolveTarget   string `json:"resolve_target"`
	AckBreached     bool   `json:"ack_breached"`
	ResolveBreached bool   `json:"resolve_breached"`
	// AckDue and ResolveDue are when the targets run out.
	AckDue     time.Time `json:"ack_due"`
	ResolveDue time.Time `json:"resolve_due"`
}

// Breached reports whether either target was missed.
func (s Status) Breached() bool { return s.AckBreached || s.ResolveBreached }

// Check returns the incident's standing at now: a target is breached once it ran
// out before the acknowledgement or resolution, or runs out while still waiting.
func Check(inc *store.Incident, t Targets, now time.Time) Status {
	tg := t.For(inc.Severity)
	st := Status{AckTarget: tg.Ack.String(), ResolveTarget: tg.Resolve.String(),
		AckDue: inc.DetectedAt.Add(tg.Ack), ResolveDue: inc.DetectedAt.Add(tg.Resolve)}
	ackAt := inc.FirstAckAt
	if ackAt == nil && inc.ResolvedAt != nil {
		ackAt = inc.ResolvedAt // resolving answers the page too
	}
	if ackAt != nil {
		st.AckBreached = ackAt.After(st.AckDue)
	} else {
		st.AckBreached = now.After(st.AckDue)
	}
	if inc.ResolvedAt != nil {
		st.ResolveBreached = inc.ResolvedAt.After(st.ResolveDue)
	} else if inc.Status != store.StatusClosed {
		st.ResolveBreached = now.After(st.ResolveDue)
	}
	return st
}

// Stats are the figures of one group of incidents (a severity or a cluster).
type Stats struct {
	Incidents       int     `json:"incidents"`
	Open            int     `json:"open"`
	Acknowledged    int     `json:"acknowledged"`
	Resolved        int     `json:"resolved"`
	AutoResolved    int     `json:"auto_resolved"`
	MTTAP50Seconds  float64 `json:"mtta_p50_seconds"`
	MTTAP90Seconds  float64 `json:"mtta_p90_seconds"`
	MTTRP50Seconds  float64 `json:"mttr_p50_seconds"`
	MTTRP90Seconds  float64 `json:"mttr_p90_seconds"`
	AckBreaches     int     `json:"ack_breaches"`
	ResolveBreaches int     `json:"resolve_breaches"`

	tta, ttr []float64
}

// Report is the SLA report over a window.
type Report struct {
	Since      time.Time         `json:"since"`
	Until      time.Time         `json:"until"`
	Targets    map[string]Target `json:"-"`
	TargetText map[string]string `json:"targets"`
	Total      *Stats            `json:"total"`
	Severity   map[string]*Stats `json:"by_severity"`
	Cluster    map[string]*Stats `json:"by_cluster"`
	// Breaching lists the ids of incidents that breached a target.
	Breaching []uint `json:"breaching"`
}

// Compute builds the report of incidents at now.
func Compute(incs []store.Incident, t Targets, since, now time.Time) *Report {
	r := &Report{Since: since, Until: now, Targets: t, TargetText: map[string]string{}, Total: &Stats{},
		Severity: map[string]*Stats{}, Cluster: map[string]*Stats{}, Breaching: []uint{}}
	for sev, v := range t {
		r.TargetText[sev] = fmt.Sprintf("ack %s, resolve %s", v.Ack, v.Resolve)
	}
	get := func(m map[string]*Stats, k string) *Stats {
		if m[k] == nil {
			m[k] = &Stats{}
		}
		return m[k]
	}
	for i := range incs {
		inc := &incs[i]
		st := Check(inc, t, now)
		if st.Breached() {
			r.Breaching = append(r.Breaching, inc.ID)
		}
		for _, s := range []*Stats{r.Total, get(r.Severity, inc.Severity), get(r.Cluster, inc.Cluster)} {
			s.add(inc, st)
		}
	}
	for _, s := range append([]*Stats{r.Total}, values(r.Severity, r.Cluster)...) {
		s.finish()
	}
	return r
}

func values(ms ...map[string]*Stats) []*Stats {
	var out []*Stats
	for _, m := range ms {
		for _, s := range m {
			out = append(out, s)
		}
	}
	return out
}

func (s *Stats) add(inc *store.Incident, st Status) {
	s.Incidents++
	if inc.Open() {
		s.Open++
	}
	if inc.FirstAckAt != nil {
		s.Acknowledged++
		s.tta = append(s.tta, inc.FirstAckAt.Sub(inc.DetectedAt).Seconds())
	}
	if inc.ResolvedAt != nil {
		s.Resolved++
		s.ttr = append(s.ttr, inc.ResolvedAt.Sub(inc.DetectedAt).Seconds())
		if inc.ResolvedBy == "alertmanager" && inc.FirstAckAt == nil {
			s.AutoResolved++
		}
	}
	if st.AckBreached {
		s.AckBreaches++
	}
	if st.ResolveBreached {
		s.ResolveBreaches++
	}
}

func (s *Stats) finish() {
	s.MTTAP50Seconds, s.MTTAP90Seconds = Quantile(s.tta, 0.5), Quantile(s.tta, 0.9)
	s.MTTRP50Seconds, s.MTTRP90Seconds = Quantile(s.ttr, 0.5), Quantile(s.ttr, 0.9)
}

// Quantile returns the q-quantile of xs by linear interpolation between closest
// ranks (the method of Prometheus' quantile()); 0 for no values, since JSON
// cannot carry NaN (Stats say how many values there were).
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := q * float64(len(s)-1)
	lo := math.Floor(rank)
	hi := math.Ceil(rank)
	if lo == hi {
		return s[int(lo)]
	}
	return s[int(lo)] + (s[int(hi)]-s[int(lo)])*(rank-lo)
}
