package stack

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilt()
	os.Exit(code)
}

// TestDemoScaleScenario runs `make demo SCENARIO=scale` on a stack on free ports: the scaling
// scenario (chaos/scaling, the same steps as test/cluster's TestScalingDrill) with the stack's
// in-process controllers+brokers, its gateway and its monitoring. Every step is printed with its
// outcome; the Balance row's metrics show the moves and the new brokers' replicas; the stack keeps
// running afterwards and stops cleanly.
func TestDemoScaleScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the scaling scenario for minutes")
	}
	base := freeBase(t, 12)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaPort, cfg.ControllerPort, cfg.MetricsPort, cfg.ExporterPort = base, base+3, base+6, base+9
	cfg.AlertingPort, cfg.TicketsPort = base+10, base+11
	cfg.GatewayPort, cfg.GatewayMetricsPort = 0, 0
	cfg.AdminPassword = "local-admin-pw"
	cfg.Demo = &Demo{Scenario: "scale", Bin: testutil.SluiceBin(t)}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	logs := &testutil.Buffer{}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), out)
	}()
	t.Cleanup(func() {
		t.Logf("demo output:\n%s", out.String())
		if t.Failed() {
			lines := strings.Split(logs.String(), "\n")
			t.Logf("last log lines:\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
			// A broker whose stop hung left a goroutine dump (scaleCluster.dumpGoroutines).
			dumps, _ := filepath.Glob(filepath.Join(cfg.DataDir, scaleNodesDir, "goroutines-*.txt"))
			for _, d := range dumps {
				b, _ := os.ReadFile(d)
				t.Logf("%s:\n%s", d, b)
			}
		}
	})
	stopped := false
	defer func() {
		if stopped {
			return
		}
		cancel()
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			t.Error("stack did not stop within 90s")
		}
	}()
	testutil.WaitForErr(t, 10*time.Minute, "the scenario's end", func() (bool, error) {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("the stack ended during the scenario: %v", err)
		default:
		}
		return strings.Contains(out.String(), "scaling: done"), nil
	})
	o := out.String()
	for _, step := range []string{"joined as broker", "balanced over [1 2 3 ", "controller-only node 4 joined the quorum",
		"broker 3 left the quorum", "broker 3 drained", "broker 3 stopped and unregistered", "killed with SIGKILL", "restarted",
		"quorum: voters [1 2 4]", "acknowledged records consumed", "no client error", "time to balance"} {
		require.Contains(t, o, step)
	}

	// The Balance row: partition moves by reason, and replicas on the new brokers, in the stack's
	// own Prometheus query API.
	alerting := "http://127.0.0.1:" + strconv.Itoa(cfg.AlertingPort)
	queryRange := func(q string) []map[string]string {
		var res struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
				} `json:"result"`
			} `json:"data"`
		}
		v := url.Values{"query": {q}, "start": {strconv.FormatInt(start.Unix(), 10)},
			"end": {strconv.FormatInt(time.Now().Unix(), 10)}, "step": {"5"}}
		getJSON(t, alerting+"/api/v1/query_range?"+v.Encode(), "", &res)
		var ms []map[string]string
		for _, r := range res.Data.Result {
			ms = append(ms, r.Metric)
		}
		return ms
	}
	moves := queryRange(`sum by (reason) (increase(sluice_partition_moves_total[1m]))`)
	require.NotEmpty(t, moves, "no partition moves on the Balance row")
	t.Logf("partition moves by reason: %v", moves)
	brokers := map[string]bool{}
	for _, m := range queryRange(`max by (broker) (sluice_broker_replicas)`) {
		brokers[m["broker"]] = true
	}
	t.Logf("replicas by broker: brokers %v", brokers)
	require.True(t, brokers["1001"] && brokers["1002"], "the new brokers on the Balance row's replicas by broker: %v", brokers)

	// The stack keeps running and stops cleanly, with the scenario's nodes.
	mark := len(logs.String())
	cancel()
	stopped = true
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(90 * time.Second):
		t.Fatal("stack did not stop within 90s")
	}
	require.NotContains(t, logs.String()[mark:], "level=ERROR")
}

// TestDemoScaleScenarioRefusesBadInput: the scenario needs a new data directory (a previous run's
// nodes would be registered) and has no fault of its own; both are refused before anything starts.
func TestDemoScaleScenarioRefusesBadInput(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaPort = 1 // nothing may bind: Run must refuse first
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.DataDir, "scale"), 0o700))
	cfg.Demo = &Demo{Scenario: "scale", Bin: "/bin/true"}
	err := Run(context.Background(), cfg, slog.New(slog.DiscardHandler), &testutil.Buffer{})
	require.ErrorContains(t, err, "needs a new data directory")
	entries, err := os.ReadDir(cfg.DataDir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing created")

	for _, d := range []Demo{{Scenario: "scale", Fault: "broker", Bin: "/bin/true"}, {Scenario: "scale"}, {Scenario: "bogus"}} {
		cfg.DataDir = t.TempDir()
		cfg.Demo = &d
		err := Run(context.Background(), cfg, slog.New(slog.DiscardHandler), &testutil.Buffer{})
		require.Error(t, err, "%+v", d)
		t.Logf("%+v: %v", d, err)
	}
}
