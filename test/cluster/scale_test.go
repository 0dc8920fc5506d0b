package cluster

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestScaleOutAndDynamicQuorum adds two broker-only nodes without node ids to a running cluster of
// three controllers+brokers: they get distinct ids from the controller, follow the metadata log as
// observers, host replicas of a new topic, and keep their ids across a restart. Then a fourth
// controller joins as an observer and is added with `sluice cluster add-controller`; the quorum keeps
// deciding with an original voter killed; the new controller is removed again, and removing below
// three voters is refused. DescribeQuorum (API 55), `sluice cluster describe-quorum` and
// /api/v1/events show each step.
func TestScaleOutAndDynamicQuorum(t *testing.T) {
	cl := startCluster(t)
	var bootstrapServers []string
	for _, n := range cl.Nodes() {
		bootstrapServers = append(bootstrapServers, n.ControllerAddr)
	}
	configPath := filepath.Join(t.TempDir(), "broker.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte("flush: always\n"), 0o644))
	quorumFlag := []string{"--controller-quorum-bootstrap-servers", strings.Join(bootstrapServers, ",")}

	// Two broker-only nodes, no node id.
	var added []*procNode
	for _, name := range []string{"broker-a", "broker-b"} {
		n := newProcNode(t, name, configPath, append([]string{"--process-roles", "broker"}, quorumFlag...)...)
		n.start()
		added = append(added, n)
	}
	for _, n := range added {
		n.waitLogged("broker ready", 90*time.Second)
	}
	ids := []int32{added[0].nodeID(), added[1].nodeID()}
	require.NotEqual(t, ids[0], ids[1])
	restarted := ids[0]
	slices.Sort(ids)
	for _, id := range ids {
		require.GreaterOrEqual(t, id, int32(1001), "allocated ids start above the configured ones")
	}
	kcl := newClient(t, cl)
	ctx := testCtx(t, 4*time.Minute)
	want := []int32{1, 2, 3, ids[0], ids[1]}
	slices.Sort(want)
	waitBrokers := func(want []int32) {
		t.Helper()
		require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "brokers in Metadata", func(ctx context.Context) (bool, error) {
			live, err := liveBrokers(ctx, kcl)
			return slices.Equal(live, want), err
		}))
	}
	waitBrokers(want)

	// New partitions land on the new brokers, and acks=all records are read back.
	const topic = "scaled"
	detail := createTopicAll(t, kcl, topic, 10, 3, 2)
	hosted := map[int32]int{}
	for _, st := range detail.Partitions {
		for _, r := range st.Replicas {
			hosted[r]++
		}
	}
	for _, id := range ids {
		require.Positive(t, hosted[id], "broker %d hosts no replica of %s: %v", id, topic, hosted)
	}
	prod := newProducer(t, newClient(t, cl), 0)
	for p := int32(0); p < 10; p++ {
		require.NoError(t, prod.produce(testCtx(t, time.Minute), topic, p, 50))
	}
	requireAllAcknowledged(t, cl, topic, 10, prod)

	// DescribeQuorum: three voters, the new brokers observe.
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "DescribeQuorum", func(ctx context.Context) (bool, error) {
		q, err := adminapi.DescribeQuorum(ctx, kcl)
		if err != nil {
			return false, err
		}
		return slices.Equal(q.VoterIDs(), []int32{1, 2, 3}) && slices.Equal(q.ObserverIDs(), ids) && q.HighWatermark > 0 &&
			slices.ContainsFunc(q.Voters, func(m adminapi.QuorumMember) bool { return m.LastFetchTimestamp > 0 }), nil
	}))

	// A restarted broker-only node keeps its id.
	added[0].signal(syscall.SIGTERM)
	added[0].start()
	added[0].waitLogged("broker ready", 90*time.Second)
	require.Equal(t, restarted, added[0].nodeID())
	waitBrokers(want)

	// A fourth controller: it joins as an observer, then `add-controller` makes it a voter.
	ctl4 := newProcNode(t, "controller-4", configPath, append([]string{"--node-id", "4", "--process-roles", "broker,controller"}, quorumFlag...)...)
	ctl4.start()
	ctl4.waitLogged("broker ready", 90*time.Second)
	cli := []string{"--bootstrap", strings.Join(cl.Bootstrap(), ",")}
	out, err := sluiceCLI(ctx, append([]string{"cluster", "add-controller", strconv.Itoa(int(ids[0]))}, cli...)...)
	require.Error(t, err, out)
	require.Contains(t, out, "broker-only")
	out, err = sluiceCLI(ctx, append([]string{"cluster", "add-controller", "4"}, cli...)...)
	require.NoError(t, err, out)
	require.Contains(t, out, "node 4 is a controller")
	out, err = sluiceCLI(ctx, append([]string{"cluster", "describe-quorum"}, cli...)...)
	require.NoError(t, err, out)
	require.Contains(t, out, "CurrentVoters:     [1,2,3,4]")
	t.Logf("describe-quorum:\n%s", out)

	// With four voters, three decide: kill an original voter that is not the controller and create
	// a topic.
	q, err := adminapi.DescribeQuorum(ctx, kcl)
	require.NoError(t, err)
	victim := int32(1)
	if q.LeaderID == 1 {
		victim = 2
	}
	require.NoError(t, cl.Kill(victim))
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "killed voter fenced", func(ctx context.Context) (bool, error) {
		live, err := liveBrokers(ctx, kcl)
		return err == nil && !slices.Contains(live, victim), err
	}))
	createTopicAll(t, kcl, "four-voters", 1, 3, 1)
	require.NoError(t, cl.Restart(ctx, victim))

	// Remove the new controller again; three voters are the least.
	out, err = sluiceCLI(ctx, append([]string{"cluster", "remove-controller", "4"}, cli...)...)
	require.NoError(t, err, out)
	out, err = sluiceCLI(ctx, append([]string{"cluster", "remove-controller", "1"}, cli...)...)
	require.Error(t, err, out)
	require.Contains(t, out, "fewer than 3")
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "three voters again", func(ctx context.Context) (bool, error) {
		q, err := adminapi.DescribeQuorum(ctx, kcl)
		if err != nil {
			return false, err
		}
		return slices.Equal(q.VoterIDs(), []int32{1, 2, 3}) && slices.Contains(q.ObserverIDs(), 4), nil
	}))
	events, err := adminEvents(ctx, cl.Node(2).MetricsAddr)
	require.NoError(t, err)
	for _, typ := range []string{"node_id_allocated", "observer_joined", "controller_added", "controller_removed"} {
		require.Contains(t, events, `"`+typ+`"`)
	}
	// The removed controller still serves as a broker.
	createTopicAll(t, kcl, "after-removal", 6, 3, 2)
	testutil.WaitFor(t, 30*time.Second, "node 4 still a broker", func() bool {
		live, err := liveBrokers(ctx, kcl)
		return err == nil && slices.Contains(live, 4)
	})
}

