package broker

import (
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// brokerMetrics are the broker's Prometheus metrics, named sluice_*, covering what
// operators watch on Kafka. They are registered on the broker's own registry
// (Broker.Registry), never the global one, so several brokers can share a process.
type brokerMetrics struct {
	requests      *prometheus.CounterVec
	requestErrors *prometheus.CounterVec
	queueTime     *prometheus.HistogramVec
	localTime     *prometheus.HistogramVec
	remoteTime    *prometheus.HistogramVec
	sendTime      *prometheus.HistogramVec
	totalTime     *prometheus.HistogramVec

	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	recordsIn  *prometheus.CounterVec
	recordsOut *prometheus.CounterVec

	isrShrinks      prometheus.Counter
	isrExpands      prometheus.Counter
	leaderElections *prometheus.CounterVec
	fsync           prometheus.Histogram
	purgatory       *prometheus.GaugeVec
	handlerIdle     prometheus.Gauge

	busyNanos   atomic.Int64 // time spent handling requests, waits excluded
	idleMu      sync.Mutex
	idleLast    time.Time
	idleLastBsy int64
}

// latencyHistogram has classic buckets from 0.1 ms to 30 s and, for Prometheus
// servers that scrape them, native histogram buckets alongside.
func latencyHistogram(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(latencyOpts(name, help), labels)
}

func latencyOpts(name, help string) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{
		Name:                            name,
		Help:                            help,
		Buckets:                         []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	}
}

