package broker

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestBrokerOnlyNodeJoinsSecureCluster adds a broker without node.id to a cluster whose
// brokers and Raft transport use mTLS: it gets an id bound to its principal (broker.principals
// entry -1), follows the metadata log as an observer, registers, hosts a replica and keeps its
// id across a restart. The attacks: a non-broker certificate cannot get a node id or join, a
// client cannot reach the join protocol without a certificate, and another broker principal
// cannot act as the new node. DescribeQuorum, AddRaftVoter and RemoveRaftVoter need ALTER or
// DESCRIBE on the cluster.
func TestBrokerOnlyNodeJoinsSecureCluster(t *testing.T) {
	withAuto := func(c *Config) { c.BrokerPrincipals[AllocateNodeID] = "User:autobroker" }
	sc := startSecureCluster(t, func(c *Config) {
		p := map[int32]string{}
		for k, v := range c.BrokerPrincipals {
			p[k] = v
		}
		c.BrokerPrincipals = p
		withAuto(c)
		c.AuthorizerClassName = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
		c.SuperUsers = "User:admin;User:broker1;User:broker2;User:broker3;User:autobroker"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var bootstrap []string
	for _, b := range sc.brokers {
		bootstrap = append(bootstrap, b.cfg.ControllerListener.Addr().String())
	}
	base := sc.brokers[0].cfg
	pair, err := sc.pki.ca.Issue("autobroker", "autobroker", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	dir := t.TempDir()
	startNew := func() *testBroker {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return launchTestBroker(t, dir, func(c *Config) {
			*c = base
			c.NodeID, c.nodeIDDefaulted = 0, false
			c.ProcessRoles = "broker"
			c.applyDefaults()
			c.DataDir = dir
			c.ControllerQuorumVoters = ""
			c.ControllerQuorumBootstrapServers = strings.Join(bootstrap, ",")
			c.ControllerListener = ln
			c.SSLKeystoreLocation = pair.Keystore
		})
	}
	nb := startNew()
	nb.waitReady(t, 90*time.Second)
	id := nb.cfg.NodeID
	require.Equal(t, int32(AllocateNodeID), id, "the configuration asked for an id")
	id = nb.Broker.cfg.NodeID
	require.GreaterOrEqual(t, id, int32(metadata.FirstAllocatedNodeID))
	props, err := readMetaProperties(filepath.Join(dir, metaPropertiesFile))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(id), props["node.id"])
	ctl := sc.controller(t)
	owner, ok := ctl.quorum.Image().NodePrincipal(id)
	require.True(t, ok)
	require.Equal(t, "User:autobroker", owner)

	// The new broker hosts a replica of a new topic.
	adm := kadm.NewClient(sc.admin(t))
	_, err = adm.CreateTopic(ctx, -1, -1, nil, "placeholder")
	require.NoError(t, err)
	cr := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "on-new-broker", -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{id, 1, 2}
	ct.ReplicaAssignment = append(ct.ReplicaAssignment, ra)
	cr.Topics = append(cr.Topics, ct)
	crResp, err := cr.RequestWith(ctx, sc.admin(t))
	require.NoError(t, err)
	require.NoError(t, kerr.ErrorForCode(crResp.Topics[0].ErrorCode))
	testutil.WaitFor(t, 30*time.Second, "the new broker to lead on-new-broker/0 with three in sync", func() bool {
		p, ok := nb.quorum.Image().Partition("on-new-broker", 0)
		return ok && p.Leader == id && len(p.ISR) == 3
	})

	// DescribeQuorum lists it as an observer.
	testutil.WaitForErr(t, 30*time.Second, "DescribeQuorum to list the new broker as an observer", func() (bool, error) {
		q, err := adminapi.DescribeQuorum(ctx, sc.admin(t))
		return err == nil && len(q.Voters) == 3 && len(q.Observers) == 1 && q.Observers[0].NodeID == id && q.Observers[0].LastFetchTimestamp > 0, err
	})

	t.Run("non-broker certificate cannot get a node id", func(t *testing.T) {
		before := ctl.quorum.Image().NextNodeID
		jctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := metadata.JoinClient{Bootstrap: bootstrap, TLS: sc.pki.clientTLS(t, "mallory")}.AllocateNodeID(jctx)
		require.Error(t, err)
		require.Error(t, metadata.JoinClient{Bootstrap: bootstrap, TLS: sc.pki.clientTLS(t, "mallory")}.Join(jctx, id, "127.0.0.1:1", false))
		require.Equal(t, before, ctl.quorum.Image().NextNodeID)
	})
	t.Run("no certificate cannot join", func(t *testing.T) {
		jctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		err := metadata.JoinClient{Bootstrap: bootstrap}.Join(jctx, id, "127.0.0.1:1", false)
		require.Error(t, err)
		_, obs, err := ctl.quorum.Members()
		require.NoError(t, err)
		require.Equal(t, []int32{id}, obs)
	})
	t.Run("another broker cannot act as the new node", func(t *testing.T) {
		a := newAttacker(t, ctl.ListenerAddr("BROKER"), sc.pki.clientTLS(t, "broker1"))
		a.hijack(ctl.quorum, ctl.cfg.ClusterID, id, "on-new-broker")
	})
	t.Run("quorum APIs need cluster permissions", func(t *testing.T) {
		users, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pw"}})
		require.NoError(t, err)
		require.NoError(t, users.Error())
		// Every broker must have applied alice's credential before she can log in to any.
		testutil.WaitFor(t, 20*time.Second, "every broker to apply alice's credential", func() bool {
			for _, b := range append([]*testBroker{nb}, sc.brokers...) {
				if b.quorum.Image().ScramCredentials["alice"] == nil {
					return false
				}
			}
			return true
		})
		user := saslUserClient(t, sc.brokers[0].ListenerAddr("CLIENT"), "alice", "alice-pw", kgo.DialTLSConfig(sc.pki.clientTLS(t, "")))
		_, err = adminapi.DescribeQuorum(ctx, user)
		require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
		add := kmsg.NewPtrAddRaftVoterRequest()
		add.VoterID = id
		addResp, err := add.RequestWith(ctx, user)
		require.NoError(t, err)
		require.Equal(t, kerr.ClusterAuthorizationFailed.Code, addResp.ErrorCode)
		rm := kmsg.NewPtrRemoveRaftVoterRequest()
		rm.VoterID = 1
		rmResp, err := rm.RequestWith(ctx, user)
		require.NoError(t, err)
		require.Equal(t, kerr.ClusterAuthorizationFailed.Code, rmResp.ErrorCode)
		voters, _, err := ctl.quorum.Members()
		require.NoError(t, err)
		require.Equal(t, []int32{1, 2, 3}, voters)
	})

	// A restart keeps the id.
	nb.stop(t)
	nb2 := startNew()
	nb2.waitReady(t, 90*time.Second)
	require.Equal(t, id, nb2.Broker.cfg.NodeID)
	require.Len(t, ctl.quorum.Image().AllocatedNodeIDs, 1, "no second id allocated")
}

// TestRolesConfig: process.roles, node ids and the quorum settings, each case a file under
// testdata/config.
func TestRolesConfig(t *testing.T) {
	c, err := LoadConfig("testdata/config/valid-broker-only.yaml")
	require.NoError(t, err)
	require.Equal(t, int32(AllocateNodeID), c.NodeID)
	isBroker, isController, err := c.roles()
	require.NoError(t, err)
	require.True(t, isBroker)
	require.False(t, isController)
	c, err = LoadConfig("testdata/config/valid-controller-only.yaml")
	require.NoError(t, err)
	require.Equal(t, int32(2), c.NodeID)
	require.False(t, c.isBroker())
	c = DefaultConfig()
	isBroker, isController, err = c.roles()
	require.NoError(t, err)
	require.True(t, isBroker && isController, "default: broker,controller")

	for _, tc := range []struct{ file, mentions string }{
		{"invalid-roles.yaml", "process.roles"},
		{"invalid-broker-only-voter.yaml", "process.roles: broker-only node 1 is one of controller.quorum.voters"},
		{"invalid-allocated-no-log-dir.yaml", "log.dir"},
		{"invalid-bootstrap-servers.yaml", "controller.quorum.bootstrap.servers"},
		{"invalid-allocated-controller.yaml", "node.id"},
		{"invalid-observer-no-controller-listen.yaml", "controller.listen"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadConfig("testdata/config/" + tc.file)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.mentions)
		})
	}
}

