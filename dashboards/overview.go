package dashboards

// clusterOverview is the first dashboard an operator opens: is the cluster
// whole, how much flows through it, how fast and how well it answers.
func clusterOverview() *Dashboard {
	d := newDashboard("sluice-cluster-overview", "Sluice / Cluster overview",
		"Health, throughput, latency and errors of one Sluice cluster, from the brokers' /metrics.")
	d.layout(
		row("Health"),
		stat("Brokers online", "none").
			desc("Brokers whose /metrics report them registered and unfenced (sluice_broker_ready).").
			instant("", `count(sluice_broker_ready{C} == 1) or vector(0)`).
			thresholds(steps("red", 1, "green")),
		stat("Fenced brokers", "none").
			desc("Brokers the metadata log knows but has fenced, as the active controller sees it.").
			instant("", `max(sluice_brokers{C, state="fenced"})`).
			thresholds(steps("green", 1, "red")),
		stat("Active controllers", "none").
			desc("Sum of sluice_active_controller over the cluster; anything but exactly 1 is wrong (no controller, or a split).").
			instant("", `sum(sluice_active_controller{C})`).
			thresholds(steps("red", 1, "green", 2, "red")),
		stat("Under-replicated partitions", "none").
			desc("Partitions whose ISR is smaller than their replica set, counted by their leaders.").
			instant("", `sum(sluice_under_replicated_partitions{C})`).
			thresholds(steps("green", 1, "red")),
		stat("Under min ISR", "none").
			desc("Partitions whose ISR is smaller than min.insync.replicas: acks=all produces to them fail.").
			instant("", `sum(sluice_under_min_isr_partitions{C})`).
			thresholds(steps("green", 1, "red")),
		stat("Offline partitions", "none").
			desc("Partitions without a leader, reported by the active controller.").
			instant("", `sum(sluice_offline_partitions{C})`).
			thresholds(steps("green", 1, "red")),
		stat("Partitions", "none").
			desc("Partitions led by the brokers (every online partition has one leader).").
			instant("", `sum(sluice_leader_partitions{C})`).
			thresholds(steps("blue")),
		stat("Unclean elections (range)", "none").
			desc("Unclean leader elections in the dashboard's time range: each may have lost acknowledged records.").
			instant("", `sum(increase(sluice_leader_elections_total{C, type="unclean"}[$__range]))`).
			thresholds(steps("green", 1, "red")),
		stat("Min handler idle", "percentunit").
			desc("Lowest request handler idle ratio over the brokers; below 30% a broker is close to saturation (Kafka's RequestHandlerAvgIdlePercent).").
			instant("", `min(sluice_request_handler_idle_ratio{C})`).
			thresholds(steps("red", 0.2, "orange", 0.3, "green")).min(0).max(1),
		stat("Min log dir free", "percentunit").
			desc("Free space of the fullest log directory.").
			instant("", `min(sluice_log_dir_free_bytes{C} / sluice_log_dir_total_bytes{C})`).
			thresholds(steps("red", 0.15, "orange", 0.25, "green")).min(0).max(1),
		stat("Connections", "none").
			desc("Open client connections over all brokers.").
			instant("", `sum(sluice_connections{C})`).
			thresholds(steps("blue")),
		stat("Firing alerts", "none").
			desc("Alerts Prometheus reports firing for this cluster (or without a cluster label); see the Alerts dashboard.").
			instant("", `count(ALERTS{A, alertstate="firing"}) or vector(0)`).
			thresholds(steps("green", 1, "red")),

		row("Throughput"),
		timeseries("Bytes in / out", "Bps").
			desc("Record batch bytes appended by producers and sent to consumers (replication excluded).").
			q("in", `sum(rate(sluice_topic_bytes_in_total{C}[$__rate_interval]))`).
			q("out", `sum(rate(sluice_topic_bytes_out_total{C}[$__rate_interval]))`),
		timeseries("Records in / out", "rps").
			q("in", `sum(rate(sluice_topic_records_in_total{C}[$__rate_interval]))`).
			q("out", `sum(rate(sluice_topic_records_out_total{C}[$__rate_interval]))`),
		timeseries("Bytes in by broker", "Bps").
			q("{{instance}}", `sum by (instance) (rate(sluice_topic_bytes_in_total{C}[$__rate_interval]))`),
		timeseries("Bytes out by broker", "Bps").
			q("{{instance}}", `sum by (instance) (rate(sluice_topic_bytes_out_total{C}[$__rate_interval]))`),
		timeseries("Top 10 topics by bytes in", "Bps").
			q("{{topic}}", `topk(10, sum by (topic) (rate(sluice_topic_bytes_in_total{C}[$__rate_interval])))`),
		timeseries("Requests by API", "reqps").
			q("{{api}}", `sum by (api) (rate(sluice_requests_total{C}[$__rate_interval]))`),

		row("Latency and errors"),
		timeseries("Request latency p99 by API", "s").
			desc("99th percentile of the time from a request being read to its response being written.").
			q("{{api}}", `histogram_quantile(0.99, sum by (api, le) (rate(sluice_request_total_seconds_bucket{C}[$__rate_interval])))`),
		timeseries("Produce and fetch latency", "s").
			desc("p50 and p99 of Produce and Fetch; fetch time includes long polling (max.wait.ms).").
			q("{{api}} p50", `histogram_quantile(0.50, sum by (api, le) (rate(sluice_request_total_seconds_bucket{C, api=~"Produce|Fetch"}[$__rate_interval])))`).
			q("{{api}} p99", `histogram_quantile(0.99, sum by (api, le) (rate(sluice_request_total_seconds_bucket{C, api=~"Produce|Fetch"}[$__rate_interval])))`),
		timeseries("Errors by API and error", "short").
			desc("Kafka error codes returned per second (one per partition or resource that failed).").
			q("{{api}} {{error}}", `sum by (api, error) (rate(sluice_request_errors_total{C}[$__rate_interval]))`),
		timeseries("Error ratio by API", "percentunit").
			desc("Error codes returned per request handled; can exceed 100% when one request fails for several partitions.").
			q("{{api}}", `sum by (api) (rate(sluice_request_errors_total{C}[$__rate_interval])) / sum by (api) (rate(sluice_requests_total{C}[$__rate_interval]))`),
		timeseries("Request handler idle by broker", "percentunit").
			desc("Share of request handling capacity left idle; Kafka operators alert below 30%.").
			q("{{instance}}", `sluice_request_handler_idle_ratio{C}`).min(0).max(1).
			thresholds(steps("red", 0.3, "green")),
		timeseries("Purgatory by operation", "short").
			desc("Produce requests waiting for replicas (acks=all) and fetches waiting for data.").
			q("{{operation}}", `sum by (operation) (sluice_purgatory_size{C})`),

		row("Replication and groups"),
		timeseries("ISR shrinks and expands", "short").
			q("shrinks", `sum(rate(sluice_isr_shrinks_total{C}[$__rate_interval]))`).
			q("expands", `sum(rate(sluice_isr_expands_total{C}[$__rate_interval]))`),
		timeseries("Leader elections", "short").
			q("{{type}}", `sum by (type) (rate(sluice_leader_elections_total{C}[$__rate_interval]))`),
		timeseries("Leaders by broker", "short").
			desc("Partitions each broker leads; an uneven spread puts more load on some brokers.").
			q("{{instance}}", `sluice_leader_partitions{C}`),
		timeseries("Consumer groups by state", "short").
			q("{{state}}", `sum by (state) (sluice_groups{C})`).stacked(),
		table("Brokers in the metadata", "none").
			desc("Brokers the cluster metadata lists, as the exporter reads it through the Kafka protocol (what clients see).").
			instant("", `max by (id, address) (kafka_broker_info{C})`).size(12, 8),
		timeseries("Brokers: metadata, registered, ready", "short").
			desc("Brokers clients see in the metadata (exporter), brokers registered unfenced (controller), brokers reporting ready (their own /metrics). They differ while a broker joins or leaves.").
			q("in metadata", `max(kafka_brokers{C})`).
			q("unfenced", `max(sluice_brokers{C, state="unfenced"})`).
			q("ready", `sum(sluice_broker_ready{C})`).size(12, 8),

		// Balance: partition moves and the spread the controller's balancer evens out.
		row("Balance"),
		stat("Reassignments in progress", "none").
			desc("Partitions being moved (KIP-455 reassignments), reported by the active controller; the balancer keeps at most auto.balance.max.moves going.").
			instant("", `sum(sluice_reassignments_in_progress{C})`).
			thresholds(steps("green", 1, "blue")),
		stat("Cordoned brokers", "none").
			desc("Brokers cordoned (cordoned.log.dirs) or being drained: nothing new is placed on them.").
			instant("", `sum(max by (broker) (sluice_broker_cordoned{C}))`).
			thresholds(steps("green", 1, "orange")),
		stat("Replica spread", "percentunit").
			desc("(most - fewest replicas on a broker) / mean, cordoned brokers excluded; the balancer aims for at most one replica of difference.").
			instant("", `(max(max by (broker) (sluice_broker_replicas{C}) unless on (broker) (max by (broker) (sluice_broker_cordoned{C}) == 1)) - min(max by (broker) (sluice_broker_replicas{C}) unless on (broker) (max by (broker) (sluice_broker_cordoned{C}) == 1))) / avg(max by (broker) (sluice_broker_replicas{C}) unless on (broker) (max by (broker) (sluice_broker_cordoned{C}) == 1))`).
			thresholds(steps("green", 0.1, "orange", 0.25, "red")),
		timeseries("Partition moves by reason", "short").
			desc("Reassignments the balancer started per second: balance (a broker joined or the spread is uneven), disk (over auto.balance.disk.threshold), drain (cordoned broker).").
			q("{{reason}}", `sum by (reason) (rate(sluice_partition_moves_total{C}[$__rate_interval]))`),
		timeseries("Replicas by broker", "short").
			desc("Replicas assigned to each broker (targets of moves in progress), as the active controller sees them.").
			q("broker {{broker}}", `max by (broker) (sluice_broker_replicas{C})`),
		timeseries("Leaders by broker (controller)", "short").
			desc("Partitions each broker leads, as the active controller sees them.").
			q("broker {{broker}}", `max by (broker) (sluice_broker_leaders{C})`),
		timeseries("Bytes on disk by broker", "bytes").
			desc("Bytes of partition logs on each broker: the balancer evens them out within auto.balance.bytes.tolerance.").
			q("{{instance}}", `sum by (instance) (sluice_log_size_bytes{C})`),
		row("Gateway"),
		timeseries("Gateway requests by API", "reqps").
			desc("Client requests the gateways (sluice gateway, job gateway) answered, by API; result error means the client's connection was closed.").
			q("{{api}} {{result}}", `sum by (api, result) (rate(sluice_gateway_requests_total{C}[$__rate_interval]))`),
		timeseries("Gateway backend latency p99", "s").
			desc("99th percentile of the time from the gateway sending a request to a broker to its answer, by API; a fetch includes its long poll.").
			q("{{api}}", `histogram_quantile(0.99, sum by (api, le) (rate(sluice_gateway_backend_request_seconds_bucket{C}[$__rate_interval])))`),
		timeseries("Gateway connections, retries, refreshes", "short").
			desc("Client connections open on the gateways; requests sent again after a leader or coordinator moved, and metadata refreshes, per second. Retries rise while brokers join, drain or fail.").
			q("connections", `sum(sluice_gateway_connections{C})`).
			q("retries/s", `sum(rate(sluice_gateway_retries_total{C}[$__rate_interval]))`).
			q("refreshes/s", `sum(rate(sluice_gateway_metadata_refreshes_total{C}[$__rate_interval]))`),
	)
	return d
}
