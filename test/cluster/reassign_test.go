package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/chaos"
)

// startPartialCluster prepares n nodes with cfgYAML and starts the first `running` of them.
func startPartialCluster(t *testing.T, n, running int, cfgYAML string) *chaos.Cluster {
	t.Helper()
	require.NoError(t, binErr)
	cl, err := chaos.NewCluster(chaos.ClusterConfig{Bin: binPath, Dir: t.TempDir(), Brokers: n, BrokerConfig: cfgYAML})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(80))
		}
		cl.Close()
	})
	for id := int32(1); id <= int32(running); id++ {
		require.NoError(t, cl.Start(id))
	}
	ctx := testCtx(t, time.Minute)
	for id := int32(1); id <= int32(running); id++ {
		require.NoError(t, cl.WaitReady(ctx, id))
	}
	require.NoError(t, cl.WaitBrokers(ctx, 30*time.Second))
	return cl
}

// waitPartitions waits until a running node's view of topic satisfies cond.
func waitPartitions(t *testing.T, cl *chaos.Cluster, topic, what string, timeout time.Duration, cond func(map[int32]chaos.PartitionState) bool) chaos.View {
	t.Helper()
	var v chaos.View
	require.NoError(t, chaos.WaitFor(testCtx(t, timeout+10*time.Second), timeout, what, func(ctx context.Context) (bool, error) {
		var err error
		v, err = cl.AnyView(ctx, topic)
		if err != nil {
			return false, err
		}
		return cond(v.Partitions[topic]), nil
	}))
	return v
}