// TestControllerOnlyQuorum runs the KRaft layout: three controller-only nodes form the quorum and
// host nothing, three broker-only nodes without node ids join it and serve. The controllers are not
// in Metadata, acks=all records survive the loss of the active controller, and DescribeQuorum shows
// the voters and the brokers as observers.
func TestControllerOnlyQuorum(t *testing.T) {
	dir := t.TempDir()
	configPath := filepath.Join(dir, "broker.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte("flush: always\n"), 0o644))
	var ctls []*procNode
	for i := 1; i <= 3; i++ {
		ctls = append(ctls, newProcNode(t, "controller-"+strconv.Itoa(i), configPath, "--node-id", strconv.Itoa(i), "--process-roles", "controller"))
	}
	var voters, bootstrap []string
	for i, c := range ctls {
		voters = append(voters, strconv.Itoa(i+1)+"@"+c.ControllerAddr)
		bootstrap = append(bootstrap, c.ControllerAddr)
	}
	for _, c := range ctls {
		c.args = append(c.args, "--controller-quorum", strings.Join(voters, ","))
		c.start()
	}
	var brokers []*procNode
	for i, name := range []string{"b1", "b2", "b3"} {
		// Brokers find the quorum by its voters or by bootstrap servers.
		quorum := []string{"--controller-quorum", strings.Join(voters, ",")}
		if i == 2 {
			quorum = []string{"--controller-quorum-bootstrap-servers", strings.Join(bootstrap, ",")}
		}
		n := newProcNode(t, name, configPath, append([]string{"--process-roles", "broker"}, quorum...)...)
		n.start()
		brokers = append(brokers, n)
	}
	for _, c := range ctls {
		c.waitLogged("controller ready", 90*time.Second)
	}
	var seeds []string
	var brokerIDs []int32
	for _, b := range brokers {
		b.waitLogged("broker ready", 90*time.Second)
		brokerIDs = append(brokerIDs, b.nodeID())
		seeds = append(seeds, b.Addr)
	}
	slices.Sort(brokerIDs)
	ctx := testCtx(t, 4*time.Minute)
	kcl := newClientSeeds(t, seeds)
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "three brokers, no controller", func(ctx context.Context) (bool, error) {
		live, err := liveBrokers(ctx, kcl)
		return slices.Equal(live, brokerIDs), err
	}))
	const topic = "kraft-layout"
	createTopicAll(t, kcl, topic, 3, 3, 2)
	prod := newProducer(t, kcl, 0)
	for p := int32(0); p < 3; p++ {
		require.NoError(t, prod.produce(testCtx(t, time.Minute), topic, p, 50))
	}

	var q adminapi.Quorum
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "DescribeQuorum", func(ctx context.Context) (bool, error) {
		var err error
		q, err = adminapi.DescribeQuorum(ctx, kcl)
		return err == nil && slices.Equal(q.VoterIDs(), []int32{1, 2, 3}) && slices.Equal(q.ObserverIDs(), brokerIDs), err
	}))
	// The controllers' metrics show their role and the quorum.
	for _, c := range ctls {
		m, err := httpGet(ctx, "http://"+c.MetricsAddr+"/metrics")
		require.NoError(t, err)
		require.Contains(t, m, `sluice_node_role{role="controller"} 1`)
		require.NotContains(t, m, `sluice_node_role{role="broker"}`)
		require.Contains(t, m, "sluice_metadata_quorum_voters 3")
		require.Contains(t, m, "sluice_metadata_quorum_observers 3")
	}

	// Lose the active controller: another takes over and the brokers follow it.
	ctls[q.LeaderID-1].kill()
	require.NoError(t, chaos.WaitFor(ctx, 30*time.Second, "a new active controller", func(ctx context.Context) (bool, error) {
		nq, err := adminapi.DescribeQuorum(ctx, kcl)
		return err == nil && nq.LeaderID >= 1 && nq.LeaderID != q.LeaderID, err
	}))
	createTopicAll(t, kcl, "after-controller-loss", 3, 3, 2)
	for p := int32(0); p < 3; p++ {
		require.NoError(t, prod.produce(testCtx(t, time.Minute), topic, p, 50))
	}
	logs, err := chaos.ReadPartitions(ctx, seeds, topic, time.Minute)
	require.NoError(t, err)
	c := chaos.CheckTopic(3, prod.acked(topic), logs)
	for _, pc := range c.Partitions {
		require.Zero(t, pc.Violations(), "%s/%d: %+v", topic, pc.Partition, pc)
	}
	require.Equal(t, 300, c.Acked)
}