func newBrokerMetrics(b *Broker, reg prometheus.Registerer) *brokerMetrics {
	m := &brokerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_requests_total", Help: "Kafka requests handled, by API and version.",
		}, []string{"api", "version"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_request_errors_total", Help: "Kafka error codes returned, by API and error name (one per partition or resource that failed).",
		}, []string{"api", "error"}),
		queueTime:  latencyHistogram("sluice_request_queue_seconds", "Time a request waited after it was read before its handler started, by API.", "api"),
		localTime:  latencyHistogram("sluice_request_local_seconds", "Time a request's handler worked on it, waits excluded, by API.", "api"),
		remoteTime: latencyHistogram("sluice_request_remote_seconds", "Time a request waited: for replicas (acks=all) or for data (fetch long polling), by API.", "api"),
		sendTime:   latencyHistogram("sluice_response_send_seconds", "Time from a response being queued to it being written to the socket, by API.", "api"),
		totalTime:  latencyHistogram("sluice_request_total_seconds", "Time from a request being read to its response being written, by API.", "api"),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_topic_bytes_in_total", Help: "Record batch bytes appended by producers, by topic.",
		}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_topic_bytes_out_total", Help: "Record batch bytes sent to consumers (not to followers), by topic.",
		}, []string{"topic"}),
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_topic_records_in_total", Help: "Records appended by producers, by topic.",
		}, []string{"topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_topic_records_out_total", Help: "Records sent to consumers (not to followers), by topic.",
		}, []string{"topic"}),
		isrShrinks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_isr_shrinks_total", Help: "ISR shrinks of partitions this broker leads.",
		}),
		isrExpands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_isr_expands_total", Help: "ISR expansions of partitions this broker leads.",
		}),
		leaderElections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_leader_elections_total", Help: "Leader elections decided while this broker was the active controller, by type (clean, unclean).",
		}, []string{"type"}),
		fsync: prometheus.NewHistogram(latencyOpts("sluice_log_fsync_seconds", "Duration of fsyncs of partition data.")),
		purgatory: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_purgatory_size", Help: "Requests waiting: produce for replication (acks=all), fetch for data.",
		}, []string{"operation"}),
		handlerIdle: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_request_handler_idle_ratio", Help: "Share of the broker's request handling capacity (one handler per CPU) left idle over the last interval, like Kafka's RequestHandlerAvgIdlePercent.",
		}),
		idleLast: time.Now(),
	}
	m.handlerIdle.Set(1)
	for _, l := range []string{"clean", "unclean"} {
		m.leaderElections.WithLabelValues(l)
	}
	reg.MustRegister(m.requests, m.requestErrors, m.queueTime, m.localTime, m.remoteTime, m.sendTime, m.totalTime,
		m.bytesIn, m.bytesOut, m.recordsIn, m.recordsOut, m.isrShrinks, m.isrExpands, m.leaderElections,
		m.fsync, m.purgatory, m.handlerIdle,
		&brokerCollector{b: b},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// updateIdle recomputes the handler idle ratio since the last call.
func (m *brokerMetrics) updateIdle(now time.Time) {
	m.idleMu.Lock()
	defer m.idleMu.Unlock()
	busy := m.busyNanos.Load()
	wall := now.Sub(m.idleLast).Nanoseconds() * int64(runtime.GOMAXPROCS(0))
	if wall <= 0 {
		return
	}
	idle := 1 - float64(busy-m.idleLastBsy)/float64(wall)
	m.handlerIdle.Set(min(max(idle, 0), 1))
	m.idleLast, m.idleLastBsy = now, busy
}

// requestTiming follows one request through the broker.
type requestTiming struct {
	api     string
	read    time.Time // frame read
	started time.Time // handler started
	handled time.Time // handler returned, response queued
	remote  time.Duration
}

// observeHandled records a request once its handler returned.
func (m *brokerMetrics) observeHandled(t *requestTiming, version int16, resp kmsg.Response) {
	m.requests.WithLabelValues(t.api, strconv.Itoa(int(version))).Inc()
	local := t.handled.Sub(t.started) - t.remote
	m.queueTime.WithLabelValues(t.api).Observe(t.started.Sub(t.read).Seconds())
	m.localTime.WithLabelValues(t.api).Observe(local.Seconds())
	m.remoteTime.WithLabelValues(t.api).Observe(t.remote.Seconds())
	m.busyNanos.Add(local.Nanoseconds())
	if resp != nil {
		forEachErrorCode(reflect.ValueOf(resp), func(code int16) {
			name := strconv.Itoa(int(code))
			if e := kerr.ErrorForCode(code); e != nil {
				if ke, ok := e.(*kerr.Error); ok {
					name = ke.Message
				}
			}
			m.requestErrors.WithLabelValues(t.api, name).Inc()
		})
	}
}

// observeSent records a response once written.
func (m *brokerMetrics) observeSent(t *requestTiming, now time.Time) {
	m.sendTime.WithLabelValues(t.api).Observe(now.Sub(t.handled).Seconds())
	m.totalTime.WithLabelValues(t.api).Observe(now.Sub(t.read).Seconds())
}

var int16Type = reflect.TypeOf(int16(0))

// forEachErrorCode calls fn for every non-zero ErrorCode field in a response,
// at any depth.
func forEachErrorCode(v reflect.Value, fn func(int16)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			forEachErrorCode(v.Elem(), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			f := t.Field(i)
			switch {
			case f.Name == "ErrorCode" && f.Type == int16Type:
				if c := int16(v.Field(i).Int()); c != 0 {
					fn(c)
				}
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				s := v.Field(i)
				for j := range s.Len() {
					forEachErrorCode(s.Index(j), fn)
				}
			case f.Type.Kind() == reflect.Struct:
				forEachErrorCode(v.Field(i), fn)
			}
		}
	}
}

// brokerCollector computes state gauges at scrape time from the broker's state:
// partition health, log sizes, the controller, Raft, groups and connections.
type brokerCollector struct{ b *Broker }

