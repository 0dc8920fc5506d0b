package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sluicemq/sluice/internal/testutil"

	"github.com/sluicemq/sluice/broker/metadata"
)

// attacker sends broker-only requests over a connection of its own.
type attacker struct {
	t *testing.T
	p *peer
}

func newAttacker(t *testing.T, addr string, tlsCfg *tls.Config) *attacker {
	p := newPeer(addr, "attacker")
	if tlsCfg != nil {
		p.dial = func(ctx context.Context, addr string) (net.Conn, time.Duration, error) {
			d := tls.Dialer{Config: tlsCfg}
			nc, err := d.DialContext(ctx, "tcp", addr)
			return nc, 0, err
		}
	}
	t.Cleanup(p.close)
	return &attacker{t: t, p: p}
}

func (a *attacker) do(req kmsg.Request) kmsg.Response {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := a.p.request(ctx, req)
	require.NoError(a.t, err, "the connection must stay open and answer")
	return resp
}

// hijack performs the attacks of issue 10 over one connection and asserts that each is
// refused with CLUSTER_AUTHORIZATION_FAILED and changes nothing: registering node 99,
// fencing broker `victim` with a heartbeat naming its real epoch, shrinking a
// partition's ISR with AlterPartition, and taking a producer id block.
func (a *attacker) hijack(q *metadata.Quorum, clusterID string, victim int32, topic string) {
	t := a.t
	t.Helper()
	before := q.Image()

	reg := kmsg.NewPtrBrokerRegistrationRequest()
	reg.BrokerID, reg.ClusterID, reg.IncarnationID = 99, clusterID, [16]byte{9, 9}
	l := kmsg.NewBrokerRegistrationRequestListener()
	l.Name, l.Host, l.Port = "PLAINTEXT", "127.0.0.1", 9999
	reg.Listeners = append(reg.Listeners, l)
	regResp := a.do(reg).(*kmsg.BrokerRegistrationResponse)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, regResp.ErrorCode, "node-99 registration")

	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	hb.BrokerID, hb.BrokerEpoch, hb.WantFence = victim, before.Brokers[victim].Epoch, true
	hbResp := a.do(hb).(*kmsg.BrokerHeartbeatResponse)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, hbResp.ErrorCode, "heartbeat fencing broker %d", victim)

	tp := before.Topic(topic)
	require.NotNil(t, tp)
	part := tp.Partitions[0]
	ap := kmsg.NewPtrAlterPartitionRequest()
	ap.Version, ap.BrokerID = 2, victim
	rt := kmsg.NewAlterPartitionRequestTopic()
	rt.TopicID = tp.ID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = 0, part.LeaderEpoch, part.PartitionEpoch, []int32{part.Leader}
	rt.Partitions = append(rt.Partitions, rp)
	ap.Topics = append(ap.Topics, rt)
	apResp := a.do(ap).(*kmsg.AlterPartitionResponse)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, apResp.ErrorCode, "AlterPartition")

	pids := kmsg.NewPtrAllocateProducerIDsRequest()
	pids.BrokerID = victim
	pidResp := a.do(pids).(*kmsg.AllocateProducerIDsResponse)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, pidResp.ErrorCode, "AllocateProducerIds")

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.ReplicaID = 12, victim
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fResp := a.do(fetch).(*kmsg.FetchResponse)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, fResp.ErrorCode, "replica fetch")

	// The connection still serves ordinary requests (when it is allowed to).
	a.do(kmsg.NewPtrApiVersionsRequest())

	after := q.Image()
	_, ok := after.Brokers[99]
	require.False(t, ok, "node 99 registered")
	require.False(t, after.Brokers[victim].Fenced, "broker %d fenced", victim)
	require.Equal(t, before.Brokers[victim].Epoch, after.Brokers[victim].Epoch)
	require.Equal(t, part, after.Topic(topic).Partitions[0], "partition changed")
	require.Equal(t, before.NextProducerIDBlock, after.NextProducerIDBlock)
}

// TestHijackOnPlaintextDefault: with the `listen` shorthand (what `make run` uses) a
// client connection cannot reach the broker-only APIs; brokers talk on a loopback
// listener of their own.
func TestHijackOnPlaintextDefault(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "victim")
	require.NoError(t, err)
	testutil.WaitFor(t, 10*time.Second, `tb.quorum.Image().Topic("victim") != nil`, func() bool { return tb.quorum.Image().Topic("victim") != nil })

	newAttacker(t, tb.Addr(), nil).hijack(tb.quorum, tb.cfg.ClusterID, 1, "victim")

	// Metadata on the client listener names only client listener addresses.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, newClient(t, tb.Addr()))
	require.NoError(t, err)
	require.Len(t, md.Brokers, 1)
	require.Equal(t, tb.Addr(), net.JoinHostPort(md.Brokers[0].Host, fmt.Sprint(md.Brokers[0].Port)))
	require.NotEqual(t, tb.Addr(), tb.ListenerAddr(implicitBrokerListener))
}

