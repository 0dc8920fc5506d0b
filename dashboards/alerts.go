package dashboards

// alerts shows what is wrong now and what was wrong in the time range, from
// the ALERTS and ALERTS_FOR_STATE series Prometheus (or Sluice's in-process
// rule evaluation, which writes the same series) records for alerting
// rules, next to the signals the standard Kafka alert rules watch.
//
// The alerting and tickets services will export their own metrics
// (notifications, incidents, tickets, SLA); their panels belong here once
// those metrics exist, and the dashboards test keeps every panel to metrics
// something really exports.
func alerts() *Dashboard {
	d := newDashboard("sluice-alerts", "Sluice / Alerts and incidents",
		"Alerts firing and pending now, alert history in the time range, and the signals behind the standard Kafka alert rules. Alerts are matched on the cluster label when they carry one; alerts without it are shown for every cluster.")
	d.vars(queryVar("severity", "Severity", `label_values(ALERTS{cluster=~"$cluster|"}, severity)`, true))
	firing := `{A, alertstate="firing", severity=~"$severity"}`
	d.layout(
		row("Now"),
		stat("Firing", "none").
			instant("", `count(ALERTS`+firing+`) or vector(0)`).thresholds(steps("green", 1, "red")),
		stat("Pending", "none").
			desc("Alerts whose condition holds but not yet for the rule's 'for' duration.").
			instant("", `count(ALERTS{A, alertstate="pending", severity=~"$severity"}) or vector(0)`).thresholds(steps("green", 1, "orange")),
		stat("Critical firing", "none").
			instant("", `count(ALERTS{A, alertstate="firing", severity="critical"}) or vector(0)`).thresholds(steps("green", 1, "red")),
		stat("Warnings firing", "none").
			instant("", `count(ALERTS{A, alertstate="firing", severity="warning"}) or vector(0)`).thresholds(steps("green", 1, "orange")),
		stat("Fired in time range", "none").
			desc("Distinct alerts (alert name and labels) that were firing at some point in the dashboard's time range.").
			instant("", `count(max_over_time(ALERTS`+firing+`[$__range])) or vector(0)`).thresholds(steps("green", 1, "orange")),
		stat("Longest active", "s").
			desc("How long the oldest active (pending or firing) alert has been active.").
			instant("", `max(time() - ALERTS_FOR_STATE{A, severity=~"$severity"})`).thresholds(steps("green", 3600, "orange", 86400, "red")),

		table("Firing alerts", "none").
			desc("Every firing alert with all its labels.").
			instant("", `ALERTS`+firing).size(24, 8),
		table("Active for", "s").
			desc("Seconds since each active alert became active (pending or firing), from ALERTS_FOR_STATE.").
			instant("active for", `sort_desc(time() - ALERTS_FOR_STATE{A, severity=~"$severity"})`).size(12, 8),
		table("Pending alerts", "none").
			instant("", `ALERTS{A, alertstate="pending", severity=~"$severity"}`).size(12, 8),

		row("History"),
		timeseries("Firing alerts by name", "short").
			q("{{alertname}}", `count by (alertname) (ALERTS`+firing+`)`),
		timeseries("Firing alerts by severity", "short").
			q("{{severity}}", `count by (severity) (ALERTS`+firing+`)`).stacked(),
		table("Minutes firing in time range", "m").
			desc("For each alert name and severity, the minutes any of its alerts fired in the dashboard's time range, at one-minute resolution.").
			instant("minutes firing", `sort_desc(sum by (alertname, severity) (count_over_time(ALERTS`+firing+`[$__range:1m])))`).size(24, 8),

		row("Signals behind the standard alert rules"),
		stat("Targets down", "none").
			desc("Scrape targets (brokers, exporter) Prometheus cannot reach; their metrics are missing, not zero.").
			instant("", `count(up{C} == 0) or vector(0)`).thresholds(steps("green", 1, "red")),
		stat("Active controllers", "none").
			desc("Must be exactly 1.").
			instant("", `sum(sluice_active_controller{C})`).thresholds(steps("red", 1, "green", 2, "red")),
		stat("Under-replicated partitions", "none").
			instant("", `sum(sluice_under_replicated_partitions{C})`).thresholds(steps("green", 1, "red")),
		stat("Under min ISR", "none").
			instant("", `sum(sluice_under_min_isr_partitions{C})`).thresholds(steps("green", 1, "red")),
		stat("Offline partitions", "none").
			instant("", `sum(sluice_offline_partitions{C})`).thresholds(steps("green", 1, "red")),
		stat("Min log dir free", "percentunit").
			instant("", `min(sluice_log_dir_free_bytes{C} / sluice_log_dir_total_bytes{C})`).
			thresholds(steps("red", 0.15, "orange", 0.25, "green")).min(0).max(1),
		stat("Min handler idle", "percentunit").
			instant("", `min(sluice_request_handler_idle_ratio{C})`).
			thresholds(steps("red", 0.2, "orange", 0.3, "green")).min(0).max(1),
		stat("Max group lag", "short").
			instant("", `max(kafka_consumergroup_lag_sum{C})`).thresholds(steps("green", 1000, "orange", 100000, "red")),
		stat("Max lag in seconds", "s").
			instant("", `max(sluice_consumergroup_lag_seconds{C})`).thresholds(steps("green", 60, "orange", 600, "red")),
		stat("Groups not OK", "none").
			instant("", `count(sluice_consumergroup_worst_status{C, status!="OK"} == 1) or vector(0)`).thresholds(steps("green", 1, "red")),
		stat("Topics without new records (10m)", "none").
			desc("Topics whose end offsets did not move in 10 minutes, like Strimzi's NoMessageForTooLong; expected for idle topics.").
			instant("", `count(sum by (topic) (changes(kafka_topic_partition_current_offset{C}[10m])) == 0) or vector(0)`).thresholds(steps("green", 1, "orange")),
		stat("Exporter data age", "s").
			instant("", `max(sluice_exporter_collection_age_seconds{C})`).thresholds(steps("green", 60, "orange", 180, "red")),
	)
	return d
}
