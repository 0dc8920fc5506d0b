// Package brokertest starts clusters of in-process Sluice brokers for the tests of other packages
// (the gateway, the ticket service, test/tenants): brokers sharing one Raft metadata quorum, every
// listener on 127.0.0.1 port 0, each broker with a data directory of its own, all stopped at the
// test's cleanup. Its Config says how secure the cluster is; everything else a test needs differently
// goes through Config.Configure.
//
// The tests of package broker itself cannot import it (an import cycle): they use that package's
// startTestCluster, the one other place a cluster is built in-process.
package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/internal/testutil"
)

// Admin is the user that is a super user of a secure cluster: Config.Users must have it.
const Admin = "admin"

// Config describes the cluster Start builds.
type Config struct {
	// Brokers is the number of brokers, each a voter of the metadata quorum; 3 when zero.
	Brokers int
	// Users, when not empty, makes the cluster secure. Each user (name: password) gets SCRAM
	// credentials for every SCRAM mechanism in Mechanisms at the cluster's first start
	// (scram.initial.users, from password files in Cluster.Dir). Clients reach the listener CLIENT,
	// SASL_PLAINTEXT with Mechanisms; the StandardAuthorizer is on with Admin a super user. Brokers
	// reach each other on a loopback PLAINTEXT listener BROKER that clients are not given, as
	// User:ANONYMOUS, also a super user.
	//
	// Without users every broker has one PLAINTEXT client listener (the `listen` shorthand; brokers
	// talk on an implicit loopback listener) and no authorizer.
	Users map[string]string
	// Mechanisms is sasl.enabled.mechanisms of a secure cluster's CLIENT listener; "SCRAM-SHA-512"
	// when empty.
	Mechanisms string
	// Configure, when set, adjusts each broker's configuration last; NodeID is set by then.
	Configure func(*broker.Config)
}

// Cluster is a running cluster of in-process brokers.
type Cluster struct {
	// Brokers are the brokers, Brokers[i] with node id i+1.
	Brokers []*Broker
	// Dir holds the users' password files (PasswordFile).
	Dir string

	cfg Config
}

// Broker is an in-process broker started by Run or Start.
type Broker struct {
	*broker.Broker
	// Config is the configuration it was started with.
	Config broker.Config

	run *testutil.Running
}

// Run starts one broker with cfg as the test built it (listeners, data directory), waits until
// it is ready and serves its admin and metrics listeners if cfg has them (90s at most), and stops
// it at cleanup, failing the test if the broker ended with an error.
func Run(t testing.TB, cfg broker.Config) *Broker {
	t.Helper()
	b := launch(t, cfg)
	b.waitReady(t, 90*time.Second)
	return b
}

// launch starts a broker without waiting for it: the brokers of a quorum must start together.
func launch(t testing.TB, cfg broker.Config) *Broker {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", cfg.NodeID)
	}
	bb, err := broker.New(cfg, logger)
	if err != nil {
		t.Fatalf("brokertest: broker %d: %v", cfg.NodeID, err)
	}
	return &Broker{Broker: bb, Config: cfg, run: testutil.Start(t, fmt.Sprintf("broker %d", cfg.NodeID), bb.Run)}
}

// waitReady fails the test unless the broker is ready, with its HTTP listeners served, within d.
func (b *Broker) waitReady(t testing.TB, d time.Duration) {
	t.Helper()
	b.run.WaitReady(t, b.Ready(), d)
	testutil.WaitFor(t, d, "the broker's admin and metrics listeners", func() bool {
		return (b.Config.AdminListen == "" || b.AdminAddr() != "") && (b.Config.MetricsListen == "" || b.MetricsAddr() != "")
	})
}

// Stop stops the broker and waits until it has stopped (30s at most), failing the test if it
// ended with an error; stopping it again, or at cleanup, does nothing.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	b.run.Stop(t)
}