// secureCluster is three in-process brokers: clients on a SASL_SSL listener, brokers
// on an mTLS listener with broker.principals, the Raft transport over mTLS.
type secureCluster struct {
	pki     *testPKI
	brokers []*testBroker
}

func startSecureCluster(t *testing.T, mutate ...func(*Config)) *secureCluster {
	t.Helper()
	pki := newTestPKI(t)
	principals := map[int32]string{1: "User:broker1", 2: "User:broker2", 3: "User:broker3"}
	keystores := map[int32]string{}
	for id := range principals {
		pair, err := pki.ca.Issue(fmt.Sprintf("broker%d", id), fmt.Sprintf("broker%d", id), []string{"127.0.0.1"}, time.Hour)
		require.NoError(t, err)
		keystores[id] = pair.Keystore
	}
	passFile := t.TempDir() + "/admin"
	require.NoError(t, os.WriteFile(passFile, []byte("admin-secret"), 0o600))
	brokers := startTestCluster(t, 3, append([]func(*Config){func(c *Config) {
		c.OffsetsTopicNumPartitions = 1
		c.Listeners = "CLIENT://127.0.0.1:0,BROKER://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL,BROKER:SSL,CONTROLLER:SSL"
		c.InterBrokerListenerName = "BROKER"
		c.ControllerListenerNames = "CONTROLLER"
		c.SSLKeystoreLocation = keystores[c.NodeID]
		c.SSLTruststoreLocation = pki.ca.CertFile
		c.ListenerOverrides = map[string]ListenerOverride{"broker": {SSLClientAuth: "required"}}
		c.SSLPrincipalMappingRules = "RULE:^CN=([^,]*),.*$/$1/,DEFAULT"
		c.BrokerPrincipals = principals
		c.InitialSCRAMUsers = []InitialSCRAMUser{{Name: "admin", PasswordFile: passFile}}
	}}, mutate...)...)
	return &secureCluster{pki: pki, brokers: brokers}
}

func (sc *secureCluster) admin(t *testing.T) *kgo.Client {
	var seeds []string
	for _, b := range sc.brokers {
		seeds = append(seeds, b.ListenerAddr("CLIENT"))
	}
	return newClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DialTLSConfig(sc.pki.clientTLS(t, "")),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()))
}

// controller is the broker that is the active controller now.
func (sc *secureCluster) controller(t *testing.T) *testBroker {
	var ctl *testBroker
	testutil.WaitFor(t, 20*time.Second, "a controller", func() bool {
		for _, b := range sc.brokers {
			if b.quorum.IsController() {
				ctl = b
				return true
			}
		}
		return false
	})
	return ctl
}

func TestSecureClusterReplicatesAndRefusesHijack(t *testing.T) {
	sc := startSecureCluster(t)
	cl := sc.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Replication and controller requests run over the mTLS BROKER listener.
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": ptr("3")}, "secure")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	testutil.WaitFor(t, 30*time.Second, "partition secure/0 to have three in-sync replicas", func() bool {
		p, ok := sc.brokers[0].quorum.Image().Partition("secure", 0)
		return ok && len(p.ISR) == 3
	})
	prod := newClient(t, sc.brokers[0].ListenerAddr("CLIENT"), kgo.SeedBrokers(sc.brokers[0].ListenerAddr("CLIENT")),
		kgo.DialTLSConfig(sc.pki.clientTLS(t, "")), kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha512Mechanism()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("secure"))
	require.NoError(t, prod.ProduceSync(ctx, &kgo.Record{Value: []byte("replicated")}).FirstErr())

	// Metadata on the CLIENT listener lists CLIENT addresses only.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	require.NoError(t, err)
	for _, b := range md.Brokers {
		addr := net.JoinHostPort(b.Host, fmt.Sprint(b.Port))
		require.Equal(t, sc.brokers[b.NodeID-1].ListenerAddr("CLIENT"), addr)
	}

	ctl := sc.controller(t)
	victim := int32(1)
	if ctl.cfg.NodeID == 1 {
		victim = 2
	}
	t.Run("admin on the client listener", func(t *testing.T) {
		a := newAttacker(t, ctl.ListenerAddr("CLIENT"), sc.pki.clientTLS(t, ""))
		// Authenticate as admin first: even a valid user is not a broker.
		require.NoError(t, saslClientAuth(a, "admin", "admin-secret"))
		a.hijack(ctl.quorum, ctl.cfg.ClusterID, victim, "secure")
	})
	t.Run("valid certificate of a non-broker on the broker listener", func(t *testing.T) {
		a := newAttacker(t, ctl.ListenerAddr("BROKER"), sc.pki.clientTLS(t, "mallory"))
		a.hijack(ctl.quorum, ctl.cfg.ClusterID, victim, "secure")
	})
	t.Run("another broker's certificate", func(t *testing.T) {
		// The victim's peer may not act for another broker, nor register as 99.
		other := int32(3)
		if ctl.cfg.NodeID == 3 || victim == 3 {
			other = 6 - ctl.cfg.NodeID - victim
		}
		a := newAttacker(t, ctl.ListenerAddr("BROKER"), sc.pki.clientTLS(t, fmt.Sprintf("broker%d", other)))
		a.hijack(ctl.quorum, ctl.cfg.ClusterID, victim, "secure")
	})
	t.Run("raft transport refuses a non-broker certificate", func(t *testing.T) {
		addr := ctl.cfg.ControllerListener.Addr().String()
		conn, err := tls.Dial("tcp", addr, sc.pki.clientTLS(t, "mallory"))
		if err == nil {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = conn.Write([]byte{0})
			if err == nil {
				_, err = conn.Read(make([]byte, 1))
			}
			conn.Close()
		}
		require.Error(t, err)
	})
}

