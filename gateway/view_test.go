package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestSingleBrokerClient(t *testing.T) {
	for _, c := range []struct {
		name, version string
		single        bool
	}{
		{"kgo", "1.22.3", false},
		{"sarama", "1.45.0", false},
		{"apache-kafka-java", "3.9.0", false},
		{"", "", false},
		{"librdkafka", "2.0.2", true},
		{"librdkafka", "1.9.2", true},
		{"librdkafka", "2.9.0", true},
		{"librdkafka", "2.10.0", false},
		{"librdkafka", "2.12.1-RC1", false},
		{"librdkafka", "3.0.0", false},
		{"librdkafka", "garbage", true},
		{"confluent-kafka-python", "2.0.2-rdkafka-2.0.2", true},
		{"confluent-kafka-python", "2.11.0-rdkafka-2.11.0", false},
		{"confluent-kafka-go", "2.3.0", true}, // librdkafka's version not told
		{"my-app", "1.0-librdkafka-2.0.2", true},
	} {
		require.Equal(t, c.single, singleBrokerClient(c.name, c.version), "%s %s", c.name, c.version)
	}
}

// TestViewPerClient: a client is shown the cluster's brokers, each at the
// gateway's address, with the real leaders and coordinators; a client built
// on a librdkafka that cannot tell brokers at one address apart is shown the
// gateway as the only broker.
func TestViewPerClient(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	ctx := testCtx(t, time.Minute)
	host, port, err := net.SplitHostPort(g.Addr())
	require.NoError(t, err)

	for _, sw := range []struct {
		name, version string
		single        bool
	}{{"kgo", "1.0.0", false}, {"librdkafka", "2.10.0", false}, {"librdkafka", "2.0.2", true}} {
		t.Run(sw.name+"-"+sw.version, func(t *testing.T) {
			cl := newClient(t, g.Addr(), kgo.SoftwareNameAndVersion(sw.name, sw.version))
			md := kmsg.NewPtrMetadataRequest()
			md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("a")}}
			mr, err := md.RequestWith(ctx, cl)
			require.NoError(t, err)
			fc := kmsg.NewPtrFindCoordinatorRequest()
			fc.CoordinatorKey, fc.CoordinatorKeys = "g1", []string{"g1"}
			fr, err := fc.RequestWith(ctx, cl)
			require.NoError(t, err)
			dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
			require.NoError(t, err)
			require.Len(t, mr.Topics, 1)
			require.Len(t, fr.Coordinators, 1)
			coord := fr.Coordinators[0]
			require.Zero(t, coord.ErrorCode)
			require.Equal(t, host, coord.Host)
			require.Equal(t, port, fmt.Sprint(coord.Port))

			if sw.single {
				require.Equal(t, []kmsg.MetadataResponseBroker{g.self()}, mr.Brokers)
				require.Equal(t, int32(100), mr.ControllerID)
				for _, p := range mr.Topics[0].Partitions {
					require.Equal(t, int32(100), p.Leader)
				}
				require.Equal(t, int32(100), coord.NodeID)
				require.Len(t, dc.Brokers, 1)
				require.Equal(t, int32(100), dc.Brokers[0].NodeID)
				return
			}
			require.Len(t, mr.Brokers, 3)
			require.Len(t, dc.Brokers, 3)
			ids := map[int32]bool{}
			for _, b := range mr.Brokers {
				require.Equal(t, host, b.Host)
				require.Equal(t, port, fmt.Sprint(b.Port))
				ids[b.NodeID] = true
			}
			for _, b := range dc.Brokers {
				require.True(t, ids[b.NodeID], "DescribeCluster lists broker %d as Metadata does", b.NodeID)
				require.Equal(t, host, b.Host)
				require.Equal(t, port, fmt.Sprint(b.Port))
			}
			for _, p := range mr.Topics[0].Partitions {
				require.Equal(t, c.LeaderFor("a", p.Partition), p.Leader)
			}
			require.Equal(t, c.CoordinatorFor("g1"), coord.NodeID)
		})
	}
}

