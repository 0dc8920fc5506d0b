package exporter

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// snapshot is everything one completed collection learned, laid out for a
// scrape: label values are strings already and slices are in output order. A
// snapshot is never changed after it is published.
type snapshot struct {
	at      time.Time
	brokers []brokerSnap
	topics  []topicSnap
	groups  []groupSnap
}

type brokerSnap struct{ id, address string }

type topicSnap struct {
	name       string
	partitions []partitionSnap
}

type partitionSnap struct {
	id                 string // the partition label
	leader             int32
	replicas, isr      int
	preferred          bool
	oldest, current    int64
	hasOldest, hasCurr bool
	lsoLag             int64 // high watermark - last stable offset
	hasLSOLag          bool
}

type groupSnap struct {
	name    string
	members int
	worst   Status
	topics  []groupTopicSnap
}

type groupTopicSnap struct {
	topic             string
	offsetSum, lagSum int64
	committedCount    int
	uncommitted       int
	partitions        []groupPartitionSnap
}

type groupPartitionSnap struct {
	id            string
	committed     bool
	offset        int64
	lag           int64
	hasLag        bool
	lagSeconds    float64
	hasLagSeconds bool
	status        Status
}

// Descriptions of the cluster metrics. Names, labels and help texts of the
// kafka_* ones are those of danielqsj/kafka_exporter, so its dashboards and
// alert rules work unchanged.
var (
	descBrokers    = prometheus.NewDesc("kafka_brokers", "Number of Brokers in the Kafka Cluster.", nil, nil)
	descBrokerInfo = prometheus.NewDesc("kafka_broker_info", "Information about the Kafka Broker.", []string{"address", "id"}, nil)

	topicLabels          = []string{"topic", "partition"}
	descTopicPartitions  = prometheus.NewDesc("kafka_topic_partitions", "Number of partitions for this Topic", []string{"topic"}, nil)
	descCurrentOffset    = prometheus.NewDesc("kafka_topic_partition_current_offset", "Current Offset of a Broker at Topic/Partition", topicLabels, nil)
	descOldestOffset     = prometheus.NewDesc("kafka_topic_partition_oldest_offset", "Oldest Offset of a Broker at Topic/Partition", topicLabels, nil)
	descInSyncReplicas   = prometheus.NewDesc("kafka_topic_partition_in_sync_replica", "Number of In-Sync Replicas for this Topic/Partition", topicLabels, nil)
	descLeader           = prometheus.NewDesc("kafka_topic_partition_leader", "Leader Broker ID of this Topic/Partition", topicLabels, nil)
	descLeaderPreferred  = prometheus.NewDesc("kafka_topic_partition_leader_is_preferred", "1 if Topic/Partition is using the Preferred Broker", topicLabels, nil)
	descReplicas         = prometheus.NewDesc("kafka_topic_partition_replicas", "Number of Replicas for this Topic/Partition", topicLabels, nil)
	descUnderReplicated  = prometheus.NewDesc("kafka_topic_partition_under_replicated_partition", "1 if Topic/Partition is under Replicated", topicLabels, nil)
	groupPartitionLabels = []string{"consumergroup", "topic", "partition"}
	groupTopicLabels     = []string{"consumergroup", "topic"}
	descGroupOffset      = prometheus.NewDesc("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition", groupPartitionLabels, nil)
	descGroupOffsetSum   = prometheus.NewDesc("kafka_consumergroup_current_offset_sum", "Current Offset of a ConsumerGroup at Topic for all partitions", groupTopicLabels, nil)
	descGroupLag         = prometheus.NewDesc("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition", groupPartitionLabels, nil)
	descGroupLagSum      = prometheus.NewDesc("kafka_consumergroup_lag_sum", "Current Approximate Lag of a ConsumerGroup at Topic for all partitions", groupTopicLabels, nil)
	descGroupMembers     = prometheus.NewDesc("kafka_consumergroup_members", "Amount of members in a consumer group", []string{"consumergroup"}, nil)

	descLSOLag = prometheus.NewDesc("kafka_topic_partition_lso_lag",
		"Records between the last stable offset and the high watermark of this Topic/Partition (ListOffsets read_committed vs read_uncommitted): what read_committed consumers cannot read yet because a transaction is open. Not in kafka_exporter.",
		topicLabels, nil)

	descCommitted = prometheus.NewDesc("sluice_consumergroup_partition_committed",
		"1 if the consumer group has a committed offset for this partition of a topic it consumes, 0 if not (kafka_consumergroup_current_offset and _lag are then absent, never -1).",
		groupPartitionLabels, nil)
	descUncommitted = prometheus.NewDesc("sluice_consumergroup_uncommitted_partitions",
		"Number of partitions of a topic the consumer group consumes that have no committed offset.", groupTopicLabels, nil)
	descLagSeconds = prometheus.NewDesc("sluice_consumergroup_lag_seconds",
		"Age in seconds of the first record the consumer group has not consumed (the record at the committed offset), at the time of the collection; 0 when caught up.",
		groupPartitionLabels, nil)
	descStatus = prometheus.NewDesc("sluice_consumergroup_status",
		"Burrow-style status of a consumer group partition over the last status window of collections, one-hot over OK, WARN, ERR, STOP, STALL, REWIND.",
		[]string{"consumergroup", "topic", "partition", "status"}, nil)
	descWorstStatus = prometheus.NewDesc("sluice_consumergroup_worst_status",
		"Worst Burrow-style status over the consumer group's partitions, one-hot over OK, WARN, ERR, STOP, STALL, REWIND.",
		[]string{"consumergroup", "status"}, nil)
)