// partitionDirs lists the partition directories of topic in node id's data dir.
func partitionDirs(t *testing.T, cl *chaos.Cluster, id int32, topic string) []string {
	t.Helper()
	entries, err := os.ReadDir(cl.Node(id).DataDir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), topic+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestReassignWithKadm moves every partition of a topic onto the broker that held none of it, through
// kadm's AlterPartitionReassignments, while an acks=all producer writes: each leader leaves its
// partition. It checks ListPartitionReassignments, that the removed replicas deleted their data, that
// ElectLeaders answers as Kafka, and that every acknowledged record is read back once, in order.
func TestReassignWithKadm(t *testing.T) {
	cl := startPartialCluster(t, 4, 4, "flush: always\nauto.balance.enable: false\n")
	const topic = "moving"
	adm := kadm.NewClient(newClient(t, cl))
	ctx := testCtx(t, 3*time.Minute)
	// Partitions on brokers 1-3 only; broker 4 holds nothing of the topic.
	create := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for _, replicas := range [][]int32{{1, 2, 3}, {2, 3, 1}, {3, 1, 2}} {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = int32(len(rt.ReplicaAssignment)), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
	}
	minISR := "2"
	c := kmsg.NewCreateTopicsRequestTopicConfig()
	c.Name, c.Value = "min.insync.replicas", &minISR
	rt.Configs = append(rt.Configs, c)
	create.Topics = append(create.Topics, rt)
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "create "+topic, func(ctx context.Context) (bool, error) {
		r, err := create.RequestWith(ctx, newClient(t, cl))
		if err != nil {
			return false, err
		}
		err = kerr.ErrorForCode(r.Topics[0].ErrorCode)
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists), err
	}))
	require.NoError(t, cl.WaitHealthy(ctx, 30*time.Second, topic))

	prod := newProducer(t, newClient(t, cl), 0)
	for p := int32(0); p < 3; p++ {
		require.NoError(t, prod.produce(ctx, topic, p, 200))
	}
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamFailed := make(chan int, 3)
	for p := int32(0); p < 3; p++ {
		go func() { streamFailed <- prod.stream(streamCtx, topic, p) }()
	}

	// Bad requests: errors as Kafka's, nothing changes.
	bad := kadm.AlterPartitionAssignmentsReq{}
	bad.Assign(topic, 0, []int32{1, 1, 2})
	bad.Assign(topic, 1, []int32{1, 2, 99})
	bad.CancelAssign(topic, 2)
	bad.Assign("no-such-topic", 0, []int32{1})
	res, err := adm.AlterPartitionAssignments(ctx, bad)
	require.NoError(t, err)
	want := map[string]map[int32]error{topic: {0: kerr.InvalidReplicaAssignment, 1: kerr.InvalidReplicaAssignment, 2: kerr.NoReassignmentInProgress},
		"no-such-topic": {0: kerr.UnknownTopicOrPartition}}
	res.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		require.ErrorIs(t, r.Err, want[r.Topic][r.Partition], "%s-%d", r.Topic, r.Partition)
	})

	// Each partition's leader (its first replica) is replaced by broker 4, which becomes the
	// preferred leader: leadership leaves the old leader when the move completes.
	before := viewOf(t, cl, topic).Partitions[topic]
	req := kadm.AlterPartitionAssignmentsReq{}
	targets := map[int32][]int32{}
	for p, st := range before {
		target := append([]int32{4}, slices.DeleteFunc(slices.Clone(st.Replicas), func(id int32) bool { return id == st.Leader })...)
		targets[p] = target
		req.Assign(topic, p, target)
	}
	res, err = adm.AlterPartitionAssignments(ctx, req)
	require.NoError(t, err)
	res.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		require.NoError(t, r.Err, "%s-%d", r.Topic, r.Partition)
	})
	all3 := kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}}
	listed, err := adm.ListPartitionReassignments(ctx, all3)
	require.NoError(t, err)
	listed.Each(func(r kadm.ListPartitionReassignmentsResponse) {
		require.Equal(t, []int32{4}, r.AddingReplicas, "%s-%d", r.Topic, r.Partition)
		require.Len(t, r.RemovingReplicas, 1)
	})
	t.Logf("%d reassignments listed right after the request", len(listed[topic]))

	waitPartitions(t, cl, topic, "every partition on its target replicas, fully in sync, led by broker 4", 90*time.Second,
		func(ps map[int32]chaos.PartitionState) bool {
			for p, target := range targets {
				st := ps[p]
				if !slices.Equal(st.Replicas, target) || len(st.ISR) != 3 || st.Leader != 4 {
					return false
				}
			}
			return true
		})
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "no reassignment listed", func(ctx context.Context) (bool, error) {
		l, err := adm.ListPartitionReassignments(ctx, all3)
		return err == nil && len(l) == 0, err
	}))
	// The old leaders deleted their copies.
	for p, st := range before {
		require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "old leader's copy deleted", func(context.Context) (bool, error) {
			return !slices.Contains(partitionDirs(t, cl, st.Leader, topic), topic+"-"+strconv.Itoa(int(p))), nil
		}))
	}

	stopStream() // the stream wrote through the moves
	for range 3 {
		if n := <-streamFailed; n > 0 {
			t.Logf("%d produce attempts failed during the moves (retried records are not acknowledged)", n)
		}
	}

	// ElectLeaders: broker 4 is preferred and leads; asking for all partitions answers nothing.
	el, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	require.NoError(t, err)
	for p := int32(0); p < 3; p++ {
		require.ErrorIs(t, el[topic][p].Err, kerr.ElectionNotNeeded, "partition %d", p)
	}
	el, err = adm.ElectLeaders(ctx, kadm.ElectLiveReplica, kadm.TopicsSet{topic: {0: {}}})
	require.NoError(t, err)
	require.ErrorIs(t, el[topic][0].Err, kerr.ElectionNotNeeded)
	all, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	require.NoError(t, err)
	require.Empty(t, all[topic])

	requireAllAcknowledged(t, cl, topic, 3, prod)
}

