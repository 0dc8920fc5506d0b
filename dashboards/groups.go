package dashboards

// consumerGroups shows consumer groups as the exporter sees them: lag in
// records and in seconds, the Burrow-style status, members, partitions
// without a commit, and whether the exporter's data is fresh.
func consumerGroups() *Dashboard {
	d := newDashboard("sluice-consumer-groups", "Sluice / Consumer groups",
		"Consumer group lag (records and seconds), Burrow-style status per group and partition, members and partitions without a commit, from the sluice exporter. Lag is never negative, and a partition without a commit has no lag series (see sluice_consumergroup_partition_committed) instead of -1.")
	d.vars(
		queryVar("consumergroup", "Group", `label_values(kafka_consumergroup_members{cluster=~"$cluster"}, consumergroup)`, true),
		queryVar("topic", "Topic", `label_values(sluice_consumergroup_uncommitted_partitions{cluster=~"$cluster", consumergroup=~"$consumergroup"}, topic)`, true),
	)
	group := `{C, consumergroup=~"$consumergroup"}`
	d.layout(
		row("Summary"),
		stat("Groups", "none").
			instant("", `count(kafka_consumergroup_members`+group+`) or vector(0)`).thresholds(steps("blue")),
		stat("Total lag", "short").
			desc("Records not yet consumed, over the groups and topics chosen.").
			instant("", `sum(kafka_consumergroup_lag_sum{G})`).thresholds(steps("green", 1000, "orange", 100000, "red")),
		stat("Max lag in seconds", "s").
			desc("Age of the oldest record not yet consumed, over all partitions chosen.").
			instant("", `max(sluice_consumergroup_lag_seconds{G})`).thresholds(steps("green", 60, "orange", 600, "red")),
		stat("Groups not OK", "none").
			desc("Groups whose worst partition status is WARN, ERR, STOP, STALL or REWIND.").
			instant("", `count(sluice_consumergroup_worst_status{C, consumergroup=~"$consumergroup", status!="OK"} == 1) or vector(0)`).
			thresholds(steps("green", 1, "red")),
		stat("Uncommitted partitions", "none").
			desc("Partitions of consumed topics that have no committed offset; their lag is unknown, not zero.").
			instant("", `sum(sluice_consumergroup_uncommitted_partitions{G})`).thresholds(steps("green", 1, "orange")),
		stat("Exporter data age", "s").
			desc("Seconds since the exporter's last completed collection; when this grows, the numbers on this dashboard are stale.").
			instant("", `max(sluice_exporter_collection_age_seconds{C})`).thresholds(steps("green", 60, "orange", 180, "red")),

		row("Lag"),
		timeseries("Lag by group and topic", "short").
			q("{{consumergroup}} {{topic}}", `sum by (consumergroup, topic) (kafka_consumergroup_lag_sum{G})`),
		timeseries("Lag in seconds by group and topic", "s").
			desc("Age of the oldest unconsumed record, the worst partition of each group and topic; estimated from record timestamps.").
			q("{{consumergroup}} {{topic}}", `max by (consumergroup, topic) (sluice_consumergroup_lag_seconds{G})`),
		timeseries("Lag by partition", "short").
			q("{{consumergroup}} {{topic}}/{{partition}}", `kafka_consumergroup_lag{G}`),
		timeseries("Lag in seconds by partition", "s").
			q("{{consumergroup}} {{topic}}/{{partition}}", `sluice_consumergroup_lag_seconds{G}`),
		timeseries("Consume rate", "rps").
			desc("Committed offsets advancing per second.").
			q("{{consumergroup}} {{topic}}", `sum by (consumergroup, topic) (rate(kafka_consumergroup_current_offset_sum{G}[$__rate_interval]))`),
		timeseries("Produce rate of the consumed topics", "rps").
			q("{{topic}}", `sum by (topic) (rate(kafka_topic_partition_current_offset{T}[$__rate_interval]))`),

		row("Status"),
		table("Group status", "none").
			desc("Worst Burrow-style status over each group's partitions.").
			instant("", `max by (consumergroup, status) (sluice_consumergroup_worst_status`+group+` == 1)`).
			colorText().statusColors().
			size(12, 8),
		timeseries("Partitions by status", "short").
			desc("Group partitions in each status; OK is a consumer keeping up, STOP and STALL are consumers that stopped committing, ERR a lag that keeps growing.").
			q("{{status}}", `count by (status) (sluice_consumergroup_status{G} == 1)`).stacked(),
		table("Partition status", "none").
			desc("Status of every group partition that is not OK.").
			instant("", `max by (consumergroup, topic, partition, status) (sluice_consumergroup_status{G, status!="OK"} == 1)`).
			colorText().statusColors(),
		table("Partition lag", "none").
			desc("Committed offset, lag in records and lag in seconds of every group partition with a commit.").
			instant("committed offset", `max by (consumergroup, topic, partition) (kafka_consumergroup_current_offset{G})`).
			instant("lag", `max by (consumergroup, topic, partition) (kafka_consumergroup_lag{G})`).
			instant("lag seconds", `max by (consumergroup, topic, partition) (sluice_consumergroup_lag_seconds{G})`),

		row("Members and commits"),
		timeseries("Members", "short").
			q("{{consumergroup}}", `kafka_consumergroup_members`+group),
		timeseries("Uncommitted partitions", "short").
			desc("Partitions of consumed topics without a committed offset, by group and topic.").
			q("{{consumergroup}} {{topic}}", `sluice_consumergroup_uncommitted_partitions{G} > 0`),
		table("Partitions without a commit", "none").
			instant("", `max by (consumergroup, topic, partition) (sluice_consumergroup_partition_committed{G} == 0)`).
			size(12, 8),
		timeseries("Committed offset by group and topic", "short").
			q("{{consumergroup}} {{topic}}", `kafka_consumergroup_current_offset_sum{G}`),

		row("Exporter"),
		timeseries("Collection age", "s").
			q("{{instance}}", `sluice_exporter_collection_age_seconds{C}`),
		timeseries("Collection duration", "s").
			q("{{instance}}", `sluice_exporter_collection_duration_seconds{C}`),
		timeseries("Collection errors by stage", "short").
			q("{{instance}} {{stage}}", `sum by (instance, stage) (rate(sluice_exporter_collection_errors_total{C}[$__rate_interval])) > 0`),
		timeseries("Collections and clamped lag", "short").
			desc("Collections per second, and group partitions per second whose commit was past the log end (reported as lag 0).").
			q("{{instance}} collections", `rate(sluice_exporter_collections_total{C}[$__rate_interval])`).
			q("{{instance}} clamped", `rate(sluice_exporter_lag_clamped_total{C}[$__rate_interval])`).
			q("{{instance}} up", `sluice_exporter_up{C}`),
	)
	return d
}
