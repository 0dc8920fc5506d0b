package broker

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Replication throttles, Kafka's ReplicationQuotaManager: the dynamic broker
// configs leader.replication.throttled.rate and follower.replication.throttled.rate
// (bytes/s, per broker or as the cluster default) bound the replication traffic
// of throttled replicas, on the leader (what its fetch responses carry) and on
// the follower (what its fetcher asks for). A replica is throttled when it is
// not in the ISR and either the topic lists it (leader.replication.throttled.replicas
// with the leader's id, follower.replication.throttled.replicas with the
// follower's, or "*") or it is being added by a reassignment: Sluice throttles
// exactly the reassigning replicas itself, as Kafka's reassign tool does with
// --throttle, so the automatic balancer's moves are throttled too. In-sync
// followers are never throttled, as in Kafka, so acks=all produces do not wait
// for the throttle.

const (
	leaderThrottleRate   = "leader.replication.throttled.rate"
	followerThrottleRate = "follower.replication.throttled.rate"
	// defaultReplicationThrottle is the rates' default, 10 MiB/s. Kafka's is unlimited; Sluice's
	// automatic balancer moves replicas on its own, so its copies are bounded out of the box
	// (docs/benchmarks.md, "Partition moves under client load" and "Scaling drill"). Only replicas
	// being added or listed in the throttled-replicas topic configs are slowed; in-sync followers never.
	defaultReplicationThrottle = 10 << 20
)

func init() {
	for _, name := range []string{leaderThrottleRate, followerThrottleRate} {
		registerBrokerConfig(brokerConfigDef{name: name, typ: kmsg.ConfigTypeLong, scope: scopeCluster,
			static: func(*Config) string { return i64(defaultReplicationThrottle) }, validate: intRange(1, maxInt64)})
	}
}

// byteRate is a token bucket of bytes per second with a burst of one second, as
// Kafka's quota windows allow a second's worth at once.
type byteRate struct {
	mu     sync.Mutex
	rate   float64 // bytes/s; 0: unlimited
	tokens float64
	last   time.Time
}

// setRate changes the rate; maxInt64 (Kafka's default) means unlimited.
func (r *byteRate) setRate(v int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v <= 0 || v == maxInt64 {
		r.rate = 0
		return
	}
	r.rate = float64(v)
	r.tokens = math.Min(r.tokens, r.rate)
}

func (r *byteRate) refillLocked(now time.Time) {
	if !r.last.IsZero() {
		r.tokens = math.Min(r.rate, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
}

// limited reports whether a rate is set.
func (r *byteRate) limited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rate > 0
}

// exceeded reports whether the bytes recorded used up the budget for now, and
// how long until some is back.
func (r *byteRate) exceeded(now time.Time) (bool, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rate == 0 {
		return false, 0
	}
	r.refillLocked(now)
	if r.tokens > 0 {
		return false, 0
	}
	return true, time.Duration(-r.tokens/r.rate*float64(time.Second)) + time.Millisecond
}

// record takes n bytes from the budget (it may go negative: one fetch may
// carry more than is left, and the next waits longer).
func (r *byteRate) record(now time.Time, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rate == 0 {
		return
	}
	r.refillLocked(now)
	r.tokens -= float64(n)
}

// maxFetch is how many bytes a throttled fetch asks for per partition: a tenth
// of a second's worth (16 KiB to def), so that a throttled copy arrives in small
// steps and does not hold up the fetches of in-sync partitions sharing the
// fetcher (acks=all waits for those).
func (r *byteRate) maxFetch(def int32) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rate == 0 {
		return def
	}
	return int32(min(max(r.rate/10, 16<<10), float64(def)))
}

// replicationThrottles are a broker's leader and follower throttles.
type replicationThrottles struct {
	leader, follower byteRate
}

// watchReplicationThrottles applies the throttle rates now and whenever the
// metadata log changes them.
func (b *Broker) watchReplicationThrottles() {
	b.onBrokerConfigChange([]string{leaderThrottleRate, followerThrottleRate}, func(v map[string]string) {
		for name, r := range map[string]*byteRate{leaderThrottleRate: &b.throttles.leader, followerThrottleRate: &b.throttles.follower} {
			if n, err := strconv.ParseInt(v[name], 10, 64); err == nil {
				r.setRate(n)
			}
		}
	})
}

var (
	leaderThrottledReplicasDef   = topicConfigDefByName("leader.replication.throttled.replicas")
	followerThrottledReplicasDef = topicConfigDefByName("follower.replication.throttled.replicas")
)

// replicaThrottled reports whether replication of p to follower is throttled on
// the side of broker side (the leader's id for the leader throttle, the
// follower's for the follower throttle): the follower is not in sync, and the
// topic lists side for p or the follower is being added by a reassignment.
func (b *Broker) replicaThrottled(p *partition, follower, side int32, def *topicConfigDef) bool {
	p.mu.Lock()
	inSync := slices.Contains(p.isr, follower)
	p.mu.Unlock()
	if inSync {
		return false
	}
	if mp, ok := b.quorum.Image().Partition(p.topic.name, p.index); ok && slices.Contains(mp.AddingReplicas, follower) {
		return true
	}
	b.mu.RLock()
	list, _ := b.topicConfigValue(p.topic.configs, def)
	b.mu.RUnlock()
	return throttleListed(list, p.index, side)
}

// throttleListed reports whether a throttled replicas list ("*" or
// partition:broker pairs) names partition on broker.
func throttleListed(list string, partition, broker int32) bool {
	list = strings.TrimSpace(list)
	if list == "*" {
		return true
	}
	want := strconv.Itoa(int(partition)) + ":" + strconv.Itoa(int(broker))
	for _, e := range strings.Split(list, ",") {
		if strings.ReplaceAll(strings.TrimSpace(e), " ", "") == want {
			return true
		}
	}
	return false
}

// leaderThrottle reports whether a replica fetch of p by follower must go
// without data now (leader.replication.throttled.rate used up), and whether it
// is throttled at all (its bytes are then recorded).
func (b *Broker) leaderThrottle(p *partition, follower int32) (skip, throttled bool) {
	if !b.throttles.leader.limited() || !b.replicaThrottled(p, follower, b.cfg.NodeID, leaderThrottledReplicasDef) {
		return false, false
	}
	over, _ := b.throttles.leader.exceeded(time.Now())
	return over, true
}