// TestRequestToMovedLeader sends a Produce for a partition on the client's
// connection to the broker that led it before it moved: the gateway routes by
// partition, not by connection, so it is written on the new leader.
func TestRequestToMovedLeader(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs(), func(cfg *Config) { cfg.MetadataMaxAge = time.Hour })
	cl := rawClient(t, g.Addr())
	ctx := testCtx(t, time.Minute)
	old := c.LeaderFor("a", 2)
	produce := func() *kmsg.ProduceResponse {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 10000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "a",
			Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 2, Records: batch(t, "x")}}}}
		resp, err := req.RequestWith(ctx, cl.Broker(int(old)))
		require.NoError(t, err)
		return resp
	}
	require.Zero(t, produce().Topics[0].Partitions[0].ErrorCode)
	require.NoError(t, c.MoveTopicPartition("a", 2, (old+1)%3))
	require.NotEqual(t, old, c.LeaderFor("a", 2))
	p := produce().Topics[0].Partitions[0]
	require.Zero(t, p.ErrorCode)
	require.Equal(t, int64(1), p.BaseOffset)
}

// TestRawFetch: a fetch answered by one broker is passed on as the broker
// encoded it only when nothing in it must be rewritten.
func TestRawFetch(t *testing.T) {
	clean := func() *kmsg.FetchResponse {
		r := kmsg.NewPtrFetchResponse()
		r.SetVersion(12)
		p := kmsg.NewFetchResponseTopicPartition()
		p.RecordBatches = []byte{}
		r.Topics = []kmsg.FetchResponseTopic{{Topic: "a", Partitions: []kmsg.FetchResponseTopicPartition{p}}}
		return r
	}
	enc := []byte{1}
	require.NotNil(t, rawFetch(clean(), enc))
	require.Nil(t, rawFetch(clean(), nil))
	for name, spoil := range map[string]func(*kmsg.FetchResponse){
		"error":          func(r *kmsg.FetchResponse) { r.ErrorCode = 1 },
		"session":        func(r *kmsg.FetchResponse) { r.SessionID = 7 },
		"brokers":        func(r *kmsg.FetchResponse) { r.Brokers = []kmsg.FetchResponseBroker{{NodeID: 1}} },
		"partition":      func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].ErrorCode = 6 },
		"null records":   func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].RecordBatches = nil },
		"read replica":   func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].PreferredReadReplica = 2 },
		"current leader": func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].CurrentLeader.LeaderID = 2 },
	} {
		r := clean()
		spoil(r)
		require.Nil(t, rawFetch(r, enc), name)
	}
}

// TestFetchOneLeader fetches partitions of one leader (the request goes whole
// to it and its answer is passed on as encoded) and of several: the answers
// are the same.
func TestFetchOneLeader(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	cl := rawClient(t, g.Addr())
	ctx := testCtx(t, time.Minute)
	for p := int32(0); p < 6; p++ {
		require.NoError(t, c.MoveTopicPartition("a", p, 0))
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 10000
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "a",
			Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: p, Records: batch(t, fmt.Sprint(p))}}}}
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		require.Zero(t, resp.Topics[0].Partitions[0].ErrorCode)
	}
	fetch := func() *kmsg.FetchResponse {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		// MinBytes more than there is: every broker answers after MaxWait, so a
		// merged answer holds every partition's records
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 100, 1<<20, 1<<20
		ft := kmsg.FetchRequestTopic{Topic: "a"}
		for p := int32(5); p >= 0; p-- {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition, fp.PartitionMaxBytes = p, 1<<20
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		resp, err := req.RequestWith(ctx, cl)
		require.NoError(t, err)
		return resp
	}
	check := func(r *kmsg.FetchResponse) {
		require.Len(t, r.Topics, 1)
		require.Len(t, r.Topics[0].Partitions, 6)
		for i, p := range r.Topics[0].Partitions {
			require.Equal(t, int32(5-i), p.Partition)
			require.Zero(t, p.ErrorCode)
			require.Equal(t, int64(1), p.HighWatermark)
			require.Contains(t, string(p.RecordBatches), fmt.Sprint(p.Partition)) // the value produced
			next, ok := nextOffset(p.RecordBatches)
			require.True(t, ok)
			require.Equal(t, int64(1), next)
		}
	}
	check(fetch()) // one leader
	for p := int32(0); p < 6; p++ {
		require.NoError(t, c.MoveTopicPartition("a", p, p%3))
	}
	testutil.WaitFor(t, 30*time.Second, "the gateway sees three leaders", func() bool {
		leaders := map[int32]bool{}
		for p := int32(0); p < 6; p++ {
			id, _, _, _ := g.cluster.leader("a", p)
			leaders[id] = true
		}
		if len(leaders) < 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = g.cluster.refresh(ctx, 0)
		}
		return len(leaders) == 3
	})
	check(fetch()) // split over three and merged
}

