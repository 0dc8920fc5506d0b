package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

const kcatPath = "/usr/bin/kcat"

// kcat runs Debian's kcat (librdkafka) against the gateway, bounded by 2
// minutes, and returns stdout and stderr.
func kcat(t *testing.T, addr, stdin string, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{"-b", addr, "-X", "broker.address.family=v4"}, args...)
	cmd := exec.CommandContext(ctx, kcatPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "kcat %s\nstderr:\n%s", strings.Join(args, " "), stderr.String())
	return stdout.String(), stderr.String()
}

// churnProducers are one producer of each client library that know only the
// gateway's address; each phase every one of them writes n records with
// acks=all and must see no error.
type churnProducers struct {
	t      *testing.T
	addr   string
	topic  string
	sarama sarama.SyncProducer
	kgo    *kafka.Writer

	mu   sync.Mutex
	sent []string
}

// newChurnProducers starts a sarama and a kafka-go producer (kcat runs per
// phase) that know only addr.
func newChurnProducers(t *testing.T, addr, topic string) *churnProducers {
	t.Helper()
	scfg := sarama.NewConfig()
	scfg.Version = sarama.V2_8_0_0
	scfg.Producer.RequiredAcks = sarama.WaitForAll
	scfg.Producer.Return.Successes = true
	scfg.Producer.Retry.Max = 10
	scfg.Producer.Retry.Backoff = 200 * time.Millisecond
	scfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	sp, err := sarama.NewSyncProducer([]string{addr}, scfg)
	require.NoError(t, err)
	t.Cleanup(func() { sp.Close() })
	transport := &kafka.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Transport: transport, RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond, MaxAttempts: 20, WriteBackoffMin: 100 * time.Millisecond, WriteBackoffMax: time.Second}
	t.Cleanup(func() { w.Close() })
	return &churnProducers{t: t, addr: addr, topic: topic, sarama: sp, kgo: w}
}

func (c *churnProducers) phase(name string, n int) {
	t := c.t
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("sarama-%s-%d", name, i)
			_, _, err := c.sarama.SendMessage(&sarama.ProducerMessage{Topic: c.topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(v)})
			if err != nil {
				t.Errorf("sarama %s: %v", v, err)
				return
			}
			c.add(v)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i += 10 {
			var msgs []kafka.Message
			var vs []string
			for j := i; j < i+10 && j < n; j++ {
				v := fmt.Sprintf("kafkago-%s-%d", name, j)
				msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(j)), Value: []byte(v)})
				vs = append(vs, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := c.kgo.WriteMessages(ctx, msgs...)
			cancel()
			if err != nil {
				t.Errorf("kafka-go %v: %v", vs, err)
				return
			}
			c.add(vs...)
		}
	}()
	go func() {
		defer wg.Done()
		var in strings.Builder
		var vs []string
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("kcat-%s-%d", name, i)
			fmt.Fprintf(&in, "%d:%s\n", i, v)
			vs = append(vs, v)
		}
		_, stderr := kcat(t, c.addr, in.String(), "-P", "-t", c.topic, "-K", ":", "-X", "acks=all",
			"-X", "message.timeout.ms=60000")
		if strings.Contains(stderr, "ERROR") || strings.Contains(stderr, "Failed") {
			t.Errorf("kcat reported errors: %s", stderr)
			return
		}
		c.add(vs...)
	}()
	wg.Wait()
}

func (c *churnProducers) add(vs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, vs...)
}

// TestClientsThroughBrokerChurn has kcat (librdkafka), sarama and kafka-go
// produce with acks=all through the gateway while a broker is killed (SIGKILL)
// and restarted, and then read everything back, each with its own consumer
// (kcat to the end of every partition, sarama and kafka-go in consumer groups):
// every acknowledged record is read, and no client saw an error.
func TestClientsThroughBrokerChurn(t *testing.T) {
	_, err := exec.LookPath(kcatPath)
	require.NoError(t, err, "kcat is needed (apt-get install kcat; .ci/run installs it)")
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic = "churn"
	createTopic(t, g.Addr(), topic, 3, 3)

	prods := newChurnProducers(t, g.Addr(), topic)

	const n = 150
	prods.phase("before", n)
	victim := cl.Running()[0]
	require.NoError(t, cl.Kill(victim))
	prods.phase("killed", n)
	require.NoError(t, cl.Restart(testCtx(t, 2*time.Minute), victim))
	waitInSync(t, cl, g.Addr(), topic)
	prods.phase("restarted", n)
	require.False(t, t.Failed())

	readBackThreeWays(t, g.Addr(), topic, prods.sent, 3*3*n, "churn")
}