// saslClientAuth authenticates an attacker's connection with SCRAM-SHA-512.
func saslClientAuth(a *attacker, user, pass string) error {
	mech := scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Version, hs.Mechanism = 1, mech.Name()
	if r := a.do(hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		return kerr.ErrorForCode(r.ErrorCode)
	}
	session, msg, err := mech.Authenticate(context.Background(), a.p.addr)
	if err != nil {
		return err
	}
	for {
		ar := kmsg.NewPtrSASLAuthenticateRequest()
		ar.Version, ar.SASLAuthBytes = 1, msg
		r := a.do(ar).(*kmsg.SASLAuthenticateResponse)
		if r.ErrorCode != 0 {
			return kerr.ErrorForCode(r.ErrorCode)
		}
		done, next, err := session.Challenge(r.SASLAuthBytes)
		if err != nil || done {
			return err
		}
		msg = next
	}
}

// TestSASLInterBrokerListener: brokers authenticate to each other with their own
// SCRAM credentials (sasl.inter.broker.username) on a SASL_SSL inter-broker listener;
// replication and controller requests work, and the credentials came from
// scram.initial.users.
func TestSASLInterBrokerListener(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	var initial []InitialSCRAMUser
	principals := map[int32]string{}
	for i := 1; i <= 3; i++ {
		f := fmt.Sprintf("%s/broker%d.pass", dir, i)
		require.NoError(t, os.WriteFile(f, []byte(fmt.Sprintf("broker-%d-secret", i)), 0o600))
		initial = append(initial, InitialSCRAMUser{Name: fmt.Sprintf("broker%d", i), PasswordFile: f})
		principals[int32(i)] = fmt.Sprintf("User:broker%d", i)
	}
	brokers := startTestCluster(t, 3, func(c *Config) {
		c.OffsetsTopicNumPartitions = 1
		c.Listeners = "PLAINTEXT://127.0.0.1:0,BROKER://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "PLAINTEXT:PLAINTEXT,BROKER:SASL_SSL"
		c.InterBrokerListenerName = "BROKER"
		c.SSLKeystoreLocation, c.SSLTruststoreLocation = pki.server.Keystore, pki.ca.CertFile
		c.BrokerPrincipals = principals
		c.SASLInterBrokerUsername = fmt.Sprintf("broker%d", c.NodeID)
		c.SASLInterBrokerPasswordFile = initial[c.NodeID-1].PasswordFile
		c.InitialSCRAMUsers = initial
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := newClient(t, brokers[0].Addr(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("sasl-ib"))
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": ptr("3")}, "sasl-ib")
	require.NoError(t, err)
	require.NoError(t, resp.Err)
	testutil.WaitFor(t, 30*time.Second, "partition sasl-ib/0 to have three in-sync replicas", func() bool {
		p, ok := brokers[0].quorum.Image().Partition("sasl-ib", 0)
		return ok && len(p.ISR) == 3
	})
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Value: []byte("over sasl")}).FirstErr())
	for _, b := range brokers {
		ok := testutilCounter(b, "BROKER", mechSCRAM512)
		if b.quorum.IsController() {
			require.Greater(t, ok, 0.0, "the controller authenticated its peers over SASL")
		}
	}
}

func testutilCounter(b *testBroker, listener, mech string) float64 {
	return promtestutil.ToFloat64(b.sec.authOK.WithLabelValues(listener, mech))
}