var (
	descURP         = prometheus.NewDesc("sluice_under_replicated_partitions", "Partitions led by this broker whose ISR is smaller than their replica set (the replicas a reassignment is adding excluded, as in Kafka).", nil, nil)
	descUnderMinISR = prometheus.NewDesc("sluice_under_min_isr_partitions", "Partitions led by this broker whose ISR is smaller than min.insync.replicas.", nil, nil)
	descOffline     = prometheus.NewDesc("sluice_offline_partitions", "Partitions without a leader; reported by the active controller only, 0 elsewhere.", nil, nil)
	descLeaderCount = prometheus.NewDesc("sluice_leader_partitions", "Partitions this broker leads.", nil, nil)
	descActiveCtl   = prometheus.NewDesc("sluice_active_controller", "1 on the active controller, else 0; the sum over a cluster must be 1.", nil, nil)
	descBrokers     = prometheus.NewDesc("sluice_brokers", "Brokers registered in the metadata log, by whether they are fenced.", []string{"state"}, nil)
	descLogSize     = prometheus.NewDesc("sluice_log_size_bytes", "Bytes of a partition's log on this broker.", []string{"topic", "partition"}, nil)
	descLogSegments = prometheus.NewDesc("sluice_log_segments", "Segments of a partition's log on this broker.", []string{"topic", "partition"}, nil)
	descLogEnd      = prometheus.NewDesc("sluice_log_end_offset", "Log end offset of a partition's replica on this broker.", []string{"topic", "partition"}, nil)
	descLogStart    = prometheus.NewDesc("sluice_log_start_offset", "Log start offset of a partition's replica on this broker.", []string{"topic", "partition"}, nil)
	descHW          = prometheus.NewDesc("sluice_log_high_watermark", "High watermark of a partition's replica on this broker.", []string{"topic", "partition"}, nil)
	descLeader      = prometheus.NewDesc("sluice_partition_leader", "1 where this broker leads the partition, else 0.", []string{"topic", "partition"}, nil)
	descDirUsed     = prometheus.NewDesc("sluice_log_dir_used_bytes", "Bytes used on the file system of log.dir.", []string{"dir"}, nil)
	descDirFree     = prometheus.NewDesc("sluice_log_dir_free_bytes", "Bytes available on the file system of log.dir.", []string{"dir"}, nil)
	descDirTotal    = prometheus.NewDesc("sluice_log_dir_total_bytes", "Size of the file system of log.dir.", []string{"dir"}, nil)
	descRaftState   = prometheus.NewDesc("sluice_raft_state", "Raft state of this metadata quorum voter (1 for the current state).", []string{"state"}, nil)
	descRaftTerm    = prometheus.NewDesc("sluice_raft_term", "Current Raft term.", nil, nil)
	descRaftCommit  = prometheus.NewDesc("sluice_raft_commit_index", "Raft commit index.", nil, nil)
	descRaftApplied = prometheus.NewDesc("sluice_raft_applied_index", "Raft applied index.", nil, nil)
	descRaftLast    = prometheus.NewDesc("sluice_raft_last_log_index", "Index of the last Raft log entry.", nil, nil)
	descMetaIndex   = prometheus.NewDesc("sluice_metadata_image_index", "Metadata log index of the image this broker serves.", nil, nil)
	descGroups      = prometheus.NewDesc("sluice_groups", "Consumer groups coordinated by this broker, by state.", []string{"state"}, nil)
	descMembers     = prometheus.NewDesc("sluice_group_members", "Members of the consumer groups coordinated by this broker.", nil, nil)
	descRebalances  = prometheus.NewDesc("sluice_group_rebalances_total", "Rebalances started by groups coordinated by this broker.", nil, nil)
	descConns       = prometheus.NewDesc("sluice_connections", "Open client connections by listener and client software (from ApiVersions).", []string{"listener", "client_software_name", "client_software_version"}, nil)
	descReady       = prometheus.NewDesc("sluice_broker_ready", "1 once the broker is registered and unfenced.", nil, nil)
)

