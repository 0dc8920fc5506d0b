package broker

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
)

// Tenants in the broker (issue 17): the tenants and plans of the metadata log turned into what a
// broker enforces and meters.
//
//   - Isolation is the ACLs the controller keeps for each tenant (metadata/tenants.go).
//   - Bandwidth: a tenant's principals share one produce and one fetch sensor per broker, measured
//     like Kafka's byte-rate quotas (the request size of Produce, the response size of Fetch). The
//     plan's rate is split evenly over the live brokers that lead at least one of the tenant's
//     partitions, so the tenant can never exceed its plan in the cluster; traffic skewed to one of
//     them gets less than the plan in aggregate, never more.
//   - Connections: a plan's connection cap is per broker, checked when a connection authenticates.
//   - Partitions: checked at CreateTopics and CreatePartitions on the controller (limits_topics.go).
//   - Disk: every broker learns the tenant's cluster-wide disk use (log size of each partition on
//     its leader times its replication factor) every tenant.disk.check.interval.ms and refuses
//     produce requests to a tenant over its plan with POLICY_VIOLATION.
//   - Metering: bytes in (record batch bytes of Produce requests appended by the leader, retried
//     duplicates excluded), bytes out (record batch bytes of Fetch responses to consumers) and
//     requests, per tenant and per principal and topic, counted on the broker that served them.

// TenantConfig holds the tenant settings of a broker.
type TenantConfig struct {
	// TenantMeteringEnable counts bytes and requests per tenant and per principal and topic.
	// Default true; false exists to measure what metering costs.
	TenantMeteringEnable *bool `yaml:"tenant.metering.enable"`
	// TenantDiskCheckIntervalMs is how often a broker learns the disk use of the tenants with a
	// disk capacity from the other brokers. Default 10000.
	TenantDiskCheckIntervalMs int64 `yaml:"tenant.disk.check.interval.ms"`
	// TenantMaxPrincipalTopicSeries bounds the label pairs of sluice_principal_topic_bytes_*; the
	// pairs past it are counted under principal and topic "_other". Default 1000.
	TenantMaxPrincipalTopicSeries int `yaml:"tenant.max.principal.topic.series"`
	// AdminWriteUsers, when set, are the basic auth users of web.config.file that may change
	// tenants and plans through the admin interface, separated by commas. Default empty: every
	// user the web config authenticates.
	AdminWriteUsers string `yaml:"admin.write.users"`
}

func (c *TenantConfig) applyDefaults() {
	if c.TenantMeteringEnable == nil {
		c.TenantMeteringEnable = ptr(true)
	}
	setDefault(&c.TenantDiskCheckIntervalMs, 10000)
	setDefault(&c.TenantMaxPrincipalTopicSeries, 1000)
}

func (c *TenantConfig) validate() error {
	if c.TenantDiskCheckIntervalMs < 100 || c.TenantDiskCheckIntervalMs > 3600000 {
		return fmt.Errorf("tenant.disk.check.interval.ms: %d out of range [100, 3600000]", c.TenantDiskCheckIntervalMs)
	}
	if c.TenantMaxPrincipalTopicSeries < 1 || c.TenantMaxPrincipalTopicSeries > 100000 {
		return fmt.Errorf("tenant.max.principal.topic.series: %d out of range [1, 100000]", c.TenantMaxPrincipalTopicSeries)
	}
	return nil
}

// tenantManager holds what the broker knows of tenants: a table rebuilt from each new metadata
// image, the tenants' meters and sensors (kept across rebuilds), their connections to this broker
// and their disk use in the cluster.
//
// Lock order: mu before ptMu; sensor.mu is taken alone.
type tenantManager struct {
	b        *Broker
	metering bool
	table    atomic.Pointer[tenantTable]

	mu     sync.Mutex // rebuilds, meters, conns
	meters map[string]*tenantMeter
	conns  map[string]int

	bytesIn, bytesOut, requests, throttle *prometheus.CounterVec

	ptMu     sync.Mutex
	ptIn     *prometheus.CounterVec
	ptOut    *prometheus.CounterVec
	ptSeries map[[2]string]bool
	ptMax    int

	disk      atomic.Pointer[map[string]int64] // cluster-wide disk use by tenant, from the last check
	diskPeers map[int32]*peer                  // guarded by Broker.ctl.mu (peerIn)
}

// tenantTable is the tenants of one metadata image.
type tenantTable struct {
	index       uint64
	byName      map[string]*tenantEntry
	byPrincipal map[string]*tenantEntry
	byTopic     map[string]*tenantEntry
	byPrefix    map[string]*tenantEntry
	maxPrefix   int
	anyDisk     bool // some plan has a disk capacity
}

