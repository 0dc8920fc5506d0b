package broker

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// QuotaConfig sets the windows client quotas are measured over, Kafka's names
// and defaults. The quotas themselves are in the metadata log, set with
// AlterClientQuotas (kadm, `sluice quotas set`).
type QuotaConfig struct {
	// QuotaWindowNum is the number of samples byte-rate and request quotas are
	// measured over, like Kafka's quota.window.num. Default 11.
	QuotaWindowNum int `yaml:"quota.window.num"`
	// QuotaWindowSizeSeconds is the length of one sample, like Kafka's
	// quota.window.size.seconds. Default 1.
	QuotaWindowSizeSeconds int `yaml:"quota.window.size.seconds"`
	// ControllerQuotaWindowNum is the number of samples of the controller
	// mutation quota's burst, like Kafka's controller.quota.window.num.
	// Default 11.
	ControllerQuotaWindowNum int `yaml:"controller.quota.window.num"`
	// ControllerQuotaWindowSizeSeconds is like Kafka's
	// controller.quota.window.size.seconds. Default 1.
	ControllerQuotaWindowSizeSeconds int `yaml:"controller.quota.window.size.seconds"`
}

func (c *QuotaConfig) applyDefaults() {
	setDefault(&c.QuotaWindowNum, 11)
	setDefault(&c.QuotaWindowSizeSeconds, 1)
	setDefault(&c.ControllerQuotaWindowNum, 11)
	setDefault(&c.ControllerQuotaWindowSizeSeconds, 1)
}

func (c *QuotaConfig) validate() error {
	for _, chk := range []struct {
		name string
		v    int
	}{
		{"quota.window.num", c.QuotaWindowNum},
		{"quota.window.size.seconds", c.QuotaWindowSizeSeconds},
		{"controller.quota.window.num", c.ControllerQuotaWindowNum},
		{"controller.quota.window.size.seconds", c.ControllerQuotaWindowSizeSeconds},
	} {
		if chk.v < 1 || chk.v > 3600 {
			return fmt.Errorf("%s: value out of range [1, 3600]", chk.name)
		}
	}
	return nil
}

// quotaManager enforces client quotas as Kafka does: usage is recorded per quota
// entity, and a client over its quota gets throttle_time_ms in the response while
// its connection is muted for that long. Quotas are looked up in a table rebuilt
// when the metadata image changes; without any quota nothing is recorded.
type quotaManager struct {
	cfg      QuotaConfig
	image    func() *metadata.Image
	table    atomic.Pointer[quotaTable]
	updateMu sync.Mutex

	mu        sync.Mutex
	sensors   map[sensorKey]*sensor
	series    int // sensors with metric series of their own
	lastSweep time.Time

	throttle *prometheus.CounterVec
	usage    *prometheus.CounterVec
}

// quotaTable holds the quotas of one metadata image by entity key.
type quotaTable struct {
	img    map[string]metadata.ClientQuota
	index  uint64          // of the metadata image
	epoch  uint64          // grows when the quotas change
	byType map[string]bool // quota keys set for some entity
}

// sensorKey is a quota kind and the entity usage is counted against, named as
// Kafka's quota metrics tag it: the user and client id of the entity whose quota
// applies, empty for a part the entity does not have.
type sensorKey struct {
	kind, user, clientID string
}

// sensor measures one entity's usage of one quota.
type sensor struct {
	mu     sync.Mutex
	limit  float64
	epoch  uint64 // the quota table the limit comes from
	rate   windowedRate
	bucket tokenBucket
	// metrics of this entity, resolved once
	throttleSeconds prometheus.Counter
	usage           prometheus.Counter
	ownSeries       bool
	lastUsed        atomic.Int64 // unix nanoseconds
	expired         atomic.Bool  // dropped by a sweep; connections look it up again
}