// Start starts the cluster cfg describes and waits until every broker is ready and a client sees
// all of them (in a secure cluster: Admin, whose credentials the first controller term writes).
// Every broker has an admin and a metrics HTTP listener on loopback (AdminURLs, Metric), group
// rebalances start without delay and the offsets topic has two partitions unless Configure says
// otherwise. Any failure fails the test.
func Start(t testing.TB, cfg Config) *Cluster {
	t.Helper()
	n := cfg.Brokers
	if n == 0 {
		n = 3
	}
	if cfg.Mechanisms == "" {
		cfg.Mechanisms = "SCRAM-SHA-512"
	}
	c := &Cluster{Dir: t.TempDir(), cfg: cfg}
	var initial []broker.InitialSCRAMUser
	if len(cfg.Users) > 0 {
		if _, ok := cfg.Users[Admin]; !ok {
			t.Fatalf("brokertest: Config.Users has no %q, the secure cluster's super user", Admin)
		}
		names := make([]string, 0, len(cfg.Users))
		for name := range cfg.Users {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			f := c.PasswordFile(name)
			if err := os.WriteFile(f, []byte(cfg.Users[name]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, mech := range strings.Split(cfg.Mechanisms, ",") {
				if mech = strings.TrimSpace(mech); strings.HasPrefix(mech, "SCRAM-") {
					initial = append(initial, broker.InitialSCRAMUser{Name: name, Mechanism: mech, PasswordFile: f, Iterations: 4096})
				}
			}
		}
	}
	lns := make([]net.Listener, n)
	voters := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		voters[i] = fmt.Sprintf("%d@%s", i+1, ln.Addr())
	}
	// A broker closes its Raft listener when it stops; these are the ones no broker took.
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
	})
	for i := range n {
		bc := broker.DefaultConfig()
		bc.NodeID = int32(i + 1)
		bc.DataDir = t.TempDir()
		bc.ControllerQuorumVoters = strings.Join(voters, ",")
		bc.ControllerListener = lns[i]
		bc.AdminListen = "127.0.0.1:0"
		bc.MetricsListen = "127.0.0.1:0"
		bc.OffsetsTopicNumPartitions = 2
		bc.GroupInitialRebalanceDelayMs = new(int64)
		if len(cfg.Users) > 0 {
			bc.Listeners = "CLIENT://127.0.0.1:0,BROKER://127.0.0.1:0"
			bc.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT,BROKER:PLAINTEXT"
			bc.InterBrokerListenerName = "BROKER"
			bc.SASLEnabledMechanisms = cfg.Mechanisms
			bc.AuthorizerClassName = broker.StandardAuthorizer
			bc.SuperUsers = "User:" + Admin + ";User:ANONYMOUS"
			bc.InitialSCRAMUsers = initial
		} else {
			bc.Listen = "127.0.0.1:0"
		}
		if cfg.Configure != nil {
			cfg.Configure(&bc)
		}
		c.Brokers = append(c.Brokers, launch(t, bc))
	}
	for _, b := range c.Brokers {
		b.waitReady(t, 60*time.Second)
	}
	cl, err := kgo.NewClient(append(c.seeds(), c.adminAuth()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	testutil.WaitForErr(t, 60*time.Second, fmt.Sprintf("a client to see %d brokers", n), func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
		if err != nil {
			return false, err
		}
		return len(md.Brokers) == n, fmt.Errorf("%d brokers listed", len(md.Brokers))
	})
	return c
}

// PasswordFile is the file holding user's password (Config.Users).
func (c *Cluster) PasswordFile(user string) string {
	return filepath.Join(c.Dir, user+".pass")
}

// Bootstrap returns the brokers' client listener addresses.
func (c *Cluster) Bootstrap() []string {
	out := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		if len(c.cfg.Users) > 0 {
			out[i] = b.ListenerAddr("CLIENT")
		} else {
			out[i] = b.Addr()
		}
	}
	return out
}

// Client is a franz-go client seeded with every broker's client listener, closed at cleanup. In a
// secure cluster opts must authenticate it (SCRAM).
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(c.seeds(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// AdminClient is Client authenticated as Admin in a secure cluster, and a plain Client otherwise.
func (c *Cluster) AdminClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return c.Client(t, append(c.adminAuth(), opts...)...)
}

func (c *Cluster) seeds() []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(c.Bootstrap()...)} }

// adminAuth authenticates a client as Admin in a secure cluster.
func (c *Cluster) adminAuth() []kgo.Opt {
	if len(c.cfg.Users) == 0 {
		return nil
	}
	return []kgo.Opt{SCRAM(Admin, c.cfg.Users[Admin])}
}

// SCRAM is the client option that authenticates as user with SCRAM-SHA-512.
func SCRAM(user, pass string) kgo.Opt {
	return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())
}

// AdminURLs returns the brokers' admin interfaces, "http://host:port".
func (c *Cluster) AdminURLs() []string {
	out := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		out[i] = "http://" + b.AdminAddr()
	}
	return out
}

// AdminAPI is a client of the brokers' admin interfaces (tenants, plans).
func (c *Cluster) AdminAPI() *adminapi.Client {
	return &adminapi.Client{URLs: c.AdminURLs()}
}

// Metric sums the series of the counter or gauge name over every broker's metrics, keeping the
// series whose labels include labelPairs (name, value, name, value...).
func (c *Cluster) Metric(t testing.TB, name string, labelPairs ...string) float64 {
	t.Helper()
	if len(labelPairs)%2 != 0 {
		t.Fatalf("brokertest: Metric %s: label names and values do not pair up: %q", name, labelPairs)
	}
	var sum float64
	for _, b := range c.Brokers {
		fams, err := b.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if !hasLabels(m, labelPairs) {
					continue
				}
				switch f.GetType() {
				case dto.MetricType_COUNTER:
					sum += m.GetCounter().GetValue()
				case dto.MetricType_GAUGE:
					sum += m.GetGauge().GetValue()
				case dto.MetricType_UNTYPED:
					sum += m.GetUntyped().GetValue()
				default:
					t.Fatalf("brokertest: Metric %s is a %s, not a counter or gauge", name, f.GetType())
				}
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i < len(pairs); i += 2 {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
			return l.GetName() == pairs[i] && l.GetValue() == pairs[i+1]
		}) {
			return false
		}
	}
	return true
}