// tenantEntry is a tenant as this broker enforces it.
type tenantEntry struct {
	name     string
	plan     adminapi.Plan
	prefixes []string
	meter    *tenantMeter
}

// tenantMeter is a tenant's counters and quota sensors on this broker.
type tenantMeter struct {
	bytesIn, bytesOut, requests, throttle prometheus.Counter
	produce, fetch                        *sensor
	overDisk                              atomic.Pointer[string] // the refusal message while over the disk plan
}

func newTenantManager(b *Broker, reg prometheus.Registerer) *tenantManager {
	tm := &tenantManager{b: b, metering: *b.cfg.Tenants.TenantMeteringEnable, meters: map[string]*tenantMeter{}, conns: map[string]int{},
		ptSeries: map[[2]string]bool{}, ptMax: b.cfg.Tenants.TenantMaxPrincipalTopicSeries}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	tm.bytesIn = counter("sluice_tenant_bytes_in_total", "Record batch bytes of Produce requests appended by this broker as leader for the tenant's principals (retried duplicates not counted; request framing excluded).", "tenant")
	tm.bytesOut = counter("sluice_tenant_bytes_out_total", "Record batch bytes of Fetch responses this broker sent to the tenant's consumers (replica fetches not counted; response framing excluded).", "tenant")
	tm.requests = counter("sluice_tenant_requests_total", "Requests of the tenant's principals handled by this broker.", "tenant")
	tm.throttle = counter("sluice_tenant_throttle_seconds_total", "Time the tenant's connections to this broker were throttled by its plan's bandwidth.", "tenant")
	tm.ptIn = counter("sluice_principal_topic_bytes_in_total", "Record batch bytes produced by principal and topic, as sluice_tenant_bytes_in_total; pairs past tenant.max.principal.topic.series are counted under \"_other\".", "principal", "topic")
	tm.ptOut = counter("sluice_principal_topic_bytes_out_total", "Record batch bytes fetched by principal and topic, as sluice_tenant_bytes_out_total; pairs past tenant.max.principal.topic.series are counted under \"_other\".", "principal", "topic")
	empty := map[string]int64{}
	tm.disk.Store(&empty)
	tm.table.Store(&tenantTable{index: ^uint64(0)})
	reg.MustRegister(tm.bytesIn, tm.bytesOut, tm.requests, tm.throttle, tm.ptIn, tm.ptOut, &tenantCollector{tm: tm})
	return tm
}

// current returns the tenant table of the newest metadata image.
func (tm *tenantManager) current() *tenantTable {
	img := tm.b.quorum.Image()
	t := tm.table.Load()
	if t.index == img.Index {
		return t
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if t = tm.table.Load(); t.index == img.Index {
		return t
	}
	t = tm.build(img)
	tm.table.Store(t)
	return t
}

// build makes the table of img. tm.mu is held.
func (tm *tenantManager) build(img *metadata.Image) *tenantTable {
	t := &tenantTable{index: img.Index, byName: map[string]*tenantEntry{}, byPrincipal: map[string]*tenantEntry{}, byTopic: map[string]*tenantEntry{},
		byPrefix: map[string]*tenantEntry{}}
	if len(img.Tenants) == 0 && len(tm.meters) == 0 {
		return t
	}
	leaders := map[string]map[int32]bool{}
	for _, ts := range img.Tenants {
		e := &tenantEntry{name: ts.Name, plan: img.Plans[ts.Plan], prefixes: ts.Prefixes, meter: tm.meterOf(ts.Name)}
		t.byName[ts.Name] = e
		for _, p := range ts.Principals {
			t.byPrincipal[p] = e
		}
		for _, p := range ts.Prefixes {
			t.byPrefix[p] = e
			t.maxPrefix = max(t.maxPrefix, len(p))
		}
		t.anyDisk = t.anyDisk || e.plan.DiskBytes > 0
		leaders[ts.Name] = map[int32]bool{}
	}
	for name, tp := range img.Topics {
		e := t.ofResource(name)
		if e == nil {
			continue
		}
		t.byTopic[name] = e
		for _, p := range tp.Partitions {
			if p.Leader >= 0 && img.Live(p.Leader) {
				leaders[e.name][p.Leader] = true
			}
		}
	}
	for _, e := range t.byName {
		share := float64(max(1, len(leaders[e.name])))
		e.meter.setLimit(e.meter.produce, float64(e.plan.ProduceBytesPerSecond)/share)
		e.meter.setLimit(e.meter.fetch, float64(e.plan.FetchBytesPerSecond)/share)
		if e.plan.DiskBytes <= 0 {
			e.meter.overDisk.Store(nil)
		}
	}
	// Drop the meters and series of deleted tenants.
	for name := range tm.meters {
		if t.byName[name] == nil {
			delete(tm.meters, name)
			for _, v := range []*prometheus.CounterVec{tm.bytesIn, tm.bytesOut, tm.requests, tm.throttle} {
				v.DeleteLabelValues(name)
			}
		}
	}
	return t
}

// ofResource returns the tenant whose prefix name starts with, or nil: one map lookup per prefix
// length, since no two tenants' prefixes overlap.
func (t *tenantTable) ofResource(name string) *tenantEntry {
	for i := 1; i <= min(len(name), t.maxPrefix); i++ {
		if e := t.byPrefix[name[:i]]; e != nil {
			return e
		}
	}
	return nil
}

// meterOf returns the tenant's meter, creating it. tm.mu is held.
func (tm *tenantManager) meterOf(name string) *tenantMeter {
	if m := tm.meters[name]; m != nil {
		return m
	}
	m := &tenantMeter{bytesIn: tm.bytesIn.WithLabelValues(name), bytesOut: tm.bytesOut.WithLabelValues(name),
		requests: tm.requests.WithLabelValues(name), throttle: tm.throttle.WithLabelValues(name)}
	window := time.Duration(tm.b.cfg.Quotas.QuotaWindowSizeSeconds) * time.Second
	for _, s := range []**sensor{&m.produce, &m.fetch} {
		*s = &sensor{throttleSeconds: m.throttle, usage: prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})}
		(*s).rate.init(tm.b.cfg.Quotas.QuotaWindowNum, window)
	}
	tm.meters[name] = m
	return m
}

