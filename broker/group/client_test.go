package group

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

// wireServer is just enough of a Kafka broker, on 127.0.0.1:0, for real
// clients to use the coordinator: ApiVersions, Metadata, FindCoordinator,
// ListOffsets and an always-empty Fetch, with every group API handed to the
// Coordinator exactly as the broker's request layer will. Topics have no
// records.
type wireServer struct {
	t      *testing.T
	c      *Coordinator
	ln     net.Listener
	host   string
	port   int32
	topics map[string]int32 // topic -> partitions

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	seen   map[string]map[int16]bool // API name -> versions requested
}

// versionsSeen returns the versions clients used for API name.
func (s *wireServer) versionsSeen(name string) []int16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []int16
	for v := range s.seen[name] {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// serverVersions caps what the server advertises: the group APIs at the
// versions this package serves, the rest below topic ids.
var serverVersions = map[int16]int16{
	0:  0,  // Produce: not served
	1:  11, // Fetch
	2:  5,  // ListOffsets
	3:  9,  // Metadata
	8:  9,  // OffsetCommit
	9:  9,  // OffsetFetch
	10: 4,  // FindCoordinator
	11: 9,  // JoinGroup
	12: 4,  // Heartbeat
	13: 5,  // LeaveGroup
	14: 5,  // SyncGroup
	15: 5,  // DescribeGroups
	16: 5,  // ListGroups
	18: 4,  // ApiVersions
	42: 2,  // DeleteGroups
	47: 0,  // OffsetDelete
}

func startWireServer(t *testing.T, c *Coordinator, topics map[string]int32) *wireServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	s := &wireServer{t: t, c: c, ln: ln, host: host, port: int32(p), topics: topics, conns: map[net.Conn]struct{}{}, seen: map[string]map[int16]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *wireServer) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(int(s.port))) }

func (s *wireServer) close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *wireServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(conn)
	}
}

// serve answers one connection's requests in order, like a Kafka broker.
func (s *wireServer) serve(conn net.Conn) {
	defer s.wg.Done()
	defer conn.Close()
	ctx, cancel := context.WithCancel(WithClientInfo(s.ctx, "", conn.RemoteAddr().String()))
	defer cancel()
	r := bufio.NewReader(conn)
	for {
		var size [4]byte
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		buf := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		out, err := s.handle(ctx, buf)
		if err != nil {
			s.t.Logf("wire server: %v", err)
			return
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func (s *wireServer) handle(ctx context.Context, buf []byte) ([]byte, error) {
	if len(buf) < 10 {
		return nil, errors.New("short request header")
	}
	key := int16(binary.BigEndian.Uint16(buf))
	version := int16(binary.BigEndian.Uint16(buf[2:]))
	corr := binary.BigEndian.Uint32(buf[4:])
	idLen := int16(binary.BigEndian.Uint16(buf[8:]))
	body := buf[10:]
	clientID := ""
	if idLen > 0 {
		clientID, body = string(body[:idLen]), body[idLen:]
	}
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, fmt.Errorf("unknown api key %d", key)
	}
	req.SetVersion(version)
	if req.IsFlexible() { // request header v2: skip its tagged fields
		n, w := binary.Uvarint(body)
		body = body[w:]
		for range n {
			_, w = binary.Uvarint(body)
			body = body[w:]
			l, w := binary.Uvarint(body)
			body = body[w+int(l):]
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	s.mu.Lock()
	if s.seen[kmsg.NameForKey(key)] == nil {
		s.seen[kmsg.NameForKey(key)] = map[int16]bool{}
	}
	s.seen[kmsg.NameForKey(key)][version] = true
	s.mu.Unlock()
	ctx = WithClientInfo(ctx, clientID, clientFrom(ctx).host)
	resp, err := s.dispatch(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 4, 64)
	out = binary.BigEndian.AppendUint32(out, corr)
	if resp.IsFlexible() && key != 18 { // ApiVersions always answers header v0
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, nil
}

func (s *wireServer) dispatch(ctx context.Context, kreq kmsg.Request) (kmsg.Response, error) {
	switch req := kreq.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		for k, max := range serverVersions {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MaxVersion: max})
		}
		return resp, nil
	case *kmsg.MetadataRequest:
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: s.host, Port: s.port}}
		resp.ClusterID = kmsg.StringPtr("group-test")
		names := []string{}
		if req.Topics == nil {
			for t := range s.topics {
				names = append(names, t)
			}
		}
		for _, t := range req.Topics {
			names = append(names, *t.Topic)
		}
		for _, name := range names {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = kmsg.StringPtr(name)
			n, ok := s.topics[name]
			if !ok {
				mt.ErrorCode = 3
			}
			for p := range n {
				mp := kmsg.NewMetadataResponseTopicPartition()
				mp.Partition, mp.Leader, mp.Replicas, mp.ISR = p, 0, []int32{0}, []int32{0}
				mt.Partitions = append(mt.Partitions, mp)
			}
			resp.Topics = append(resp.Topics, mt)
		}
		return resp, nil
	case *kmsg.FindCoordinatorRequest:
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		resp.NodeID, resp.Host, resp.Port = 0, s.host, s.port
		for _, k := range req.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, kmsg.FindCoordinatorResponseCoordinator{Key: k, NodeID: 0, Host: s.host, Port: s.port})
		}
		return resp, nil
	case *kmsg.ListOffsetsRequest:
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewListOffsetsResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.Offset, rp.Timestamp = p.Partition, 0, -1
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	case *kmsg.FetchRequest:
		// Nothing is ever produced: wait out MaxWait, then answer empty.
		select {
		case <-time.After(time.Duration(min(req.MaxWaitMillis, 100)) * time.Millisecond):
		case <-ctx.Done():
		}
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, t := range req.Topics {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	case *kmsg.JoinGroupRequest:
		return s.c.JoinGroup(ctx, req), nil
	case *kmsg.SyncGroupRequest:
		return s.c.SyncGroup(ctx, req), nil
	case *kmsg.HeartbeatRequest:
		return s.c.Heartbeat(ctx, req), nil
	case *kmsg.LeaveGroupRequest:
		return s.c.LeaveGroup(ctx, req), nil
	case *kmsg.OffsetCommitRequest:
		return s.c.OffsetCommit(ctx, req), nil
	case *kmsg.OffsetFetchRequest:
		return s.c.OffsetFetch(ctx, req), nil
	case *kmsg.DescribeGroupsRequest:
		return s.c.DescribeGroups(ctx, req), nil
	case *kmsg.ListGroupsRequest:
		return s.c.ListGroups(ctx, req), nil
	case *kmsg.DeleteGroupsRequest:
		return s.c.DeleteGroups(ctx, req), nil
	case *kmsg.OffsetDeleteRequest:
		return s.c.OffsetDelete(ctx, req), nil
	}
	return nil, fmt.Errorf("unsupported request %s", kmsg.NameForKey(kreq.Key()))
}