// TestResolveNodeID: a node id kept in meta.properties is used on every start and checked against
// the configuration; a broken file is an error that names log.dir and allocates nothing.
func TestResolveNodeID(t *testing.T) {
	unreachable := metadata.JoinClient{Bootstrap: []string{"127.0.0.1:1"}}
	for _, tc := range []struct {
		name, props string
		nodeID      int32
		want        int32
		mentions    string
	}{
		{"kept", "node.id=1005\ncluster.id=sluice\n", AllocateNodeID, 1005, ""},
		{"configured matches", "node.id=7\n", 7, 7, ""},
		{"configured differs", "node.id=7\n", 8, -1, "node.id: 8, but log.dir"},
		{"other cluster", "node.id=1005\ncluster.id=elsewhere\n", AllocateNodeID, -1, "belongs to cluster"},
		{"garbage", "this is not a properties file\n", AllocateNodeID, -1, "log.dir"},
		{"bad id", "node.id=minus-one\n", AllocateNodeID, -1, "log.dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, metaPropertiesFile), []byte(tc.props), 0o644))
			cfg := DefaultConfig()
			cfg.DataDir, cfg.NodeID = dir, tc.nodeID
			id, err := resolveNodeID(&cfg, unreachable)
			if tc.mentions != "" {
				require.ErrorContains(t, err, tc.mentions)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, id)
		})
	}
	// Without meta.properties a configured id is used as it is and nothing is written.
	cfg := DefaultConfig()
	cfg.DataDir, cfg.NodeID = t.TempDir(), 3
	id, err := resolveNodeID(&cfg, unreachable)
	require.NoError(t, err)
	require.Equal(t, int32(3), id)
	_, err = os.Stat(filepath.Join(cfg.DataDir, metaPropertiesFile))
	require.ErrorIs(t, err, os.ErrNotExist)
}