func newQuotaManager(cfg QuotaConfig, image func() *metadata.Image, reg prometheus.Registerer) *quotaManager {
	m := &quotaManager{
		cfg:     cfg,
		image:   image,
		sensors: map[sensorKey]*sensor{},
		throttle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_quota_throttle_seconds_total",
			Help: "Time clients were throttled for exceeding a quota, by quota (producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate) and the user and client id of the quota entity.",
		}, []string{"quota", "user", "client_id"}),
		usage: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_quota_usage_total",
			Help: "Usage counted against quotas (bytes for byte rates, percent-seconds of a thread for request_percentage, partitions for controller_mutation_rate), by quota and quota entity; rate() gives what the quota limits.",
		}, []string{"quota", "user", "client_id"}),
	}
	m.table.Store(&quotaTable{})
	reg.MustRegister(m.throttle, m.usage)
	return m
}

// current returns the quota table of the newest metadata image, rebuilding it
// when the image has changed since.
func (m *quotaManager) current() *quotaTable {
	img := m.image()
	t := m.table.Load()
	if t.index == img.Index {
		return t
	}
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	if t = m.table.Load(); t.index >= img.Index {
		return t
	}
	nt := &quotaTable{img: img.ClientQuotas, index: img.Index, epoch: t.epoch, byType: t.byType}
	if !sameQuotas(t.img, img.ClientQuotas) {
		nt.epoch++
		nt.byType = map[string]bool{}
		for _, cq := range img.ClientQuotas {
			for k := range cq.Values {
				nt.byType[k] = true
			}
		}
	}
	m.table.Store(nt)
	return nt
}

