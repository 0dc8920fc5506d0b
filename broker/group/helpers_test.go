package group

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// sarama's metrics library starts a process-wide ticker on first use
	// and never stops it; everything else must be gone.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}

// memStore is an in-memory __consumer_offsets: one append-only log per
// partition, like the broker's real implementation.
type memStore struct {
	mu       sync.Mutex
	logs     map[int32][]Record
	failErr  error         // when set, Append fails with it
	loadGate chan struct{} // when set, Load waits for it to close
}

func newMemStore() *memStore { return &memStore{logs: make(map[int32][]Record)} }

func (s *memStore) Append(ctx context.Context, p int32, recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	for _, r := range recs {
		s.logs[p] = append(s.logs[p], Record{Key: append([]byte(nil), r.Key...), Value: cloneValue(r.Value), Txn: r.Txn})
	}
	return nil
}

func cloneValue(v []byte) []byte {
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

func (s *memStore) Load(p int32, fn func(Record) error) error {
	s.mu.Lock()
	gate := s.loadGate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	recs := append([]Record(nil), s.logs[p]...)
	s.mu.Unlock()
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	s.failErr = err
	s.mu.Unlock()
}

// records decodes everything appended to the partition of group.
func (s *memStore) records(t *testing.T, p int32) []decoded {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []decoded
	for _, r := range s.logs[p] {
		d, err := decodeRecord(r)
		require.NoError(t, err)
		out = append(out, d)
	}
	return out
}

var errStoreDown = errors.New("store down")

// testConfig has short timeouts and no initial rebalance delay, so that a
// single member's join completes at once.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.NumPartitions = 4
	cfg.MinSessionTimeout = time.Millisecond
	cfg.InitialRebalanceDelay = -1
	return cfg
}

// startCoordinator loads every partition and runs the coordinator until the
// test ends.
func startCoordinator(t *testing.T, cfg Config, store Store) *Coordinator {
	t.Helper()
	c := New(cfg, store, nil)
	for p := range cfg.NumPartitions {
		require.NoError(t, c.LoadPartition(context.Background(), p))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type joinOpts struct {
	version   int16
	member    string
	instance  string
	session   time.Duration
	rebalance time.Duration
	ptype     string
	protocols []protocol
}

func (o joinOpts) request(group string) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = o.version
	req.Group = group
	req.MemberID = o.member
	if o.instance != "" {
		req.InstanceID = kmsg.StringPtr(o.instance)
	}
	req.SessionTimeoutMillis = int32(cmpOr(o.session, 10*time.Second).Milliseconds())
	req.RebalanceTimeoutMillis = int32(cmpOr(o.rebalance, 10*time.Second).Milliseconds())
	req.ProtocolType = "consumer"
	if o.ptype != "" {
		req.ProtocolType = o.ptype
	}
	ps := o.protocols
	if ps == nil {
		ps = []protocol{{name: "range", metadata: consumerMeta("t1")}}
	}
	for _, p := range ps {
		rp := kmsg.NewJoinGroupRequestProtocol()
		rp.Name, rp.Metadata = p.name, p.metadata
		req.Protocols = append(req.Protocols, rp)
	}
	return req
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func consumerMeta(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 1
	m.Topics = topics
	return m.AppendTo(nil)
}

// joinAsync sends a JoinGroup on its own goroutine, as a client connection
// would, and returns where its response arrives.
func joinAsync(ctx context.Context, c *Coordinator, group string, o joinOpts) <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	req := o.request(group)
	go func() { ch <- c.JoinGroup(ctx, req) }()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no response within 5s")
		panic("unreachable")
	}
}

// joinFull performs the whole first join of a member: for v4+ dynamic
// members that is MEMBER_ID_REQUIRED followed by the real join.
func joinFull(ctx context.Context, t *testing.T, c *Coordinator, group string, o joinOpts) <-chan *kmsg.JoinGroupResponse {
	t.Helper()
	if o.member == "" && o.instance == "" && o.version >= 4 {
		resp := c.JoinGroup(ctx, o.request(group))
		require.Equal(t, int16(79), resp.ErrorCode, "MEMBER_ID_REQUIRED")
		require.NotEmpty(t, resp.MemberID)
		o.member = resp.MemberID
	}
	return joinAsync(ctx, c, group, o)
}

func syncAsync(ctx context.Context, c *Coordinator, group, member string, gen int32, version int16, assign map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = version
	req.Group, req.MemberID, req.Generation = group, member, gen
	for id, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = id, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- c.SyncGroup(ctx, req) }()
	return ch
}

func heartbeat(ctx context.Context, c *Coordinator, group, member string, gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = 4
	req.Group, req.MemberID, req.Generation = group, member, gen
	return c.Heartbeat(ctx, req).ErrorCode
}

func describe(ctx context.Context, t *testing.T, c *Coordinator, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 5
	req.Groups = []string{group}
	resp := c.DescribeGroups(ctx, req)
	require.Len(t, resp.Groups, 1)
	return resp.Groups[0]
}

// stableGroup brings n members (JoinGroup v5 unless o says otherwise) into
// a Stable generation and returns their member ids, leader first. For n > 1
// the coordinator needs an initial rebalance delay (delayConfig) so that all
// of them land in the first generation.
func stableGroup(ctx context.Context, t *testing.T, c *Coordinator, group string, n int, o joinOpts) (ids []string, gen int32) {
	t.Helper()
	o.version = cmpOrVersion(o.version)
	var chans []<-chan *kmsg.JoinGroupResponse
	for range n {
		chans = append(chans, joinFull(ctx, t, c, group, o))
	}
	var resps []*kmsg.JoinGroupResponse
	for _, ch := range chans {
		resps = append(resps, recv(t, ch))
	}
	leader := resps[0].LeaderID
	gen = resps[0].Generation
	for _, r := range resps {
		require.Zero(t, r.ErrorCode)
		require.Equal(t, gen, r.Generation)
		require.Equal(t, leader, r.LeaderID)
	}
	ids = []string{leader}
	for _, r := range resps {
		if r.MemberID != leader {
			ids = append(ids, r.MemberID)
		}
	}
	var syncs []<-chan *kmsg.SyncGroupResponse
	for _, id := range ids[1:] {
		syncs = append(syncs, syncAsync(ctx, c, group, id, gen, 4, nil))
	}
	assign := make(map[string][]byte)
	for _, id := range ids {
		assign[id] = []byte("assignment-" + id)
	}
	syncs = append(syncs, syncAsync(ctx, c, group, leader, gen, 4, assign))
	for _, ch := range syncs {
		require.Zero(t, recv(t, ch).ErrorCode)
	}
	return ids, gen
}

// delayConfig is testConfig with a short initial rebalance delay.
func delayConfig() Config {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = 100 * time.Millisecond
	return cfg
}

func cmpOrVersion(v int16) int16 {
	if v == 0 {
		return 5
	}
	return v
}