// snapshotCollector emits the last published snapshot as const metrics, so a
// scrape costs only the encoding and never waits on the cluster.
type snapshotCollector struct {
	load func() *snapshot
}

// Describe sends every description the collector may emit.
func (c snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBrokers, descBrokerInfo, descTopicPartitions, descCurrentOffset,
		descOldestOffset, descInSyncReplicas, descLeader, descLeaderPreferred, descReplicas, descUnderReplicated, descLSOLag,
		descGroupOffset, descGroupOffsetSum, descGroupLag, descGroupLagSum, descGroupMembers,
		descCommitted, descUncommitted, descLagSeconds, descStatus, descWorstStatus} {
		ch <- d
	}
}

// Collect sends the metrics of the last snapshot; before the first completed
// collection it sends nothing.
func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.load()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descBrokers, float64(len(s.brokers)))
	for _, b := range s.brokers {
		gauge(descBrokerInfo, 1, b.address, b.id)
	}
	for i := range s.topics {
		t := &s.topics[i]
		gauge(descTopicPartitions, float64(len(t.partitions)), t.name)
		for j := range t.partitions {
			p := &t.partitions[j]
			if p.hasCurr {
				gauge(descCurrentOffset, float64(p.current), t.name, p.id)
			}
			if p.hasOldest {
				gauge(descOldestOffset, float64(p.oldest), t.name, p.id)
			}
			if p.hasLSOLag {
				gauge(descLSOLag, float64(p.lsoLag), t.name, p.id)
			}
			gauge(descInSyncReplicas, float64(p.isr), t.name, p.id)
			gauge(descLeader, float64(p.leader), t.name, p.id)
			gauge(descLeaderPreferred, bool01(p.preferred), t.name, p.id)
			gauge(descReplicas, float64(p.replicas), t.name, p.id)
			gauge(descUnderReplicated, bool01(p.isr < p.replicas), t.name, p.id)
		}
	}
	for i := range s.groups {
		g := &s.groups[i]
		gauge(descGroupMembers, float64(g.members), g.name)
		hasCommits := false
		for j := range g.topics {
			gt := &g.topics[j]
			if gt.committedCount > 0 {
				hasCommits = true
				gauge(descGroupOffsetSum, float64(gt.offsetSum), g.name, gt.topic)
				gauge(descGroupLagSum, float64(gt.lagSum), g.name, gt.topic)
			}
			gauge(descUncommitted, float64(gt.uncommitted), g.name, gt.topic)
			for k := range gt.partitions {
				p := &gt.partitions[k]
				gauge(descCommitted, bool01(p.committed), g.name, gt.topic, p.id)
				if !p.committed {
					continue
				}
				gauge(descGroupOffset, float64(p.offset), g.name, gt.topic, p.id)
				if p.hasLag {
					gauge(descGroupLag, float64(p.lag), g.name, gt.topic, p.id)
				}
				if p.hasLagSeconds {
					gauge(descLagSeconds, p.lagSeconds, g.name, gt.topic, p.id)
				}
				for _, st := range statuses {
					gauge(descStatus, bool01(p.status == st), g.name, gt.topic, p.id, st.String())
				}
			}
		}
		if hasCommits {
			for _, st := range statuses {
				gauge(descWorstStatus, bool01(g.worst == st), g.name, st.String())
			}
		}
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }
