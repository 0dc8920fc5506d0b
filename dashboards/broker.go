package dashboards

// brokerDetail shows one broker (or a few) in depth: what it is asked, where
// the time of a request goes, its disks, its clients, its part in the Raft
// metadata quorum, and the process.
func brokerDetail() *Dashboard {
	d := newDashboard("sluice-broker", "Sluice / Broker",
		"One broker in depth: requests, latency split like Kafka's RequestMetrics (queue, local, remote, response send), fsync, log dirs, clients, Raft and purgatory, transactions coordinated.")
	d.vars(
		queryVar("instance", "Broker", `label_values(sluice_broker_ready{cluster=~"$cluster"}, instance)`, true),
		queryVar("api", "API", `label_values(sluice_requests_total{cluster=~"$cluster", instance=~"$instance"}, api)`, true),
	)
	d.layout(
		row("Status"),
		stat("Ready", "none").
			desc("1 once the broker is registered and unfenced.").
			instant("{{instance}}", `sluice_broker_ready{B}`).
			mapText("0", "not ready:red", "1", "ready:green"),
		stat("Raft state", "none").
			desc("State of the broker in the Raft metadata quorum; the Raft leader is the active controller.").
			instant("{{instance}} {{state}}", `sluice_raft_state{B} == 1`).showName().thresholds(steps("blue")),
		stat("Active controller", "none").
			instant("{{instance}}", `sluice_active_controller{B}`).
			mapText("0", "no:text", "1", "yes:blue"),
		stat("Leader partitions", "none").
			instant("{{instance}}", `sluice_leader_partitions{B}`).thresholds(steps("blue")),
		stat("Under-replicated", "none").
			desc("Partitions this broker leads whose ISR is smaller than their replica set.").
			instant("{{instance}}", `sluice_under_replicated_partitions{B}`).thresholds(steps("green", 1, "red")),
		stat("Uptime", "s").
			instant("{{instance}}", `time() - process_start_time_seconds{B}`).thresholds(steps("blue")),

		row("Requests"),
		timeseries("Requests by API", "reqps").
			q("{{instance}} {{api}}", `sum by (instance, api) (rate(sluice_requests_total{B, api=~"$api"}[$__rate_interval]))`),
		timeseries("Requests by API version", "reqps").
			desc("Old versions here are old clients; they keep working, but are worth knowing about before an upgrade.").
			q("{{api}} v{{version}}", `sum by (api, version) (rate(sluice_requests_total{B, api=~"$api"}[$__rate_interval]))`),
		timeseries("Errors by API and error", "short").
			q("{{instance}} {{api}} {{error}}", `sum by (instance, api, error) (rate(sluice_request_errors_total{B, api=~"$api"}[$__rate_interval]))`),
		timeseries("Request handler idle", "percentunit").
			q("{{instance}}", `sluice_request_handler_idle_ratio{B}`).min(0).max(1).
			thresholds(steps("red", 0.3, "green")),

		row("Latency"),
		timeseries("Total time p99", "s").
			desc("From a request being read to its response being written.").
			q("{{instance}} {{api}}", `histogram_quantile(0.99, sum by (instance, api, le) (rate(sluice_request_total_seconds_bucket{B, api=~"$api"}[$__rate_interval])))`),
		timeseries("Mean time by stage", "s").
			desc("Where a request's time goes on average, over the APIs chosen: waiting for a handler, in the handler, waiting for replicas or data, sending the response.").
			q("queue", `sum(rate(sluice_request_queue_seconds_sum{B, api=~"$api"}[$__rate_interval])) / sum(rate(sluice_request_queue_seconds_count{B, api=~"$api"}[$__rate_interval]))`).
			q("local", `sum(rate(sluice_request_local_seconds_sum{B, api=~"$api"}[$__rate_interval])) / sum(rate(sluice_request_local_seconds_count{B, api=~"$api"}[$__rate_interval]))`).
			q("remote", `sum(rate(sluice_request_remote_seconds_sum{B, api=~"$api"}[$__rate_interval])) / sum(rate(sluice_request_remote_seconds_count{B, api=~"$api"}[$__rate_interval]))`).
			q("response send", `sum(rate(sluice_response_send_seconds_sum{B, api=~"$api"}[$__rate_interval])) / sum(rate(sluice_response_send_seconds_count{B, api=~"$api"}[$__rate_interval]))`).
			stacked(),
		timeseries("Queue time p99", "s").
			desc("Time a request waited after it was read before its handler started.").
			q("{{instance}} {{api}}", `histogram_quantile(0.99, sum by (instance, api, le) (rate(sluice_request_queue_seconds_bucket{B, api=~"$api"}[$__rate_interval])))`),
		timeseries("Local time p99", "s").
			desc("Time the handler worked on a request, waits excluded.").
			q("{{instance}} {{api}}", `histogram_quantile(0.99, sum by (instance, api, le) (rate(sluice_request_local_seconds_bucket{B, api=~"$api"}[$__rate_interval])))`),
		timeseries("Remote time p99", "s").
			desc("Time a request waited for replicas (acks=all produce) or for data (fetch long polling).").
			q("{{instance}} {{api}}", `histogram_quantile(0.99, sum by (instance, api, le) (rate(sluice_request_remote_seconds_bucket{B, api=~"$api"}[$__rate_interval])))`),
		timeseries("Response send p99", "s").
			desc("Time from a response being queued to it being written to the socket; high values mean slow clients or a full network.").
			q("{{instance}} {{api}}", `histogram_quantile(0.99, sum by (instance, api, le) (rate(sluice_response_send_seconds_bucket{B, api=~"$api"}[$__rate_interval])))`),

		row("Storage"),
		timeseries("Fsync latency", "s").
			q("{{instance}} p50", `histogram_quantile(0.50, sum by (instance, le) (rate(sluice_log_fsync_seconds_bucket{B}[$__rate_interval])))`).
			q("{{instance}} p99", `histogram_quantile(0.99, sum by (instance, le) (rate(sluice_log_fsync_seconds_bucket{B}[$__rate_interval])))`),
		timeseries("Fsyncs per second", "short").
			q("{{instance}}", `sum by (instance) (rate(sluice_log_fsync_seconds_count{B}[$__rate_interval]))`),
		timeseries("Log dir used", "percentunit").
			desc("Share of the log directory's file system in use.").
			q("{{instance}} {{dir}}", `sluice_log_dir_used_bytes{B} / sluice_log_dir_total_bytes{B}`).min(0).max(1).
			thresholds(steps("green", 0.75, "orange", 0.85, "red")),
		timeseries("Log dir free", "bytes").
			q("{{instance}} {{dir}}", `sluice_log_dir_free_bytes{B}`),
		timeseries("Log size by topic", "bytes").
			desc("Bytes of the replicas this broker holds, by topic.").
			q("{{instance}} {{topic}}", `sum by (instance, topic) (sluice_log_size_bytes{B})`),
		timeseries("Log segments", "short").
			q("{{instance}}", `sum by (instance) (sluice_log_segments{B})`),

		row("Clients"),
		timeseries("Connections by client software", "short").
			desc("Open connections by the client software name and version the clients sent in ApiVersions.").
			q("{{instance}} {{client_software_name}} {{client_software_version}}", `sum by (instance, client_software_name, client_software_version) (sluice_connections{B})`).stacked(),
		timeseries("Connections by listener", "short").
			q("{{instance}} {{listener}}", `sum by (instance, listener) (sluice_connections{B})`),
		table("Client software", "none").
			desc("Connections now, by client software; clients that never sent ApiVersions show an empty name.").
			instant("connections", `sum by (client_software_name, client_software_version) (sluice_connections{B})`).size(12, 8),
		timeseries("Purgatory", "short").
			desc("Produce requests waiting for replicas (acks=all) and fetches waiting for data.").
			q("{{instance}} {{operation}}", `sluice_purgatory_size{B}`),

		row("Raft metadata quorum"),
		timeseries("Raft state", "short").
			desc("1 for the state each broker is in.").
			q("{{instance}} {{state}}", `sluice_raft_state{B} == 1`),
		timeseries("Raft term", "short").
			desc("A term that keeps rising means repeated elections.").
			q("{{instance}}", `sluice_raft_term{B}`),
		timeseries("Raft indexes", "short").
			q("{{instance}} last log", `sluice_raft_last_log_index{B}`).
			q("{{instance}} commit", `sluice_raft_commit_index{B}`).
			q("{{instance}} applied", `sluice_raft_applied_index{B}`).
			q("{{instance}} metadata image", `sluice_metadata_image_index{B}`),
		timeseries("Raft apply backlog", "short").
			desc("Committed entries not yet applied, and applied entries not yet in the metadata image the broker serves.").
			q("{{instance}} commit - applied", `sluice_raft_commit_index{B} - sluice_raft_applied_index{B}`).
			q("{{instance}} applied - image", `sluice_raft_applied_index{B} - sluice_metadata_image_index{B}`),

		row("Replication and groups"),
		timeseries("ISR shrinks and expands", "short").
			q("{{instance}} shrinks", `rate(sluice_isr_shrinks_total{B}[$__rate_interval])`).
			q("{{instance}} expands", `rate(sluice_isr_expands_total{B}[$__rate_interval])`),
		timeseries("Groups coordinated", "short").
			q("{{instance}} {{state}}", `sluice_groups{B} > 0`).
			q("{{instance}} members", `sluice_group_members{B}`),
		timeseries("Group rebalances", "short").
			q("{{instance}}", `rate(sluice_group_rebalances_total{B}[$__rate_interval])`),
		timeseries("Leader elections (as controller)", "short").
			q("{{instance}} {{type}}", `rate(sluice_leader_elections_total{B}[$__rate_interval])`),

		row("Transactions"),
		timeseries("Ongoing transactions", "short").
			desc("Transactions this broker coordinates (its __transaction_state partitions) that are open now.").
			q("{{instance}}", `sluice_txn_ongoing{B}`),
		timeseries("Oldest ongoing transaction", "s").
			desc("Age of the oldest open transaction this broker coordinates. Past transaction.max.timeout.ms (15 min by default) the coordinator should have aborted it (alert SluiceTransactionOpenTooLong).").
			q("{{instance}}", `sluice_txn_oldest_age_seconds{B}`).
			thresholds(steps("green", 900, "red")),
		timeseries("Transactions ended", "short").
			desc("Transactions completed per second, by result.").
			q("{{instance}} {{result}}", `sum by (instance, result) (rate(sluice_txn_completed_total{B}[$__rate_interval]))`),
		timeseries("Fenced producers and timed-out transactions", "short").
			desc("Producers fenced by a newer one with the same transactional id, and transactions the coordinator aborted because they passed their transaction.timeout.ms.").
			q("{{instance}} fenced", `rate(sluice_txn_fenced_total{B}[$__rate_interval])`).
			q("{{instance}} timed out", `rate(sluice_txn_timed_out_total{B}[$__rate_interval])`),

		row("Process"),
		timeseries("CPU", "percentunit").
			desc("CPU seconds per second; 1 is one core.").
			q("{{instance}}", `rate(process_cpu_seconds_total{B}[$__rate_interval])`),
		timeseries("Memory", "bytes").
			q("{{instance}} resident", `process_resident_memory_bytes{B}`).
			q("{{instance}} Go heap in use", `go_memstats_heap_inuse_bytes{B}`),
		timeseries("Goroutines", "short").
			q("{{instance}}", `go_goroutines{B}`),
		timeseries("Open file descriptors", "percentunit").
			q("{{instance}}", `process_open_fds{B} / process_max_fds{B}`).min(0).max(1),
	)
	return d
}