func (m *tenantMeter) setLimit(s *sensor, limit float64) {
	s.mu.Lock()
	s.limit = limit
	s.mu.Unlock()
}

// tenantCache is a connection's tenant, resolved once per table and principal.
type tenantCache struct {
	table     *tenantTable
	principal string
	entry     *tenantEntry
	// topics holds the connection's principal-and-topic counters: in and out.
	topics map[string]*[2]prometheus.Counter
	// conn is the tenant this connection is counted against for the connection cap.
	conn string
}

// tenant returns the connection's tenant, or nil when its principal belongs to none.
func (cc *conn) tenant() *tenantEntry {
	t := cc.b.tenants.current()
	c := &cc.tenantCache
	if c.table != t || c.principal != cc.principal {
		if c.principal != cc.principal {
			c.topics = nil
		}
		c.table, c.principal, c.entry = t, cc.principal, t.byPrincipal[cc.principal]
	}
	return c.entry
}

// principalTopic returns the connection's counters of topic.
func (cc *conn) principalTopic(topic string) *[2]prometheus.Counter {
	c := &cc.tenantCache
	if pc := c.topics[topic]; pc != nil {
		return pc
	}
	tm := cc.b.tenants
	principal := cc.principalName()
	tm.ptMu.Lock()
	k := [2]string{principal, topic}
	if !tm.ptSeries[k] && len(tm.ptSeries) >= tm.ptMax {
		k = [2]string{overflowLabel, overflowLabel}
	} else {
		tm.ptSeries[k] = true
	}
	tm.ptMu.Unlock()
	pc := &[2]prometheus.Counter{tm.ptIn.WithLabelValues(k[0], k[1]), tm.ptOut.WithLabelValues(k[0], k[1])}
	if c.topics == nil {
		c.topics = map[string]*[2]prometheus.Counter{}
	}
	if len(c.topics) < 256 { // a connection's cache is bounded too
		c.topics[topic] = pc
	}
	return pc
}

// meterProduce counts n record batch bytes appended to topic for the connection.
func (cc *conn) meterProduce(topic string, n int) {
	if !cc.b.tenants.metering {
		return
	}
	if e := cc.tenant(); e != nil {
		e.meter.bytesIn.Add(float64(n))
	}
	cc.principalTopic(topic)[0].Add(float64(n))
}

// checkTenantDisk refuses a produce to a topic of a tenant over its disk plan.
func (b *Broker) checkTenantDisk(topic string) error {
	t := b.tenants.current()
	if !t.anyDisk {
		return nil
	}
	if e := t.byTopic[topic]; e != nil {
		if msg := e.meter.overDisk.Load(); msg != nil {
			return kafkaErr(kerr.PolicyViolation, *msg)
		}
	}
	return nil
}

