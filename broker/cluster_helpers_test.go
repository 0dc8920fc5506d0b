package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startTestCluster starts n in-process brokers sharing one metadata quorum, each
// handed a Raft listener bound to port 0, and waits until every one lists all. It is
// the package's one way to build a cluster (other packages' tests use broker/brokertest,
// which this package's tests cannot import): mutate runs last, once per broker, with
// NodeID set, so a secure cluster is a mutate that picks each broker's credentials by id.
func startTestCluster(t *testing.T, n int, mutate ...func(*Config)) []*testBroker {
	t.Helper()
	lns := make([]net.Listener, n)
	var voters []string
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns[i] = ln
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ln.Addr()))
	}
	// The brokers of a quorum start together: each is ready only once a controller is
	// elected.
	out := make([]*testBroker, n)
	for i := range lns {
		out[i] = launchTestBroker(t, t.TempDir(), append([]func(*Config){func(c *Config) {
			c.NodeID = int32(i + 1)
			c.ControllerQuorumVoters = strings.Join(voters, ",")
			c.ControllerListener = lns[i]
			c.OffsetsTopicReplicationFactor = 1
			c.OffsetsTopicNumPartitions = 2
			c.TransactionStateLogNumPartitions = 2
			c.Balance.AutoBalanceEnable = ptr(false) // tests that balance turn it on
		}}, mutate...)...)
	}
	for _, tb := range out {
		tb.waitReady(t, 60*time.Second)
	}
	waitUntil(t, 30*time.Second, "every broker registered and live", func() bool {
		for _, tb := range out {
			if len(tb.quorum.Image().LiveBrokers()) != n {
				return false
			}
		}
		return true
	})
	return out
}

// launchTestBroker starts a broker like startTestBroker without waiting for it to be
// ready (the brokers of a quorum must start together).
func launchTestBroker(t *testing.T, dir string, mutate ...func(*Config)) *testBroker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	cfg.GroupInitialRebalanceDelayMs = ptr[int64](0)
	for _, m := range mutate {
		m(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("node", cfg.NodeID)
	}
	b, err := New(cfg, logger)
	require.NoError(t, err)
	return &testBroker{Broker: b, cfg: cfg, run: testutil.Start(t, fmt.Sprintf("broker %d", cfg.NodeID), b.Run)}
}

// waitReady fails the test unless the broker is ready within d.
func (tb *testBroker) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	tb.run.WaitReady(t, tb.Ready(), d)
}

// waitUntil polls cond every 20ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// request sends req, at exactly its version and shaped as the caller built it
// (no client rewrites it), to the broker at addr on a connection of its own, and
// returns the decoded response.
func request[R kmsg.Response](t *testing.T, addr string, req kmsg.Request) R {
	t.Helper()
	c := rawConn(t, addr)
	hdr := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(req.GetVersion()))
	hdr = binary.BigEndian.AppendUint32(hdr, 7)
	hdr = binary.BigEndian.AppendUint16(hdr, uint16(len("rdkafka")))
	hdr = append(hdr, "rdkafka"...)
	if req.IsFlexible() {
		hdr = append(hdr, 0)
	}
	msg := req.AppendTo(hdr)
	_, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...))
	require.NoError(t, err)
	var size [4]byte
	_, err = io.ReadFull(c, size[:])
	require.NoError(t, err)
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err = io.ReadFull(c, body)
	require.NoError(t, err)
	require.Equal(t, uint32(7), binary.BigEndian.Uint32(body), "correlation id")
	body = body[4:]
	if req.IsFlexible() && req.Key() != 18 {
		require.Equal(t, byte(0), body[0], "response header tags")
		body = body[1:]
	}
	resp := req.ResponseKind()
	require.NoError(t, resp.ReadFrom(body))
	return resp.(R)
}

// pythonPath is Debian's python3 with python3-confluent-kafka (librdkafka), not a
// pyenv python3 that may come first on PATH.
const pythonPath = "/usr/bin/python3"

// runLibrdkafka runs testdata/librdkafka/<script> with Debian's python3 and
// python3-confluent-kafka (installed by .ci/run) and decodes the JSON document
// it prints into out.
func runLibrdkafka(t *testing.T, timeout time.Duration, script string, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	check := exec.CommandContext(ctx, pythonPath, "-c", "import confluent_kafka")
	if msg, err := check.CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka (apt-get install python3-confluent-kafka; .ci/run does): %v\n%s", pythonPath, err, msg)
	}
	cmd := exec.CommandContext(ctx, pythonPath, append([]string{filepath.Join("testdata", "librdkafka", script)}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %v\nstdout:\n%s\nstderr:\n%s", script, args, stdout.String(), stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), "%s printed:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
}

// rdkEvent is one line a testdata/librdkafka script printed.
type rdkEvent struct {
	Event      string  `json:"event"`
	Partitions []int32 `json:"partitions"`
	Partition  int32   `json:"partition"`
	Value      string  `json:"value"`
	Error      string  `json:"error"`
	Seconds    float64 `json:"seconds"`
}

// rdkProcess is a testdata/librdkafka script running in the background.
type rdkProcess struct {
	events chan rdkEvent
	stderr *bytes.Buffer
	done   chan error
}

// startLibrdkafka starts a testdata/librdkafka script with Debian's python3 and
// streams the JSON lines it prints. It is killed at cleanup if still running.
func startLibrdkafka(t *testing.T, script string, args ...string) *rdkProcess {
	t.Helper()
	if msg, err := exec.Command(pythonPath, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka (apt-get install python3-confluent-kafka; .ci/run does): %v\n%s", pythonPath, err, msg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, pythonPath, append([]string{filepath.Join("testdata", "librdkafka", script)}, args...)...)
	p := &rdkProcess{events: make(chan rdkEvent, 1024), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		dec := json.NewDecoder(out)
		for {
			var e rdkEvent
			if dec.Decode(&e) != nil {
				break
			}
			p.events <- e
		}
		close(p.events)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", script, p.stderr.String())
		}
	})
	return p
}

// next returns the next event for which match holds, skipping others, or fails
// the test after timeout.
func (p *rdkProcess) next(t *testing.T, timeout time.Duration, what string, match func(rdkEvent) bool) rdkEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e, ok := <-p.events:
			if !ok {
				t.Fatalf("librdkafka script ended before %s", what)
			}
			if match(e) {
				return e
			}
			t.Logf("librdkafka: %+v", e)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// createTopicOnController creates topic name with the replica assignment assign through whichever of
// brokers is the active controller, polling until one is and the topic is created.
func createTopicOnController(t *testing.T, ctx context.Context, brokers []*testBroker, timeout time.Duration, what, name string, assign [][]int32) {
	t.Helper()
	waitUntil(t, timeout, what, func() bool {
		for _, tb := range brokers {
			if tb.quorum.IsController() {
				_, err := tb.quorum.CreateTopic(ctx, name, -1, -1, assign, nil)
				return err == nil
			}
		}
		return false
	})
}
