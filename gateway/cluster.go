package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cluster is the gateway's view of the backend cluster: brokers, partition
// leaders, topic ids, the API versions the brokers serve, and the group and
// transaction coordinators it has looked up. It is refreshed periodically and
// whenever a request meets a leader or coordinator that moved.
type cluster struct {
	bootstrap []string
	dialer    *dialer
	metrics   *metrics

	mu          sync.RWMutex
	brokers     map[int32]string // node id -> host:port
	topics      map[string]*topicInfo
	ids         map[[16]byte]string
	versions    map[int16][2]int16 // key -> min, max the brokers serve
	coords      map[coordKey]int32
	refreshedAt time.Time

	ctlMu sync.Mutex
	ctl   *backend // the connection for the gateway's own requests
	next  int      // round-robin over candidates when ctl fails

	refreshMu sync.Mutex // one metadata refresh at a time
}

// topicInfo is a topic's partitions' leaders, -1 where there is none.
type topicInfo struct {
	id      [16]byte
	leaders []int32
}

// coordKey names a coordinator: a group (type 0) or transactional id (type 1).
type coordKey struct {
	typ int8
	key string
}

func newCluster(bootstrap []string, d *dialer, m *metrics) *cluster {
	return &cluster{bootstrap: bootstrap, dialer: d, metrics: m, brokers: map[int32]string{},
		topics: map[string]*topicInfo{}, ids: map[[16]byte]string{}, coords: map[coordKey]int32{}}
}

// candidates are the addresses to try for the gateway's own requests: the known
// brokers, then the bootstrap list.
func (c *cluster) candidates() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.brokers)+len(c.bootstrap))
	for _, a := range c.brokers {
		out = append(out, a)
	}
	return append(out, c.bootstrap...)
}

// control sends a request of the gateway's own (metadata, coordinators, API
// versions) to any reachable broker, trying the next one when a connection
// fails.
func (c *cluster) control(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	var last error
	for attempt := 0; attempt < 2*len(c.bootstrap)+4; attempt++ {
		b, err := c.controlConn(ctx)
		if err == nil {
			var resp kmsg.Response
			if resp, err = b.roundTrip(ctx, req); err == nil {
				return resp, nil
			}
			b.close(err)
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no broker answered %s: %w", kmsg.NameForKey(req.Key()), last)
}

func (c *cluster) controlConn(ctx context.Context) (*backend, error) {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.ctl != nil && c.ctl.usable() {
		return c.ctl, nil
	}
	if c.ctl != nil {
		c.ctl.retire()
		c.ctl = nil
	}
	cands := c.candidates()
	addr := cands[c.next%len(cands)]
	c.next++
	b, err := c.dialer.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.ctl = b
	return b, nil
}

// close ends the control connection.
func (c *cluster) close() {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if c.ctl != nil {
		c.ctl.close(errors.New("gateway stopping"))
		c.ctl = nil
	}
}

// loadVersions asks a broker for the API versions it serves.
func (c *cluster) loadVersions(ctx context.Context) error {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	req.ClientSoftwareName = "sluice-gateway"
	req.ClientSoftwareVersion = "1"
	resp, err := c.control(ctx, req)
	if err != nil {
		return err
	}
	ar := resp.(*kmsg.ApiVersionsResponse)
	if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
		return fmt.Errorf("ApiVersions: %w", err)
	}
	v := make(map[int16][2]int16, len(ar.ApiKeys))
	for _, k := range ar.ApiKeys {
		v[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	c.mu.Lock()
	c.versions = v
	c.mu.Unlock()
	return nil
}

// brokerVersions returns the brokers' version range for key.
func (c *cluster) brokerVersions(key int16) (lo, hi int16, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.versions[key]
	return v[0], v[1], ok
}

// refresh reloads the whole cluster's metadata. Concurrent callers share one
// request; a refresh younger than minAge is not repeated.
func (c *cluster) refresh(ctx context.Context, minAge time.Duration) error {
	start := time.Now()
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.RLock()
	fresh := c.refreshedAt.After(start) || time.Since(c.refreshedAt) < minAge
	c.mu.RUnlock()
	if fresh {
		return nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	if _, hi, ok := c.brokerVersions(3); ok && hi < 12 {
		req.SetVersion(hi)
	}
	resp, err := c.control(ctx, req)
	c.metrics.refreshes.WithLabelValues(result(err)).Inc()
	if err != nil {
		return err
	}
	c.apply(resp.(*kmsg.MetadataResponse), true)
	return nil
}

// apply takes what a Metadata response says about brokers and leaders. A
// response for all topics (full) also forgets topics that are gone.
func (c *cluster) apply(mr *kmsg.MetadataResponse, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(mr.Brokers) > 0 {
		brokers := make(map[int32]string, len(mr.Brokers))
		for _, b := range mr.Brokers {
			brokers[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
		}
		c.brokers = brokers
	}
	if full {
		c.topics = map[string]*topicInfo{}
		c.ids = map[[16]byte]string{}
		c.refreshedAt = time.Now()
	}
	for _, t := range mr.Topics {
		if t.Topic == nil {
			continue
		}
		if t.ErrorCode != 0 {
			if t.ErrorCode == kerr.UnknownTopicOrPartition.Code {
				delete(c.topics, *t.Topic)
			}
			continue
		}
		n := int32(0)
		for _, p := range t.Partitions {
			n = max(n, p.Partition+1)
		}
		ti := &topicInfo{id: t.TopicID, leaders: make([]int32, n)}
		for i := range ti.leaders {
			ti.leaders[i] = -1
		}
		for _, p := range t.Partitions {
			if p.ErrorCode == 0 || p.Leader >= 0 {
				ti.leaders[p.Partition] = p.Leader
			}
		}
		c.topics[*t.Topic] = ti
		if t.TopicID != ([16]byte{}) {
			c.ids[t.TopicID] = *t.Topic
		}
	}
}

// leader returns the leader of a partition and its address; ok is false when the
// gateway knows of no live leader. known is false when the topic is unknown.
func (c *cluster) leader(topic string, partition int32) (id int32, addr string, known, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t := c.topics[topic]
	if t == nil {
		return -1, "", false, false
	}
	if partition < 0 || int(partition) >= len(t.leaders) {
		return -1, "", false, false
	}
	id = t.leaders[partition]
	addr, ok = c.brokers[id]
	return id, addr, true, ok
}

// topicName resolves a topic id.
func (c *cluster) topicName(id [16]byte) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.ids[id]
	return n, ok
}

// brokerAddr is a broker's address.
func (c *cluster) brokerAddr(id int32) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a, ok := c.brokers[id]
	return a, ok
}

// brokerIDs lists the known brokers.
func (c *cluster) brokerIDs() []int32 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]int32, 0, len(c.brokers))
	for id := range c.brokers {
		out = append(out, id)
	}
	return out
}

