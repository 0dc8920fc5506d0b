package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/chaos/scaling"
)

// TestScalingDrill is issue 16's proof: the scaling scenario (chaos/scaling, also `make demo
// SCENARIO=scale`) on three `sluice broker` processes (controllers+brokers) and a `sluice gateway`:
// idempotent acks=all producers and a consumer group that know only the gateway's address; two
// broker-only nodes join and the controller balances onto them by itself; a controller-only node is
// added to the quorum and broker 3 leaves it, is drained, stopped and unregistered; broker 2 is
// killed with SIGKILL and restarted. Afterwards every acknowledged record was consumed, in order per
// partition, without duplicates in the log; no client surfaced an error to the application; and
// replicas, leaders and bytes are within 10% of the mean per broker. It logs the time to reach
// balance and the acknowledged throughput before and during balancing (docs/benchmarks.md); it
// asserts no speed. The brokers run with the default balancer and replication throttle settings.
func TestScalingDrill(t *testing.T) {
	cl := startPartialCluster(t, 3, 3, "flush: always\n")
	configPath := filepath.Join(t.TempDir(), "broker.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte("flush: always\n"), 0o644))
	var bootstrapServers []string
	for _, n := range cl.Nodes() {
		bootstrapServers = append(bootstrapServers, n.ControllerAddr)
	}
	ctx := testCtx(t, 12*time.Minute)
	env := &drillCluster{t: t, cl: cl, configPath: configPath,
		quorumFlag: []string{"--controller-quorum-bootstrap-servers", strings.Join(bootstrapServers, ",")}}
	var brokers []scaling.Node
	for _, n := range cl.Nodes() {
		brokers = append(brokers, scaling.Node{ID: n.ID, Addr: n.Addr, MetricsAddr: n.MetricsAddr})
	}
	res, err := scaling.Run(ctx, env, scaling.Config{Gateway: startGateway(t, cl.Bootstrap()), Brokers: brokers,
		Bin: binPath, Topic: "drill", Kill: 2, Out: testWriter{t},
		Paired: os.Getenv("SCALING_PAIRED") != ""}) // bench/scaling.sh: moving and paused windows
	require.NoError(t, err)
	t.Logf("time to balance %s; acknowledged records/s before %.0f, during balancing %.0f (ratio %.2f), after %.0f (%.2f); %d records acknowledged and consumed",
		res.TimeToBalance.Round(100*time.Millisecond), res.Before, res.During, res.Ratio(), res.After, res.After/res.Before, res.Acked)
	t.Logf("joined and idle (balancer paused) %.0f records/s, during/idle %.2f, paired %.2f over %d pairs; joining took %s",
		res.Idle, res.IdleRatio(), res.PairedRatio(), len(res.Pairs), res.Joining.Round(100*time.Millisecond))
}

// drillCluster is the scaling scenario's cluster: the chaos cluster's processes and procNodes.
type drillCluster struct {
	t          *testing.T
	cl         *chaos.Cluster
	configPath string
	quorumFlag []string
}

func (d *drillCluster) AddBroker(_ context.Context, name string) (scaling.Node, error) {
	n := newProcNode(d.t, name, d.configPath, append([]string{"--process-roles", "broker"}, d.quorumFlag...)...)
	n.start()
	n.waitLogged("broker ready", 90*time.Second)
	return scaling.Node{ID: n.nodeID(), Addr: n.Addr, MetricsAddr: n.MetricsAddr}, nil
}

func (d *drillCluster) AddController(_ context.Context, id int32) error {
	n := newProcNode(d.t, "controller-"+strconv.Itoa(int(id)), d.configPath,
		append([]string{"--node-id", strconv.Itoa(int(id)), "--process-roles", "controller"}, d.quorumFlag...)...)
	n.start()
	n.waitLogged("controller ready", 90*time.Second)
	return nil
}

func (d *drillCluster) Stop(_ context.Context, id int32) error { return d.cl.Stop(id, 30*time.Second) }

func (d *drillCluster) Kill(_ context.Context, id int32) error { return d.cl.Kill(id) }

func (d *drillCluster) Restart(ctx context.Context, id int32) error { return d.cl.Restart(ctx, id) }

// startGateway runs `sluice gateway` in front of seeds and returns its address.
func startGateway(t *testing.T, seeds []string) string {
	t.Helper()
	n := newProcNode(t, "gateway", "")
	n.args = []string{"gateway", "--listen", n.Addr, "--bootstrap", strings.Join(seeds, ","), "--metrics-listen", n.MetricsAddr}
	n.start()
	require.NoError(t, chaos.WaitFor(testCtx(t, time.Minute), time.Minute, "gateway answers", func(ctx context.Context) (bool, error) {
		kcl := newClientSeeds(t, []string{n.Addr})
		defer kcl.Close()
		_, err := liveBrokers(ctx, kcl)
		return err == nil, err
	}))
	return n.Addr
}

// testWriter logs each line written to it.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