// TestViewRealClients: Debian's kcat (librdkafka 2.0.2) lists the gateway as
// the one broker; sarama lists the cluster's three, all at the gateway.
func TestViewRealClients(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())

	out, _ := kcat(t, g.Addr(), "", "-L", "-J")
	var md struct {
		Brokers []struct {
			ID   int32  `json:"id"`
			Name string `json:"name"`
		} `json:"brokers"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &md), out)
	require.Len(t, md.Brokers, 1, out)
	require.Equal(t, int32(100), md.Brokers[0].ID)
	require.Equal(t, g.Addr(), md.Brokers[0].Name)

	scfg := sarama.NewConfig()
	scfg.Version = sarama.V2_8_0_0
	sc, err := sarama.NewClient([]string{g.Addr()}, scfg)
	require.NoError(t, err)
	defer sc.Close()
	brokers := sc.Brokers()
	require.Len(t, brokers, 3)
	for _, b := range brokers {
		require.Equal(t, g.Addr(), b.Addr())
	}
	leader, err := sc.Leader("a", 2)
	require.NoError(t, err)
	require.Equal(t, c.LeaderFor("a", 2), leader.ID())
}

// TestFindCoordinatorManyKeys: a FindCoordinator naming many keys is
// answered for every key, but makes the gateway look up at most
// maxCoordinatorLookups of them (the attack: one request, a lookup per key).
func TestFindCoordinatorManyKeys(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs())
	cl := rawClient(t, g.Addr())
	ctx := testCtx(t, time.Minute)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.SetVersion(4)
	for i := 0; i < 3*maxCoordinatorLookups; i++ {
		req.CoordinatorKeys = append(req.CoordinatorKeys, fmt.Sprintf("group-%d", i))
	}
	resp, err := req.RequestWith(ctx, cl.Broker(0))
	require.NoError(t, err)
	require.Len(t, resp.Coordinators, 3*maxCoordinatorLookups)
	for i, co := range resp.Coordinators {
		require.Equal(t, req.CoordinatorKeys[i], co.Key)
		require.Zero(t, co.ErrorCode)
		require.GreaterOrEqual(t, co.NodeID, int32(0))
		require.Less(t, co.NodeID, int32(3))
		if i < maxCoordinatorLookups {
			require.Equal(t, c.CoordinatorFor(co.Key), co.NodeID, "looked up: the real coordinator")
		}
	}
	g.cluster.mu.RLock()
	cached := len(g.cluster.coords)
	g.cluster.mu.RUnlock()
	require.LessOrEqual(t, cached, maxCoordinatorLookups)

	// a group answered without a lookup is still served: the gateway routes by group
	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.SetVersion(8)
	commit.Group, commit.Generation = req.CoordinatorKeys[len(req.CoordinatorKeys)-1], -1
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "a", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 3}}}}
	cr, err := commit.RequestWith(ctx, cl.Broker(int(resp.Coordinators[len(resp.Coordinators)-1].NodeID)))
	require.NoError(t, err)
	require.Zero(t, cr.Topics[0].Partitions[0].ErrorCode)
}

// TestOneBrokerView: with OneBrokerView (--per-broker-view=false) every
// client is shown the gateway as the one broker.
func TestOneBrokerView(t *testing.T) {
	c := startFake(t)
	g := startGateway(t, c.ListenAddrs(), func(cfg *Config) { cfg.OneBrokerView = true })
	ctx := testCtx(t, time.Minute)
	md := kmsg.NewPtrMetadataRequest()
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("a")}}
	mr, err := md.RequestWith(ctx, newClient(t, g.Addr()))
	require.NoError(t, err)
	require.Equal(t, []kmsg.MetadataResponseBroker{g.self()}, mr.Brokers)
	for _, p := range mr.Topics[0].Partitions {
		require.Equal(t, int32(100), p.Leader)
	}
}