// anyBroker is a broker for requests any broker serves (admin requests, which
// brokers forward to the controller), rotating over the known ones.
func (c *cluster) anyBroker(seq int) (int32, string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.brokers) == 0 {
		return -1, "", false
	}
	ids := make([]int32, 0, len(c.brokers))
	for id := range c.brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids) // so that successive seq values move on to the next broker
	id := ids[seq%len(ids)]
	return id, c.brokers[id], true
}

// coordinator finds the broker coordinating a group or transactional id,
// asking the cluster when it is not cached.
func (c *cluster) coordinator(ctx context.Context, k coordKey) (int32, string, error) {
	c.mu.RLock()
	id, ok := c.coords[k]
	addr, live := c.brokers[id]
	c.mu.RUnlock()
	if ok && live {
		return id, addr, nil
	}
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.SetVersion(3) // one key, KIP-699 batching not needed
	if _, hi, ok := c.brokerVersions(10); ok && hi < 3 {
		req.SetVersion(hi)
	}
	req.CoordinatorKey = k.key
	req.CoordinatorType = k.typ
	resp, err := c.control(ctx, req)
	if err != nil {
		return -1, "", err
	}
	fr := resp.(*kmsg.FindCoordinatorResponse)
	if err := kerr.ErrorForCode(fr.ErrorCode); err != nil {
		return -1, "", err
	}
	addr = net.JoinHostPort(fr.Host, strconv.Itoa(int(fr.Port)))
	c.mu.Lock()
	if len(c.coords) >= maxCachedCoordinators {
		clear(c.coords) // bounded: clients name any group or transactional id they like
	}
	c.coords[k] = fr.NodeID
	if _, ok := c.brokers[fr.NodeID]; !ok {
		c.brokers[fr.NodeID] = addr
	}
	c.mu.Unlock()
	return fr.NodeID, addr, nil
}

// maxCachedCoordinators bounds the coordinators the gateway remembers.
const maxCachedCoordinators = 100_000

// cachedCoordinator is the coordinator of k if the gateway knows it.
func (c *cluster) cachedCoordinator(k coordKey) (int32, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.coords[k]
	if _, live := c.brokers[id]; !live {
		return -1, false
	}
	return id, ok
}

// forgetCoordinator drops a cached coordinator that said it is not one.
func (c *cluster) forgetCoordinator(k coordKey) {
	c.mu.Lock()
	delete(c.coords, k)
	c.mu.Unlock()
}
