package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// procNode is a `sluice broker` process started by a test outside chaos.Cluster, whose nodes have
// fixed ids 1..n: a broker-only node without a node id, a controller-only node, a new controller.
// It keeps its ports and data directory across restarts.
type procNode struct {
	t    *testing.T
	name string
	// Addr is the Kafka listener, ControllerAddr the Raft listener, MetricsAddr /metrics and the
	// admin interface.
	Addr, ControllerAddr, MetricsAddr string
	DataDir                           string
	args                              []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *bytes.Buffer // every run's output
	done chan struct{}
}

// lockedWriter serializes the process's stdout and stderr into one buffer.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// newProcNode prepares a node on free loopback ports; extra are its role and quorum flags.
func newProcNode(t *testing.T, name, configPath string, extra ...string) *procNode {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	n := &procNode{t: t, name: name, Addr: addrs[0], ControllerAddr: addrs[1], MetricsAddr: addrs[2],
		DataDir: filepath.Join(t.TempDir(), name), out: &bytes.Buffer{}}
	n.args = append([]string{"broker", "--listen", n.Addr, "--controller-listen", n.ControllerAddr,
		"--metrics-listen", n.MetricsAddr, "--data-dir", n.DataDir, "--config", configPath}, extra...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, n.tail(60))
		}
		n.kill()
	})
	return n
}

// start starts the process; it must not be running.
func (n *procNode) start() {
	n.t.Helper()
	require.NoError(n.t, binErr)
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.out, "=== start %s %s\n", n.name, strings.Join(n.args, " "))
	cmd := exec.Command(binPath, n.args...)
	w := lockedWriter{mu: &n.mu, b: n.out}
	cmd.Stdout, cmd.Stderr = w, w
	chaos.OwnProcessGroup(cmd)
	require.NoError(n.t, cmd.Start())
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		w.Write([]byte(fmt.Sprintf("=== %s exited: %v\n", n.name, err)))
		close(done)
	}()
	n.cmd, n.done = cmd, done
}

// output is everything the node logged so far.
func (n *procNode) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out.String()
}

func (n *procNode) tail(lines int) string {
	ls := strings.Split(n.output(), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// waitLogged waits until the current run logged line (runs are counted by "=== start").
func (n *procNode) waitLogged(line string, d time.Duration) {
	n.t.Helper()
	testutil.WaitFor(n.t, d, n.name+" logs "+line, func() bool {
		out := n.output()
		cur := out[strings.LastIndex(out, "=== start"):]
		return strings.Contains(cur, line)
	})
}

// signal sends sig and waits until the process exited.
func (n *procNode) signal(sig syscall.Signal) {
	n.t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		n.t.Fatalf("%s did not exit after %v", n.name, sig)
	}
}

// kill ends the process with SIGKILL if it runs.
func (n *procNode) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd != nil {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}
}

// nodeID reads the node id the controller allocated from the node's meta.properties.
func (n *procNode) nodeID() int32 {
	n.t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.DataDir, "meta.properties"))
	require.NoError(n.t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "node.id="); ok {
			id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			require.NoError(n.t, err)
			return int32(id)
		}
	}
	n.t.Fatalf("%s: no node.id in meta.properties", n.name)
	return -1
}

// sluiceCLI runs `sluice args...` and returns its combined output.
func sluiceCLI(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, binPath, args...).CombinedOutput()
	return string(out), err
}

// adminEvents returns a node's /api/v1/events.
func adminEvents(ctx context.Context, metricsAddr string) (string, error) {
	return httpGet(ctx, "http://"+metricsAddr+"/api/v1/events")
}

// httpGet returns the body at url.
func httpGet(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return b.String(), err
}

// createTopicAll creates a topic through kcl and waits until every partition has a leader and a
// full ISR in kcl's Metadata; unlike createTopic it does not require every broker to be a node of
// the chaos cluster.
func createTopicAll(t *testing.T, kcl *kgo.Client, topic string, partitions int32, rf int16, minISR int) kmsg.MetadataResponseTopic {
	t.Helper()
	adm := kadm.NewClient(kcl)
	v := strconv.Itoa(minISR)
	ctx := testCtx(t, 2*time.Minute)
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "create "+topic, func(ctx context.Context) (bool, error) {
		resp, err := adm.CreateTopic(ctx, partitions, rf, map[string]*string{"min.insync.replicas": &v}, topic)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			err = nil
		}
		return err == nil, err
	}))
	var detail kmsg.MetadataResponseTopic
	require.NoError(t, chaos.WaitFor(ctx, time.Minute, "full ISRs of "+topic, func(ctx context.Context) (bool, error) {
		// Not kadm's ListTopics, which may answer from the client's metadata cache.
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, kcl)
		if err != nil {
			return false, err
		}
		if len(resp.Topics) != 1 {
			return false, fmt.Errorf("metadata of %d topics", len(resp.Topics))
		}
		detail = resp.Topics[0]
		if err := kerr.ErrorForCode(detail.ErrorCode); err != nil || len(detail.Partitions) != int(partitions) {
			return false, err
		}
		for _, p := range detail.Partitions {
			if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
				return false, fmt.Errorf("%s/%d: leader %d replicas %v isr %v", topic, p.Partition, p.Leader, p.Replicas, p.ISR)
			}
		}
		return true, nil
	}))
	return detail
}

// liveBrokers asks the cluster for its live brokers, sorted, bypassing the client's metadata
// cache (kadm's BrokerMetadata may answer from it).
func liveBrokers(ctx context.Context, kcl *kgo.Client) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(ctx, kcl)
	if err != nil {
		return nil, err
	}
	var ids []int32
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids, nil
}

// newClientSeeds is newClient for nodes outside a chaos cluster.
func newClientSeeds(t *testing.T, seeds []string) *kgo.Client {
	t.Helper()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }), kgo.DialTimeout(time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	require.NoError(t, err)
	t.Cleanup(kcl.Close)
	return kcl
}