func sameQuotas(a, b map[string]metadata.ClientQuota) bool {
	if len(a) != len(b) {
		return false
	}
	for k, qa := range a {
		qb, ok := b[k]
		if !ok || len(qa.Values) != len(qb.Values) {
			return false
		}
		for vk, v := range qa.Values {
			if w, ok := qb.Values[vk]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// resolve finds the quota of kind that applies to user and clientID, in Kafka's
// order of precedence, and the sensor key its usage is counted under.
func (t *quotaTable) resolve(kind, user, clientID string) (float64, sensorKey, bool) {
	if !t.byType[kind] {
		return 0, sensorKey{}, false
	}
	u, c := &user, &clientID
	// Kafka's precedence: /users/<u>/clients/<c>, /users/<u>/clients/<default>,
	// /users/<u>, /users/<default>/clients/<c>, /users/<default>/clients/<default>,
	// /users/<default>, /clients/<c>, /clients/<default>.
	type part struct {
		present bool
		name    *string // nil: default
	}
	order := [][2]part{
		{{true, u}, {true, c}}, {{true, u}, {true, nil}}, {{true, u}, {false, nil}},
		{{true, nil}, {true, c}}, {{true, nil}, {true, nil}}, {{true, nil}, {false, nil}},
		{{false, nil}, {true, c}}, {{false, nil}, {true, nil}},
	}
	for _, o := range order {
		var e metadata.QuotaEntity
		if o[1].present {
			e = append(e, metadata.QuotaEntityPart{Type: metadata.QuotaEntityClientID, Name: o[1].name})
		}
		if o[0].present {
			e = append(e, metadata.QuotaEntityPart{Type: metadata.QuotaEntityUser, Name: o[0].name})
		}
		cq, ok := t.img[e.Key()]
		if !ok {
			continue
		}
		v, ok := cq.Values[kind]
		if !ok {
			continue
		}
		key := sensorKey{kind: kind}
		if o[0].present {
			key.user = user
		}
		if o[1].present {
			key.clientID = clientID
		}
		return v, key, true
	}
	return 0, sensorKey{}, false
}

// userName is the name of a principal as quota entities name users:
// "User:alice" is "alice".
func userName(principal string) string {
	if i := strings.IndexByte(principal, ':'); i >= 0 {
		return principal[i+1:]
	}
	return principal
}

// sensorFor returns the sensor of kind for a connection's user and client id,
// or nil when no quota of that kind applies.
func (m *quotaManager) sensorFor(kind, principal, clientID string) *sensor {
	t := m.current()
	if len(t.byType) == 0 {
		return nil
	}
	limit, key, ok := t.resolve(kind, userName(principal), clientID)
	if !ok {
		return nil
	}
	now := time.Now()
	m.mu.Lock()
	if since := now.Sub(m.lastSweep); since >= sensorSweepEvery || (len(m.sensors) >= maxSensors && since >= time.Second) {
		m.sweep(now)
	}
	s := m.sensors[key]
	if s == nil {
		if len(m.sensors) >= maxSensors {
			// Entities past the cap share one sensor per quota: they are
			// throttled together, never less than alone.
			key = sensorKey{kind: kind, user: overflowLabel, clientID: overflowLabel}
			s = m.sensors[key]
		}
	}
	if s == nil {
		s = &sensor{}
		if m.series < maxSensorSeries || key.user == overflowLabel {
			s.throttleSeconds = m.throttle.WithLabelValues(key.kind, key.user, key.clientID)
			s.usage = m.usage.WithLabelValues(key.kind, key.user, key.clientID)
			s.ownSeries = key.user != overflowLabel
			if s.ownSeries {
				m.series++
			}
		} else {
			s.throttleSeconds = m.throttle.WithLabelValues(key.kind, overflowLabel, overflowLabel)
			s.usage = m.usage.WithLabelValues(key.kind, overflowLabel, overflowLabel)
		}
		window := time.Duration(m.cfg.QuotaWindowSizeSeconds) * time.Second
		s.rate.init(m.cfg.QuotaWindowNum, window)
		m.sensors[key] = s
	}
	s.lastUsed.Store(now.UnixNano())
	m.mu.Unlock()
	s.mu.Lock()
	if s.epoch != t.epoch || s.limit != limit {
		s.limit, s.epoch = limit, t.epoch
		if kind == metadata.QuotaControllerMutationRate {
			burst := limit * float64(m.cfg.ControllerQuotaWindowNum*m.cfg.ControllerQuotaWindowSizeSeconds)
			s.bucket.configure(limit, burst)
		}
	}
	s.mu.Unlock()
	return s
}

// Bounds on the sensors a broker keeps, since client ids are the client's to
// choose: idle sensors are dropped, as Kafka expires quota sensors, and past
// the caps entities share a sensor or a metric series labelled "_other".
const (
	sensorIdleExpiry = 10 * time.Minute
	sensorSweepEvery = time.Minute
	maxSensors       = 20000
	maxSensorSeries  = 1000
	overflowLabel    = "_other"
)

// sweep drops sensors idle for sensorIdleExpiry, with their metric series.
// m.mu is held.
func (m *quotaManager) sweep(now time.Time) {
	m.lastSweep = now
	for k, s := range m.sensors {
		if now.Sub(time.Unix(0, s.lastUsed.Load())) < sensorIdleExpiry {
			continue
		}
		delete(m.sensors, k)
		s.expired.Store(true)
		if s.ownSeries {
			m.throttle.DeleteLabelValues(k.kind, k.user, k.clientID)
			m.usage.DeleteLabelValues(k.kind, k.user, k.clientID)
			m.series--
		}
	}
}

// quotaKindIndex numbers the quota kinds for a connection's sensor cache.
var quotaKindIndex = map[string]int{
	metadata.QuotaProducerByteRate: 0, metadata.QuotaConsumerByteRate: 1,
	metadata.QuotaRequestPercentage: 2, metadata.QuotaControllerMutationRate: 3,
}

// quotaCache holds the sensors a connection's requests are counted against,
// resolved once per quota change, user and client id instead of per request.
type quotaCache struct {
	valid               bool
	epoch               uint64
	principal, clientID string
	resolved            [4]bool
	sensors             [4]*sensor
}

// quotaSensor returns the connection's sensor of kind, or nil when no quota of
// that kind applies to it.
func (cc *conn) quotaSensor(kind string) *sensor {
	m, c := cc.b.quotas, &cc.quotaCache
	t := m.current()
	if !c.valid || c.epoch != t.epoch || c.principal != cc.principal || c.clientID != cc.clientID {
		*c = quotaCache{valid: true, epoch: t.epoch, principal: cc.principal, clientID: cc.clientID}
	}
	i := quotaKindIndex[kind]
	if s := c.sensors[i]; c.resolved[i] && (s == nil || !s.expired.Load()) {
		return s
	}
	s := m.sensorFor(kind, cc.principal, cc.clientID)
	c.resolved[i], c.sensors[i] = true, s
	return s
}

// record counts value against the sensor's windowed rate and returns how long
// the client must be throttled, Kafka's formula: (rate - limit) / limit times
// the window the rate is measured over, at most the whole window.
func (s *sensor) record(value float64, now time.Time) time.Duration {
	s.lastUsed.Store(now.UnixNano())
	s.usage.Add(value)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate.record(value, now)
	rate, window := s.rate.measure(now)
	if rate <= s.limit {
		return 0
	}
	d := time.Duration((rate - s.limit) / s.limit * float64(window))
	return min(d, s.rate.span())
}

// windowedRate is Kafka's SampledStat Rate: a ring of samples, each one window
// long; the rate is the total of the live samples over the time they span.
// Kafka measures over at least all but one window, so a new client's first
// burst may reach ten windows' worth; that burst then leaves the window all at
// once and invites the next, so throughput swings with a period of
// quota.window.num windows. Sluice measures over at least one window: the first
// burst is one window's worth and throttled throughput stays even.
type windowedRate struct {
	window  time.Duration
	samples []rateSample
	current int
}

type rateSample struct {
	start time.Time
	total float64
}

func (r *windowedRate) init(n int, window time.Duration) {
	r.window = window
	r.samples = make([]rateSample, n)
}

func (r *windowedRate) span() time.Duration { return r.window * time.Duration(len(r.samples)) }

func (r *windowedRate) record(v float64, now time.Time) {
	cur := &r.samples[r.current]
	if cur.start.IsZero() {
		cur.start = now
	} else if now.Sub(cur.start) >= r.window {
		r.current = (r.current + 1) % len(r.samples)
		cur = &r.samples[r.current]
		*cur = rateSample{start: now}
	}
	cur.total += v
}

// measure returns the rate per second and the window it is measured over.
func (r *windowedRate) measure(now time.Time) (float64, time.Duration) {
	expire := r.span()
	var total float64
	oldest := now
	for i := range r.samples {
		s := &r.samples[i]
		if s.start.IsZero() {
			continue
		}
		if now.Sub(s.start) >= expire {
			*s = rateSample{}
			continue
		}
		total += s.total
		if s.start.Before(oldest) {
			oldest = s.start
		}
	}
	elapsed := now.Sub(oldest)
	full := int(elapsed / r.window)
	if minFull := 1; full < minFull {
		elapsed += time.Duration(minFull-full) * r.window
	}
	return total / elapsed.Seconds(), elapsed
}

// tokenBucket is KIP-599's controller mutation quota: rate tokens per second
// up to burst; a mutation takes its tokens even past zero, and while the bucket
// is below zero further mutations are refused.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) configure(rate, burst float64) {
	b.rate, b.burst = rate, burst
	if b.last.IsZero() {
		b.tokens, b.last = burst, time.Now()
	}
	b.tokens = min(b.tokens, burst)
}

func (b *tokenBucket) refill(now time.Time) {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
}

// throttled returns how long until the bucket is back at zero, 0 if it is not
// below zero.
func (s *sensor) throttled(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bucket.refill(now)
	if s.bucket.tokens >= 0 {
		return 0
	}
	return time.Duration(-s.bucket.tokens / s.bucket.rate * float64(time.Second))
}

// take records n mutations and returns the resulting throttle time.
func (s *sensor) take(n float64, now time.Time) time.Duration {
	s.lastUsed.Store(now.UnixNano())
	s.usage.Add(n)
	s.mu.Lock()
	s.bucket.refill(now)
	s.bucket.tokens -= n
	s.mu.Unlock()
	return s.throttled(now)
}

// maxThrottle bounds a throttle time in a response.
const maxThrottle = time.Duration(math.MaxInt32) * time.Millisecond

// throttleResponse records a handled request against the connection's quotas:
// the request's size for Produce, the response's for Fetch and the handler's
// time for every request, then puts the longest throttle time in the response
// and mutes the connection for that long. Broker-to-broker requests are exempt.
func (cc *conn) throttleResponse(req kmsg.Request, resp kmsg.Response, frameSize int, t *requestTiming) {
	m := cc.b.quotas
	if len(m.current().byType) == 0 || resp == nil || cc.isBrokerRequest(req) {
		return
	}
	now := time.Now()
	var throttle time.Duration
	switch req.Key() {
	case 0:
		if s := cc.quotaSensor(metadata.QuotaProducerByteRate); s != nil {
			throttle = max(throttle, s.observe(float64(frameSize+4), now))
		}
	case 1:
		if s := cc.quotaSensor(metadata.QuotaConsumerByteRate); s != nil {
			throttle = max(throttle, s.observe(float64(responseSize(resp)), now))
		}
	}
	// ApiVersions is never throttled, as in Kafka: a client must be able to
	// open a connection.
	if s := cc.quotaSensor(metadata.QuotaRequestPercentage); s != nil && req.Key() != 18 {
		busy := t.handled.Sub(t.started) - t.remote
		throttle = max(throttle, s.observe(busy.Seconds()*100, now))
	}
	if mt := cc.mutationThrottle; mt > 0 {
		throttle = max(throttle, mt)
		cc.mutationThrottle = 0
	}
	if throttle <= 0 {
		return
	}
	throttle = min(throttle, maxThrottle)
	if tr, ok := resp.(interface{ SetThrottle(int32) }); ok {
		tr.SetThrottle(int32(throttle / time.Millisecond))
	}
	cc.muteUntil = now.Add(throttle)
}

// observe records usage and counts the throttle time it causes.
func (s *sensor) observe(v float64, now time.Time) time.Duration {
	d := s.record(v, now)
	if d > 0 {
		s.throttleSeconds.Add(d.Seconds())
	}
	return d
}

// responseSize is the encoded size of a response's body, what a fetch byte-rate
// quota counts.
func responseSize(resp kmsg.Response) int {
	n := responseSizeHint(resp)
	if n == 0 {
		return len(resp.AppendTo(nil))
	}
	return n
}

// isBrokerRequest reports whether req comes from another broker: anything on
// the inter-broker or a controller listener (replication, registration,
// heartbeats, forwarded admin requests), which quotas must never slow down (a
// muted peer connection would delay its heartbeats), as Kafka exempts its
// inter-broker listener; and broker requests on other listeners too.
func (cc *conn) isBrokerRequest(req kmsg.Request) bool {
	if cc.listener != nil && cc.listener.brokerOnly() {
		return true
	}
	switch r := req.(type) {
	case *kmsg.FetchRequest:
		return replicaID(r) >= 0
	case *kmsg.EnvelopeRequest:
		// A gateway's: the client request inside is counted as the client.
		return cc.b.isGatewayConn(cc)
	case *kmsg.AlterPartitionRequest, *kmsg.BrokerRegistrationRequest, *kmsg.BrokerHeartbeatRequest, *kmsg.AllocateProducerIDsRequest:
		return true
	}
	return false
}

// mute waits out a throttled connection's mute: nothing is read from it until
// its throttle time has passed, as Kafka mutes the channel.
func (cc *conn) mute() error {
	if cc.muteUntil.IsZero() {
		return nil
	}
	d := time.Until(cc.muteUntil)
	cc.muteUntil = time.Time{}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-cc.ctx.Done():
		return cc.ctx.Err()
	}
}