func newGroupConsumer(t *testing.T, addr, group string, extra ...kgo.Opt) *kgo.Client {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics("t"),
		kgo.HeartbeatInterval(50 * time.Millisecond),
		kgo.SessionTimeout(2 * time.Second),
		kgo.RebalanceTimeout(2 * time.Second),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, extra...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	// Polling drives the group: joins, syncs and heartbeats run meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return cl
}

func TestRealClients(t *testing.T) {
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
		static   bool
	}{
		{"franz-go eager range", kgo.RangeBalancer(), false},
		{"franz-go cooperative-sticky", kgo.CooperativeStickyBalancer(), false},
		{"franz-go static members", kgo.RoundRobinBalancer(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			cfg := testConfig()
			c := startCoordinator(t, cfg, newMemStore())
			srv := startWireServer(t, c, map[string]int32{"t": 4})
			adm := kadm.NewClient(newAdminClient(t, srv.addr()))

			opts := func(i int) []kgo.Opt {
				o := []kgo.Opt{kgo.Balancers(tc.balancer)}
				if tc.static {
					o = append(o, kgo.InstanceID(fmt.Sprintf("instance-%d", i)))
				}
				return o
			}
			a := newGroupConsumer(t, srv.addr(), "cg", opts(1)...)
			b := newGroupConsumer(t, srv.addr(), "cg", opts(2)...)

			testutil.WaitFor(t, 10*time.Second, `stableWith(ctx, adm, "cg", 2, 4)`, func() bool { return stableWith(ctx, adm, "cg", 2, 4) })

			// Offsets committed by a member land in the coordinator.
			require.NoError(t, a.CommitRecords(ctx, &kgo.Record{Topic: "t", Partition: 0, Offset: 41, LeaderEpoch: -1}))
			testutil.WaitFor(t, 5*time.Second, `c.CommittedOffsets("cg")["t"][0] == 42`, func() bool { return c.CommittedOffsets("cg")["t"][0] == 42 })
			fetched, err := adm.FetchOffsets(ctx, "cg")
			require.NoError(t, err)
			o, ok := fetched.Lookup("t", 0)
			require.True(t, ok)
			require.Equal(t, int64(42), o.At)

			// One member leaves (static members are removed by the admin
			// API, since they do not leave on close): the other takes all.
			if tc.static {
				resp, err := adm.LeaveGroup(ctx, kadm.LeaveGroup("cg").InstanceIDs("instance-2"))
				require.NoError(t, err)
				require.NoError(t, resp.Error())
			}
			b.Close()
			testutil.WaitFor(t, 10*time.Second, `stableWith(ctx, adm, "cg", 1, 4)`, func() bool { return stableWith(ctx, adm, "cg", 1, 4) })

			listed, err := adm.ListGroups(ctx)
			require.NoError(t, err)
			require.Contains(t, listed.Groups(), "cg")

			// Admin commits to a group without members, then delete it.
			offsets := kadm.Offsets{}
			offsets.AddOffset("t", 1, 7, -1)
			committed, err := adm.CommitOffsets(ctx, "admin", offsets)
			require.NoError(t, err)
			require.NoError(t, committed.Error())
			deleted, err := adm.DeleteGroups(ctx, "admin", "cg")
			require.NoError(t, err)
			require.NoError(t, deleted["admin"].Err)
			require.Error(t, deleted["cg"].Err, "cg still has a member")
		})
	}
}

func newAdminClient(t *testing.T, addr string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// stableWith reports whether group is Stable with the given number of
// members sharing the given number of partitions, as an admin sees it.
func stableWith(ctx context.Context, adm *kadm.Client, group string, members, partitions int) bool {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g := described[group]
	if g.State != "Stable" || len(g.Members) != members {
		return false
	}
	total := 0
	for _, m := range g.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		for _, t := range ca.Topics {
			total += len(t.Partitions)
		}
	}
	return total == partitions
}