// readBackThreeWays reads topic through the gateway with kcat (to the end of
// every partition), a sarama consumer group and a kafka-go consumer group, and
// requires each to see every value of sent (want of them, distinct).
func readBackThreeWays(t *testing.T, addr, topic string, sent []string, want int, group string) {
	t.Helper()
	all := map[string]bool{}
	for _, v := range sent {
		all[v] = true
	}
	require.Len(t, all, want)

	// kcat reads every partition to its end
	out, _ := kcat(t, addr, "", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
	got := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		got[l] = true
	}
	requireAll(t, "kcat", all, got)

	// sarama in a consumer group
	ccfg := sarama.NewConfig()
	ccfg.Version = sarama.V2_8_0_0
	ccfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	ccfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	grp, err := sarama.NewConsumerGroup([]string{addr}, group+"-sarama", ccfg)
	require.NoError(t, err)
	t.Cleanup(func() { grp.Close() })
	h := &collector{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := grp.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	testutil.WaitFor(t, 2*time.Minute, "sarama group consumed everything", func() bool { return h.count() >= len(all) })
	cancel()
	require.NoError(t, <-consumed)
	requireAll(t, "sarama", all, h.snapshot())

	// kafka-go in a consumer group
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: group + "-kafkago", Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 10 * time.Second})
	t.Cleanup(func() { r.Close() })
	kg := map[string]bool{}
	rctx := testCtx(t, 2*time.Minute)
	for len(kg) < len(all) {
		m, err := r.ReadMessage(rctx)
		require.NoError(t, err, "kafka-go after %d of %d", len(kg), len(all))
		kg[string(m.Value)] = true
	}
	requireAll(t, "kafka-go", all, kg)
}

// waitInSync waits until every partition of topic has its full ISR back, so the
// restarted broker is part of the cluster again.
func waitInSync(t *testing.T, cl *chaos.Cluster, addr, topic string) {
	t.Helper()
	require.NoError(t, cl.WaitHealthy(testCtx(t, 2*time.Minute), 90*time.Second, topic))
}

func requireAll(t *testing.T, who string, want, got map[string]bool) {
	t.Helper()
	var missing []string
	for v := range want {
		if !got[v] {
			missing = append(missing, v)
		}
	}
	require.Empty(t, missing, "%s did not read %d acknowledged records", who, len(missing))
}

// collector is a sarama consumer group handler that remembers the values seen.
type collector struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (c *collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collector) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		c.mu.Lock()
		c.seen[string(m.Value)] = true
		c.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func (c *collector) snapshot() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]bool, len(c.seen))
	for k := range c.seen {
		m[k] = true
	}
	return m
}

// brokerOnly is a broker-only node (process.roles=broker) started next to a
// chaos cluster; it gets its node id from the controller.
type brokerOnly struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{}
}

// startBrokerOnly starts a broker-only node that joins cl and waits until it
// serves. It is killed at cleanup.
func startBrokerOnly(t *testing.T, cl *chaos.Cluster) *brokerOnly {
	t.Helper()
	var addrs []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addrs = append(addrs, l.Addr().String())
		require.NoError(t, l.Close())
	}
	var quorum []string
	for _, n := range cl.Nodes() {
		quorum = append(quorum, n.ControllerAddr)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "broker.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("flush: always\n"), 0o644))
	cmd := exec.Command(testutil.SluiceBin(t), "broker", "--process-roles", "broker",
		"--controller-quorum-bootstrap-servers", strings.Join(quorum, ","), "--listen", addrs[0],
		"--controller-listen", addrs[1], "--metrics-listen", addrs[2], "--data-dir", filepath.Join(dir, "data"), "--config", cfgPath)
	b := &brokerOnly{cmd: cmd, out: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = b.out, b.out
	chaos.OwnProcessGroup(cmd)
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("broker-only node log:\n%s", tail(b.out.String(), 40))
		}
	})
	testutil.WaitFor(t, 90*time.Second, "broker-only node ready", func() bool { return strings.Contains(b.out.String(), "broker ready") })
	return b
}

// TestClientsThroughScaleOutAndDrain has kcat (librdkafka), sarama and kafka-go
// produce with acks=all through the gateway while a broker-only node joins
// (the controller's balancer moves replicas and leaders to it) and an original
// broker is drained with `sluice cluster drain` and stopped; then each reads
// everything back. No client saw an error and every acknowledged record is
// read.
func TestClientsThroughScaleOutAndDrain(t *testing.T) {
	_, err := exec.LookPath(kcatPath)
	require.NoError(t, err, "kcat is needed (apt-get install kcat; .ci/run installs it)")
	cl := startCluster(t, 3)
	g := startGateway(t, cl.Bootstrap())
	const topic = "scale"
	createTopic(t, g.Addr(), topic, 6, 3)
	prods := newChurnProducers(t, g.Addr(), topic)
	const n = 150

	prods.phase("before", n)
	startBrokerOnly(t, cl)
	prods.phase("joined", n)

	// drain broker 1 while the clients produce
	drained := make(chan error, 1)
	var drainOut []byte
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, testutil.SluiceBin(t), "cluster", "drain", "--bootstrap", strings.Join(cl.Bootstrap(), ","), "1")
		var err error
		drainOut, err = cmd.CombinedOutput()
		drained <- err
	}()
	prods.phase("draining", n)
	select {
	case err := <-drained:
		require.NoError(t, err, "sluice cluster drain 1:\n%s", drainOut)
	case <-time.After(4 * time.Minute):
		t.Fatal("drain did not finish")
	}
	require.NoError(t, cl.Stop(1, 30*time.Second))
	prods.phase("drained", n)
	require.False(t, t.Failed())

	readBackThreeWays(t, g.Addr(), topic, prods.sent, 4*3*n, "scale")
}
