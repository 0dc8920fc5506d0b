package dashboards

// topicDetail shows topics: their traffic from the brokers, and their
// partitions, offsets and replication from the exporter.
func topicDetail() *Dashboard {
	d := newDashboard("sluice-topic", "Sluice / Topic",
		"Topics: bytes and records in and out (brokers), partitions, offsets, replicas and ISR, LSO lag of transactions (exporter), log size (brokers).")
	d.vars(queryVar("topic", "Topic", `label_values(sluice_log_size_bytes{cluster=~"$cluster"}, topic)`, true))
	d.layout(
		row("Summary"),
		stat("Partitions", "none").
			instant("", `sum(kafka_topic_partitions{T})`).thresholds(steps("blue")),
		stat("Under-replicated", "none").
			desc("Partitions whose ISR is smaller than their replica set, as the exporter sees them.").
			instant("", `sum(kafka_topic_partition_under_replicated_partition{T})`).thresholds(steps("green", 1, "red")),
		stat("Not on preferred leader", "none").
			desc("Partitions led by a broker other than their first replica; load is uneven until they move back.").
			instant("", `count(kafka_topic_partition_leader_is_preferred{T} == 0) or vector(0)`).thresholds(steps("green", 1, "orange")),
		stat("Records retained", "short").
			desc("Current offset minus oldest offset, over the partitions chosen.").
			instant("", `sum(kafka_topic_partition_current_offset{T} - kafka_topic_partition_oldest_offset{T})`).thresholds(steps("blue")),
		stat("Log size (all replicas)", "bytes").
			instant("", `sum(sluice_log_size_bytes{T})`).thresholds(steps("blue")),
		stat("Bytes in", "Bps").
			instant("", `sum(rate(sluice_topic_bytes_in_total{T}[$__rate_interval]))`).thresholds(steps("blue")),

		row("Throughput"),
		timeseries("Bytes in by topic", "Bps").
			q("{{topic}}", `sum by (topic) (rate(sluice_topic_bytes_in_total{T}[$__rate_interval]))`),
		timeseries("Bytes out by topic", "Bps").
			desc("Bytes sent to consumers; replication to followers is not counted.").
			q("{{topic}}", `sum by (topic) (rate(sluice_topic_bytes_out_total{T}[$__rate_interval]))`),
		timeseries("Records in by topic", "rps").
			q("{{topic}}", `sum by (topic) (rate(sluice_topic_records_in_total{T}[$__rate_interval]))`),
		timeseries("Records out by topic", "rps").
			q("{{topic}}", `sum by (topic) (rate(sluice_topic_records_out_total{T}[$__rate_interval]))`),
		timeseries("Offset growth by partition", "rps").
			desc("Records appended per second from the exporter's end offsets, per partition: a skewed key shows here.").
			q("{{topic}}/{{partition}}", `sum by (topic, partition) (rate(kafka_topic_partition_current_offset{T}[$__rate_interval]))`),
		timeseries("Bytes in by broker", "Bps").
			q("{{instance}}", `sum by (instance) (rate(sluice_topic_bytes_in_total{T}[$__rate_interval]))`),

		row("Partitions"),
		table("Partitions", "none").
			desc("Per partition: leader broker id, replicas, in-sync replicas, whether the leader is the preferred one, under-replicated, oldest and current offset (exporter).").
			instant("leader", `max by (topic, partition) (kafka_topic_partition_leader{T})`).
			instant("replicas", `max by (topic, partition) (kafka_topic_partition_replicas{T})`).
			instant("in sync", `max by (topic, partition) (kafka_topic_partition_in_sync_replica{T})`).
			instant("preferred leader", `max by (topic, partition) (kafka_topic_partition_leader_is_preferred{T})`).
			instant("under-replicated", `max by (topic, partition) (kafka_topic_partition_under_replicated_partition{T})`).
			instant("oldest offset", `max by (topic, partition) (kafka_topic_partition_oldest_offset{T})`).
			instant("current offset", `max by (topic, partition) (kafka_topic_partition_current_offset{T})`).
			size(24, 10),
		timeseries("In-sync replicas by partition", "short").
			q("{{topic}}/{{partition}}", `kafka_topic_partition_in_sync_replica{T}`),
		timeseries("Leader by partition", "none").
			desc("Broker id of each partition's leader; a step is a leader change.").
			q("{{topic}}/{{partition}}", `kafka_topic_partition_leader{T}`),
		timeseries("Replica end offset spread", "short").
			desc("Largest minus smallest log end offset among a partition's replicas on the brokers: how far the slowest follower is behind.").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (sluice_log_end_offset{T}) - min by (topic, partition) (sluice_log_end_offset{T})`),
		timeseries("High watermark by partition", "short").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (sluice_log_high_watermark{T} and on (instance, topic, partition) sluice_partition_leader{T} == 1)`),

		row("Transactions"),
		stat("Max LSO lag", "short").
			desc("Largest number of records between a partition's last stable offset and its high watermark: what read_committed consumers cannot read yet because a transaction is open (exporter, ListOffsets read_committed vs read_uncommitted).").
			instant("", `max(kafka_topic_partition_lso_lag{T}) or vector(0)`).thresholds(steps("green", 1, "orange")),
		timeseries("LSO lag by partition", "short").
			desc("Records above the last stable offset, per partition. Busy transactional topics always show some; an LSO lag that only grows while the LSO stands still is a hanging transaction (alert SluiceLastStableOffsetStuck).").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (kafka_topic_partition_lso_lag{T})`),
		timeseries("Last stable offset by partition", "short").
			desc("High watermark minus LSO lag: a flat line under a rising high watermark is a transaction that does not end.").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (kafka_topic_partition_current_offset{T} - kafka_topic_partition_lso_lag{T})`),
		timeseries("LSO lag on the leader (brokers)", "short").
			desc("The same lag as each partition's leader reports it (sluice_partition_lso_lag), without the exporter.").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (sluice_partition_lso_lag{T} and on (instance, topic, partition) sluice_partition_leader{T} == 1)`),

		row("Storage"),
		timeseries("Log size by topic", "bytes").
			desc("Bytes over all replicas.").
			q("{{topic}}", `sum by (topic) (sluice_log_size_bytes{T})`),
		timeseries("Log size by broker", "bytes").
			q("{{instance}}", `sum by (instance) (sluice_log_size_bytes{T})`),
		timeseries("Log segments by topic", "short").
			q("{{topic}}", `sum by (topic) (sluice_log_segments{T})`),
		timeseries("Log start offset by partition", "short").
			desc("Rises when retention or DeleteRecords removes old records.").
			q("{{topic}}/{{partition}}", `max by (topic, partition) (sluice_log_start_offset{T})`),
	)
	return d
}