// Transactions on the partition side.
var (
	descLSO    = prometheus.NewDesc("sluice_log_last_stable_offset", "Last stable offset of a partition's replica on this broker: read_committed consumers read below it.", []string{"topic", "partition"}, nil)
	descLSOLag = prometheus.NewDesc("sluice_partition_lso_lag", "High watermark minus last stable offset of a partition's replica on this broker: offsets held back from read_committed consumers by open transactions.", []string{"topic", "partition"}, nil)
	txnDescs   = []*prometheus.Desc{descLSO, descLSOLag}
)

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descURP, descUnderMinISR, descOffline, descLeaderCount, descActiveCtl, descBrokers,
		descLogSize, descLogSegments, descLogEnd, descLogStart, descHW, descLeader, descDirUsed, descDirFree, descDirTotal,
		descRaftState, descRaftTerm, descRaftCommit, descRaftApplied, descRaftLast, descMetaIndex,
		descGroups, descMembers, descRebalances, descConns, descReady} {
		ch <- d
	}
	for _, d := range txnDescs {
		ch <- d
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	b := c.b
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	var urp, underMin, leading int
	for _, p := range b.allPartitions() {
		part := strconv.Itoa(int(p.index))
		p.mu.Lock()
		isLeader, isr, replicas := p.isLeader, len(p.isr), len(p.replicas)
		p.mu.Unlock()
		leader := 0.0
		if isLeader {
			leader = 1
			leading++
			// As in Kafka, a reassignment's adding replicas do not count: a move is not
			// under-replication.
			if mp, ok := b.quorum.Image().Partition(p.topic.name, p.index); ok {
				replicas -= len(mp.AddingReplicas)
			}
			if isr < replicas {
				urp++
			}
			if isr < b.minISR(p.topic) {
				underMin++
			}
		}
		gauge(descLeader, leader, p.topic.name, part)
		gauge(descLogSize, float64(p.log.Size()), p.topic.name, part)
		gauge(descLogSegments, float64(p.log.NumSegments()), p.topic.name, part)
		gauge(descLogEnd, float64(p.log.LogEndOffset()), p.topic.name, part)
		gauge(descLogStart, float64(p.log.LogStartOffset()), p.topic.name, part)
		gauge(descHW, float64(p.hw.Load()), p.topic.name, part)
		hw := p.hw.Load()
		lso := p.lastStable(hw)
		gauge(descLSO, float64(lso), p.topic.name, part)
		gauge(descLSOLag, float64(hw-lso), p.topic.name, part)
	}
	gauge(descURP, float64(urp))
	gauge(descUnderMinISR, float64(underMin))
	gauge(descLeaderCount, float64(leading))

	img := b.quorum.Image()
	offline, active := 0, 0.0
	if b.quorum.IsController() {
		active = 1
		offline = offlinePartitions(img)
	}
	gauge(descOffline, float64(offline))
	gauge(descActiveCtl, active)
	var fenced, unfenced int
	for _, br := range img.Brokers {
		if br.Fenced {
			fenced++
		} else {
			unfenced++
		}
	}
	gauge(descBrokers, float64(unfenced), "unfenced")
	gauge(descBrokers, float64(fenced), "fenced")
	gauge(descMetaIndex, float64(img.Index))

	total, free := diskSpace(b.cfg.DataDir)
	if total >= 0 {
		gauge(descDirTotal, float64(total), b.cfg.DataDir)
		gauge(descDirFree, float64(free), b.cfg.DataDir)
		gauge(descDirUsed, float64(total-free), b.cfg.DataDir)
	}

	rs := b.quorum.Stats()
	for _, s := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
		v := 0.0
		if s == rs.State {
			v = 1
		}
		gauge(descRaftState, v, s)
	}
	gauge(descRaftTerm, float64(rs.Term))
	gauge(descRaftCommit, float64(rs.CommitIndex))
	gauge(descRaftApplied, float64(rs.AppliedIndex))
	gauge(descRaftLast, float64(rs.LastLogIndex))

	gs := b.groups.Stats()
	for _, s := range []string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"} {
		gauge(descGroups, float64(gs.GroupsByState[s]), s)
	}
	gauge(descMembers, float64(gs.Members))
	ch <- prometheus.MustNewConstMetric(descRebalances, prometheus.CounterValue, float64(gs.Rebalances))

	type client struct{ name, version string }
	conns := map[client]int{}
	b.connMu.Lock()
	for cc := range b.conns {
		name, version := cc.software()
		conns[client{name, version}]++
	}
	b.connMu.Unlock()
	for k, n := range conns {
		gauge(descConns, float64(n), "PLAINTEXT", k.name, k.version)
	}
	ready := 0.0
	select {
	case <-b.ready:
		ready = 1
	default:
	}
	gauge(descReady, ready)
}

// offlinePartitions counts partitions without a leader.
func offlinePartitions(img *metadata.Image) int {
	n := 0
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if p.Leader < 0 {
				n++
			}
		}
	}
	return n
}
