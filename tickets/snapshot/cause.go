package snapshot

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Cause is a diagnosed cause that alarms can share: the same broker down or
// fenced, the same log directory filling up, the same controller problem.
// Alarms whose causes have the same Key in the same cluster join one
// incident, titled and rated from the cause.
type Cause struct {
	// Key identifies the cause within a cluster: the Kafka cluster id (so a
	// cluster whose state directory was cleared never shares a cause with its
	// predecessor) and what failed, e.g. "Xy3.../broker/2".
	Key string `json:"key"`
	// Kind is broker_down, broker_fenced, disk or controller.
	Kind string `json:"kind"`
	// ClusterID is the Kafka cluster id the cause was seen in, if known.
	ClusterID string `json:"cluster_id,omitempty"`
	// Broker is the node id of the failed broker, or -1.
	Broker int32 `json:"broker"`
	// Address is the failed broker's Kafka address, if known.
	Address string `json:"address,omitempty"`
	// Title is the incident title, e.g. "Broker 2 (127.0.0.1:9093) down:
	// 57 partitions under-replicated, 2 offline".
	Title string `json:"title"`
	// Severity is the incident severity the cause deserves.
	Severity string `json:"severity"`
	// Impact orders two diagnoses of one cause: the number of partitions
	// affected. An incident keeps the title of its worst diagnosis.
	Impact int `json:"impact"`
}

// Plural is "1 partition" or "2 partitions".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// diskAlerts are the rule pack's alerts about one log directory: their cause
// is that directory, whatever else the cluster shows.
var diskAlerts = map[string]bool{"SluiceDiskUsageHigh": true, "SluiceDiskWillFillIn6Hours": true}

// consumerAlerts are about one consumer group: a broker fault elsewhere is not
// their diagnosed cause, so they keep the ordinary grouping.
var consumerAlerts = map[string]bool{"SluiceConsumerGroupStatus": true, "SluiceConsumerGroupLagSeconds": true}

// CauseOf diagnoses the cause of one alarm (its labels) given the cluster's
// state s, taken when the alarm arrived (nil if it could not be observed). It
// returns nil when no cause is found: the alarm is grouped as Alertmanager
// grouped it.
//
// In order: a disk alarm's cause is its log directory; SluiceBrokerDown's is
// its broker (from its broker and kafka_address labels); any other alarm of
// the cluster is caused by the lowest-numbered broker the snapshot shows
// fenced or unreachable; SluiceActiveControllerCount is otherwise a
// controller problem.
func CauseOf(labels map[string]string, s *Snapshot) *Cause {
	name := labels["alertname"]
	clusterID := ""
	if s != nil && s.Cluster != nil {
		clusterID = s.Cluster.ID
	}
	if diskAlerts[name] {
		where := firstNonEmpty(labels["broker"], labels["instance"])
		dir := labels["dir"]
		return &Cause{Key: clusterID + "/disk/" + where + "/" + dir, Kind: "disk", ClusterID: clusterID, Broker: brokerID(labels["broker"]),
			Address: labels["kafka_address"], Title: diskTitle(labels), Severity: firstNonEmpty(labels["severity"], "warning")}
	}
	if consumerAlerts[name] {
		return nil
	}
	if name == "SluiceBrokerDown" {
		if id := brokerID(labels["broker"]); id >= 0 {
			return brokerCause(s, id, false, labels["kafka_address"])
		}
	}
	if s != nil && s.Cluster != nil {
		for _, b := range s.Cluster.Brokers {
			if b.Fenced || !b.Reachable {
				return brokerCause(s, b.ID, b.Fenced && b.Reachable, "")
			}
		}
	}
	// A cluster seen without a controller for a moment is an election in
	// progress; only the alert (a minute without exactly one) is the cause.
	if name == "SluiceActiveControllerCount" {
		return controllerCause(s)
	}
	return nil
}

func brokerCause(s *Snapshot, id int32, fenced bool, address string) *Cause {
	clusterID := ""
	urp, offline := 0, 0
	if s != nil {
		urp, offline = len(s.UnderReplicated), len(s.Offline)
		if s.Cluster != nil {
			clusterID = s.Cluster.ID
			for _, b := range s.Cluster.Brokers {
				if b.ID == id {
					if address == "" {
						address = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
					}
					fenced = fenced || (b.Fenced && b.Reachable)
				}
			}
		}
	}
	what, kind := "down", "broker_down"
	if fenced {
		what, kind = "fenced by the controller", "broker_fenced"
	}
	title := fmt.Sprintf("Broker %d", id)
	if address != "" {
		title += " (" + address + ")"
	}
	title += " " + what
	var parts []string
	if urp > 0 {
		parts = append(parts, Plural(urp, "partition", "partitions")+" under-replicated")
	}
	if offline > 0 {
		parts = append(parts, fmt.Sprintf("%d offline", offline))
	}
	if len(parts) > 0 {
		title += ": " + parts[0]
		if len(parts) > 1 {
			title += ", " + parts[1]
		}
	}
	// Down and fenced are one cause: a stopped broker is first unreachable,
	// then fenced when its session expires.
	return &Cause{Key: fmt.Sprintf("%s/broker/%d", clusterID, id), Kind: kind, ClusterID: clusterID, Broker: id, Address: address,
		Title: title, Severity: "critical", Impact: urp + offline}
}

func controllerCause(s *Snapshot) *Cause {
	clusterID := ""
	title := "No active controller: the metadata quorum has no leader"
	if s != nil && s.Cluster != nil {
		clusterID = s.Cluster.ID
		if s.Cluster.ControllerID >= 0 {
			title = fmt.Sprintf("Controller problem: the active controller count is not 1 (broker %d reports itself controller)", s.Cluster.ControllerID)
		}
	}
	return &Cause{Key: clusterID + "/controller", Kind: "controller", ClusterID: clusterID, Broker: -1, Title: title, Severity: "critical"}
}

func diskTitle(labels map[string]string) string {
	who := labels["instance"]
	if b := labels["broker"]; b != "" {
		who = "broker " + b
		if a := labels["kafka_address"]; a != "" {
			who += " (" + a + ")"
		}
	}
	if labels["alertname"] == "SluiceDiskWillFillIn6Hours" {
		return fmt.Sprintf("Log dir %s on %s will be full within 6 hours", labels["dir"], who)
	}
	return fmt.Sprintf("Log dir %s on %s is filling up", labels["dir"], who)
}

func brokerID(s string) int32 {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return -1
	}
	return int32(n)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// ClusterState observes only the cluster's brokers and partitions (the admin
// API and a TCP dial of every broker), fast enough to run while an alarm is
// taken in, so its cause is diagnosed from the state when the alarm fired. It
// never fails: errors are in Snapshot.Errors and Cluster is nil.
func (c *Capturer) ClusterState(ctx context.Context, now time.Time) *Snapshot {
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.Timeout, 5*time.Second))
	defer cancel()
	s := &Snapshot{CapturedAt: now.UTC(), UnderReplicated: []PartitionState{}, Offline: []PartitionState{}, Affected: []PartitionState{}}
	var mu sync.Mutex
	if err := c.adminState(ctx, s, now, &mu); err != nil {
		s.Errors = append(s.Errors, "cluster admin API: "+err.Error())
	}
	return s
}