// afterTenantRequest meters a handled request (requests, and the record bytes of a Fetch
// response) and applies the tenant's bandwidth plan, lengthening the response's throttle time
// and the connection's mute when the tenant is over it. Broker requests are neither metered
// nor throttled.
func (cc *conn) afterTenantRequest(req kmsg.Request, resp kmsg.Response, frameSize int) {
	e := cc.tenant()
	key := req.Key()
	tm := cc.b.tenants
	if e == nil && (!tm.metering || key != 1) {
		return
	}
	if cc.isBrokerRequest(req) {
		return
	}
	if tm.metering {
		if e != nil {
			e.meter.requests.Inc()
		}
		if fr, ok := resp.(*kmsg.FetchResponse); ok {
			cc.meterFetch(fr, e)
		}
	}
	if e == nil || resp == nil {
		return
	}
	var s *sensor
	var v float64
	switch key {
	case 0:
		s, v = e.meter.produce, float64(frameSize+4)
	case 1:
		s, v = e.meter.fetch, float64(responseSize(resp))
	default:
		return
	}
	s.mu.Lock()
	limit := s.limit
	s.mu.Unlock()
	if limit <= 0 {
		return
	}
	now := time.Now()
	d := s.observe(v, now)
	if d <= 0 {
		return
	}
	d = min(d, maxThrottle)
	if until := now.Add(d); until.After(cc.muteUntil) {
		cc.muteUntil = until
		if tr, ok := resp.(interface{ SetThrottle(int32) }); ok {
			tr.SetThrottle(int32(d / time.Millisecond))
		}
	}
}

// meterFetch counts the record bytes of a Fetch response.
func (cc *conn) meterFetch(fr *kmsg.FetchResponse, e *tenantEntry) {
	var total int
	var img *metadata.Image
	for i := range fr.Topics {
		st := &fr.Topics[i]
		n := 0
		for j := range st.Partitions {
			n += len(st.Partitions[j].RecordBatches)
		}
		if n == 0 {
			continue
		}
		total += n
		name := st.Topic
		if name == "" {
			if img == nil {
				img = cc.b.quorum.Image()
			}
			if t := img.TopicByID(st.TopicID); t != nil {
				name = t.Name
			}
		}
		cc.principalTopic(name)[1].Add(float64(n))
	}
	if e != nil && total > 0 {
		e.meter.bytesOut.Add(float64(total))
	}
}

// admitTenantConn counts a newly authenticated connection against its tenant's connection cap
// and returns why it is refused when the tenant is at it.
func (cc *conn) admitTenantConn(principal string) error {
	if cc.listener != nil && cc.listener.brokerOnly() || cc.tenantCache.conn != "" {
		return nil
	}
	tm := cc.b.tenants
	e := tm.current().byPrincipal[principal]
	if e == nil {
		return nil
	}
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if n := tm.conns[e.name]; e.plan.Connections > 0 && n >= int(e.plan.Connections) {
		return fmt.Errorf("tenant %q is at the %d connections per broker of its plan %q", e.name, e.plan.Connections, e.plan.Name)
	}
	tm.conns[e.name]++
	cc.tenantCache.conn = e.name
	return nil
}

// releaseTenantConn uncounts a closed connection.
func (cc *conn) releaseTenantConn() {
	name := cc.tenantCache.conn
	if name == "" {
		return
	}
	tm := cc.b.tenants
	tm.mu.Lock()
	if tm.conns[name]--; tm.conns[name] <= 0 {
		delete(tm.conns, name)
	}
	tm.mu.Unlock()
}

// tenantPartitionCheck refuses a CreateTopics or CreatePartitions that would take a tenant past its
// plan's partitions, counting what earlier topics of the request add.
type tenantPartitionCheck struct {
	img   *metadata.Image
	added map[string]int64
}

func (c *tenantPartitionCheck) take(topic string, partitions int64) error {
	ts, ok := c.img.TenantOfResource(topic)
	if !ok {
		return nil
	}
	plan := c.img.Plans[ts.Plan]
	if plan.Partitions <= 0 {
		return nil
	}
	if c.added == nil {
		c.added = map[string]int64{}
	}
	have := int64(0)
	for name, t := range c.img.Topics {
		for _, p := range ts.Prefixes {
			if strings.HasPrefix(name, p) {
				have += int64(len(t.Partitions))
				break
			}
		}
	}
	have += c.added[ts.Name]
	if have+partitions > int64(plan.Partitions) {
		return kafkaErr(kerr.PolicyViolation, fmt.Sprintf("tenant %q has %d partitions and its plan %q allows %d: %d more would exceed it",
			ts.Name, have, plan.Name, plan.Partitions, partitions))
	}
	c.added[ts.Name] += partitions
	return nil
}