// TestDrainAndUnregister drains a broker with `sluice cluster drain` while a producer writes, stops
// it, unregisters it with `sluice cluster unregister`, and checks that no partition, ISR or broker
// list names it afterwards and that every acknowledged record is read back.
func TestDrainAndUnregister(t *testing.T) {
	cl := startPartialCluster(t, 4, 4, "flush: always\nauto.balance.interval.ms: 1000\n")
	const topic = "drained"
	createTopic(t, cl, topic, 6, 3, 2)
	prod := newProducer(t, newClient(t, cl), 0)
	ctx := testCtx(t, 4*time.Minute)
	for p := int32(0); p < 6; p++ {
		require.NoError(t, prod.produce(ctx, topic, p, 100))
	}
	v := viewOf(t, cl, topic)
	var victim int32 = -1
	for _, st := range v.Partitions[topic] {
		if st.Leader >= 1 {
			victim = st.Leader // a broker that leads something
			break
		}
	}
	require.Positive(t, victim)

	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	streamDone := make(chan int, 1)
	go func() { streamDone <- prod.stream(streamCtx, topic, 0) }()

	bootstrap := strings.Join(cl.Bootstrap(), ",")
	out, err := exec.CommandContext(ctx, binPath, "cluster", "drain", "--bootstrap", bootstrap, "--timeout", "2m", strconv.Itoa(int(victim))).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "safe to stop")
	t.Logf("drain output:\n%s", out)
	stopStream()
	<-streamDone

	v = viewOf(t, cl, topic)
	for p, st := range v.Partitions[topic] {
		require.NotContains(t, st.Replicas, victim, "partition %d", p)
		require.NotEqual(t, victim, st.Leader)
	}
	// Unregistering a running broker is refused; a stopped, drained one leaves no trace.
	out, err = exec.CommandContext(ctx, binPath, "cluster", "unregister", "--bootstrap", bootstrap, strconv.Itoa(int(victim))).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "INVALID_REQUEST")
	require.NoError(t, cl.Stop(victim, 30*time.Second))
	var rest []string
	for _, n := range cl.Nodes() {
		if n.ID != victim {
			rest = append(rest, n.Addr)
		}
	}
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "unregister the stopped broker", func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, binPath, "cluster", "unregister", "--bootstrap", strings.Join(rest, ","), strconv.Itoa(int(victim))).CombinedOutput()
		if err != nil {
			return false, errors.New(string(out))
		}
		return true, nil
	}))
	adm := kadm.NewClient(newClient(t, cl, kgo.SeedBrokers(rest...)))
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "no broker lists the unregistered broker", func(ctx context.Context) (bool, error) {
		md, err := adm.Metadata(ctx)
		if err != nil {
			return false, err
		}
		return !slices.Contains(md.Brokers.NodeIDs(), victim), nil
	}))
	cfgs, err := adm.DescribeBrokerConfigs(ctx)
	require.NoError(t, err)
	for _, rc := range cfgs {
		require.NotEqual(t, strconv.Itoa(int(victim)), rc.Name)
	}
	// The drained broker's data directory no longer holds the topic.
	require.Empty(t, partitionDirs(t, cl, victim, topic))
	requireAllAcknowledged(t, cl, topic, 6, prod)
}

// TestBalancerMovesToNewBroker starts three of four brokers, writes to a topic, then starts the
// fourth: the controller's balancer moves replicas (and preferred leaders) to it until replica
// counts differ by at most one, and every acknowledged record is read back.
func TestBalancerMovesToNewBroker(t *testing.T) {
	cl := startPartialCluster(t, 4, 3, "flush: always\nauto.balance.interval.ms: 500\nauto.balance.max.moves: 4\noffsets.topic.num.partitions: 6\n")
	const topic = "balanced"
	createTopic(t, cl, topic, 6, 2, 1)
	prod := newProducer(t, newClient(t, cl), 0)
	ctx := testCtx(t, 4*time.Minute)
	for p := int32(0); p < 6; p++ {
		require.NoError(t, prod.produce(ctx, topic, p, 200))
	}
	require.NoError(t, cl.Start(4))
	require.NoError(t, cl.WaitReady(ctx, 4))
	v := waitPartitions(t, cl, topic, "broker 4 holds its share of replicas, nothing in flight", 2*time.Minute,
		func(ps map[int32]chaos.PartitionState) bool {
			count := map[int32]int{}
			for _, st := range ps {
				if len(st.Replicas) != 2 || len(st.ISR) != 2 {
					return false // a move in progress
				}
				for _, r := range st.Replicas {
					count[r]++
				}
			}
			return count[4] == 3 && count[1] == 3 && count[2] == 3 && count[3] == 3
		})
	t.Logf("balanced: %+v", v.Partitions[topic])
	requireAllAcknowledged(t, cl, topic, 6, prod)

	// Each move is counted in the controller's metrics and is a cluster event.
	moves, err := scrapeSum(ctx, cl, "sluice_partition_moves_total")
	require.NoError(t, err)
	require.GreaterOrEqual(t, moves, 3.0, "balance moves counted")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cl.Node(1).MetricsAddr+"/api/v1/events?since=0", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var events []adminapi.Event
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&events))
	started, completed := 0, 0
	for _, e := range events {
		switch {
		case e.Type == adminapi.EventReassignmentStarted && strings.Contains(e.Detail, "cause balance"):
			started++
		case e.Type == adminapi.EventReassignmentCompleted:
			completed++
		}
	}
	require.GreaterOrEqual(t, started, 3, "balance moves in /api/v1/events")
	require.GreaterOrEqual(t, completed, 3)
}
