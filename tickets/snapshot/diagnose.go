package snapshot

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// Diagnose fills Findings from rules over the snapshot, most likely culprit
// first, and Diagnosis with the first of them. The rules, in order:
//
//  1. a broker fenced by the controller or unreachable over TCP: since when (its
//     last broker_fenced event) and how many partitions lost it from their ISR;
//  2. offline partitions (no leader);
//  3. unclean leader elections in the event window (acknowledged data may be
//     lost);
//  4. under-replicated partitions without a fenced broker: the broker missing
//     from most ISRs (a slow or stuck follower);
//  5. the consumer group of the incident, or the most lagging one, with its
//     state;
//  6. the cluster could not be observed at all.
func Diagnose(s *Snapshot) {
	var f []string
	if s.Cluster != nil {
		for _, b := range s.Cluster.Brokers {
			if !b.Fenced && b.Reachable {
				continue
			}
			lost := 0
			for _, p := range append(append([]PartitionState{}, s.UnderReplicated...), s.Offline...) {
				if slices.Contains(p.Replicas, b.ID) && !slices.Contains(p.ISR, b.ID) {
					lost++
				}
			}
			what := "unreachable"
			if b.Fenced && b.Reachable {
				what = "fenced by the controller"
			}
			since := ""
			if t, ok := lastEvent(s.Events, adminapi.EventBrokerFenced, b.ID); ok {
				since = " since " + t.UTC().Format(time.TimeOnly)
			}
			f = append(f, fmt.Sprintf("broker %d %s%s; %s lost it from their ISR", b.ID, what, since, Plural(lost, "partition", "partitions")))
		}
	}
	if n := len(s.Offline); n > 0 {
		f = append(f, fmt.Sprintf("%s offline (no leader): %s", Plural(n, "partition", "partitions"), partitionList(s.Offline)))
	}
	for _, e := range s.Events {
		if e.Type == "unclean_leader_elected" {
			f = append(f, fmt.Sprintf("unclean leader election of %s-%d at %s: acknowledged records may be lost",
				e.Topic, e.Partition, e.Time.UTC().Format(time.TimeOnly)))
		}
	}
	if len(s.UnderReplicated) > 0 && !anyBrokerDown(s) {
		missing := map[int32]int{}
		for _, p := range s.UnderReplicated {
			for _, r := range p.Replicas {
				if !slices.Contains(p.ISR, r) {
					missing[r]++
				}
			}
		}
		worst, n := int32(-1), 0
		for b, c := range missing {
			if c > n || (c == n && b < worst) {
				worst, n = b, c
			}
		}
		f = append(f, fmt.Sprintf("%s under-replicated; broker %d is missing from %s though it is up (slow or stuck follower?)",
			Plural(len(s.UnderReplicated), "partition", "partitions"), worst, Plural(n, "ISR", "ISRs")))
	}
	if len(s.Groups) > 0 {
		g := s.Groups[0]
		if g.Lag > 0 || g.Error != "" {
			line := fmt.Sprintf("consumer group %s lags %d records (state %s, %d members)", g.Group, g.Lag, g.State, g.Members)
			if g.Error != "" {
				line += ": " + g.Error
			}
			f = append(f, line)
		}
	}
	if s.Cluster == nil {
		f = append(f, "cluster state unknown: "+firstOr(s.Errors, "no broker admin interface configured"))
	}
	s.Findings = f
	if len(f) == 0 {
		s.Diagnosis = "no cluster-level fault found: brokers up, all partitions fully replicated; look at the alert's expression and its service"
		return
	}
	s.Diagnosis = f[0]
}

func anyBrokerDown(s *Snapshot) bool {
	for _, b := range s.Cluster.Brokers {
		if b.Fenced || !b.Reachable {
			return true
		}
	}
	return false
}

func lastEvent(evs []Event, typ adminapi.EventType, broker int32) (time.Time, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == typ && evs[i].Broker == broker {
			return evs[i].Time, true
		}
	}
	return time.Time{}, false
}

func partitionList(ps []PartitionState) string {
	var names []string
	for _, p := range ps {
		names = append(names, fmt.Sprintf("%s-%d", p.Topic, p.Partition))
	}
	sort.Strings(names)
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

func firstOr(ss []string, def string) string {
	if len(ss) > 0 {
		return ss[0]
	}
	return def
}
