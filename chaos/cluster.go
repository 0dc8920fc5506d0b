package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/internal/loopback"
)

// readyLine is what `sluice broker` logs once it serves Kafka.
const readyLine = "broker ready"

// ClusterConfig describes a local cluster of `sluice broker` processes on loopback ports.
type ClusterConfig struct {
	// Bin is the sluice binary; it must accept `broker` with --node-id, --listen, --data-dir,
	// --controller-listen, --controller-quorum and --config. Required.
	Bin string
	// Dir holds every node's data directory, log file and broker config file. Required.
	Dir string
	// Brokers is the number of broker processes, default 3. A single broker is started without
	// --controller-quorum, as a one-voter quorum.
	Brokers int
	// BrokerConfig is the YAML given to every broker with --config, default "flush: always\n" so that a
	// replica acknowledges only what it has fsynced.
	BrokerConfig string
	// ExtraArgs are appended to every broker's command line.
	ExtraArgs []string
	// ReadyTimeout bounds the wait for a started broker to log "broker ready", default 30s.
	ReadyTimeout time.Duration
}

func (c *ClusterConfig) setDefaults() error {
	if c.Bin == "" {
		return errors.New("cluster: Bin is required")
	}
	if c.Dir == "" {
		return errors.New("cluster: Dir is required")
	}
	if c.Brokers == 0 {
		c.Brokers = 3
	}
	if c.Brokers < 0 {
		return fmt.Errorf("cluster: Brokers %d is negative", c.Brokers)
	}
	if c.BrokerConfig == "" {
		c.BrokerConfig = "flush: always\n"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	return nil
}

// Cluster is a local cluster of broker processes whose members can be killed, stopped and restarted
// in place: a node keeps its node ID, ports and data directory for its whole life.
type Cluster struct {
	cfg        ClusterConfig
	configPath string
	nodes      []*Node // nodes[i] has ID i+1
}

// Node is one broker process of a Cluster.
type Node struct {
	// ID is the node ID, which is also the broker ID.
	ID int32
	// Addr is the Kafka listener, 127.0.0.1:port.
	Addr string
	// ControllerAddr is the Raft listener (--controller-listen).
	ControllerAddr string
	// MetricsAddr serves the broker's /metrics and admin interface (--metrics-listen).
	MetricsAddr string
	// DataDir is the node's --data-dir.
	DataDir string
	// LogPath is the file that collects the output of every run of the node.
	LogPath string

	probeOnce sync.Once
	probe     *kgo.Client
	probeErr  error

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current run has exited
	exitErr error
	ready   chan struct{} // closed when the current run logged readyLine
	runs    int
	logf    *readyWriter // the current run's log, for the harness's own notes
	// wantRunning is false once the harness has signalled the process to end, so that an exit
	// nobody asked for is told apart from a kill.
	wantRunning bool
}

// NewCluster prepares a cluster's directories, config file and ports without starting anything.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, configPath: filepath.Join(cfg.Dir, "broker.yaml")}
	if err := os.WriteFile(c.configPath, []byte(cfg.BrokerConfig), 0o644); err != nil {
		return nil, err
	}
	ports, err := freeLoopbackPorts(3 * cfg.Brokers)
	if err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Brokers; i++ {
		n := &Node{
			ID:             int32(i + 1),
			Addr:           fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			ControllerAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			MetricsAddr:    fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
			DataDir:        filepath.Join(cfg.Dir, fmt.Sprintf("node-%d", i+1)),
			LogPath:        filepath.Join(cfg.Dir, fmt.Sprintf("node-%d.log", i+1)),
		}
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// StartCluster starts every node of a new cluster and waits until each has logged "broker ready" and
// each reports every broker in Metadata. On error, the nodes already started are killed.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	c, err := NewCluster(cfg)
	if err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := c.Start(n.ID); err != nil {
			c.Close()
			return nil, err
		}
	}
	for _, n := range c.nodes {
		if err := c.WaitReady(ctx, n.ID); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitBrokers(ctx, 30*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Nodes returns the nodes in ID order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node with the given ID, or nil.
func (c *Cluster) Node(id int32) *Node {
	if id < 1 || int(id) > len(c.nodes) {
		return nil
	}
	return c.nodes[id-1]
}

// Bootstrap returns every node's Kafka address, for kgo.SeedBrokers.
func (c *Cluster) Bootstrap() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Running returns the IDs of the nodes whose process is running.
func (c *Cluster) Running() []int32 {
	var ids []int32
	for _, n := range c.nodes {
		if n.Running() {
			ids = append(ids, n.ID)
		}
	}
	return ids
}

// Args returns the command line (without the binary) node id is started with.
func (c *Cluster) Args(id int32) []string {
	n := c.Node(id)
	args := []string{"broker",
		"--node-id", fmt.Sprint(n.ID),
		"--listen", n.Addr,
		"--data-dir", n.DataDir,
		"--config", c.configPath,
		"--metrics-listen", n.MetricsAddr,
	}
	if len(c.nodes) > 1 {
		voters := make([]string, len(c.nodes))
		for i, v := range c.nodes {
			voters[i] = fmt.Sprintf("%d@%s", v.ID, v.ControllerAddr)
		}
		args = append(args, "--controller-listen", n.ControllerAddr,
			"--controller-quorum", strings.Join(voters, ","))
	}
	return append(args, c.cfg.ExtraArgs...)
}

// Start starts node id's process without waiting for it to be ready (see WaitReady).
func (c *Cluster) Start(id int32) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("no node %d", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !isClosed(n.exited) {
		return fmt.Errorf("node %d is already running", id)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.runs++
	args := c.Args(id)
	fmt.Fprintf(logf, "=== chaos: run %d of node %d at %s: %s %s\n", n.runs, id,
		time.Now().Format(time.RFC3339Nano), c.cfg.Bin, strings.Join(args, " "))
	ready := make(chan struct{})
	w := &readyWriter{file: logf, ready: ready}
	cmd := exec.Command(c.cfg.Bin, args...)
	cmd.Stdout = w
	cmd.Stderr = w
	// A process group of its own keeps a terminal's Ctrl-C (meant for `sluice chaos`) from stopping
	// the brokers under its feet; Close kills them.
	OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start node %d: %w", id, err)
	}
	fmt.Fprintf(logf, "=== chaos: node %d run %d is pid %d\n", id, n.runs, cmd.Process.Pid)
	exited := make(chan struct{})
	n.cmd, n.exited, n.ready, n.exitErr, n.logf = cmd, exited, ready, nil, w
	n.wantRunning = true
	go func() {
		err := cmd.Wait()
		w.note(fmt.Sprintf("=== chaos: node %d exited at %s: %v\n", id, time.Now().Format(time.RFC3339Nano), err))
		w.close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// WaitReady waits until node id's current run has logged "broker ready", it exits, ctx ends or
// ReadyTimeout passes.
func (c *Cluster) WaitReady(ctx context.Context, id int32) error {
	n := c.Node(id)
	n.mu.Lock()
	ready, exited := n.ready, n.exited
	n.mu.Unlock()
	if ready == nil {
		return fmt.Errorf("node %d was never started", id)
	}
	t := time.NewTimer(c.cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("node %d exited before it was ready: %v\n%s", id, n.ExitErr(), c.LogTail(id, 30))
	case <-t.C:
		return fmt.Errorf("node %d not ready after %v\n%s", id, c.cfg.ReadyTimeout, c.LogTail(id, 30))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart starts a stopped node again on its ports and data directory and waits until it is ready.
func (c *Cluster) Restart(ctx context.Context, id int32) error {
	if err := c.Start(id); err != nil {
		return err
	}
	return c.WaitReady(ctx, id)
}

// Kill sends SIGKILL to node id and waits (up to 10s) until the process is gone.
func (c *Cluster) Kill(id int32) error {
	return c.signal(id, syscall.SIGKILL, 10*time.Second)
}

// Pause freezes node id with SIGSTOP, like a long GC pause or a hung machine; Resume continues it.
func (c *Cluster) Pause(id int32) error { return c.sendOnly(id, sigPause) }

// Resume continues a paused node with SIGCONT.
func (c *Cluster) Resume(id int32) error { return c.sendOnly(id, sigResume) }

func (c *Cluster) sendOnly(id int32, sig syscall.Signal) error {
	if sig == 0 {
		return errNoPause
	}
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("no node %d", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || isClosed(n.exited) {
		return fmt.Errorf("node %d is not running", id)
	}
	n.note("%s sent to pid %d", sigName(sig), n.cmd.Process.Pid)
	return n.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM to node id and waits up to timeout for it to exit; it returns the exit error of
// the process (nil for exit status 0).
func (c *Cluster) Stop(id int32, timeout time.Duration) error {
	if err := c.signal(id, syscall.SIGTERM, timeout); err != nil {
		return err
	}
	return c.Node(id).ExitErr()
}

func (c *Cluster) signal(id int32, sig syscall.Signal, timeout time.Duration) error {
	n := c.Node(id)
	if n == nil {
		return fmt.Errorf("no node %d", id)
	}
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	if cmd == nil || isClosed(exited) {
		n.mu.Unlock()
		return fmt.Errorf("node %d is not running", id)
	}
	n.wantRunning = false
	n.note("%s sent to pid %d", sigName(sig), cmd.Process.Pid)
	n.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal node %d: %w", id, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C:
		return fmt.Errorf("node %d still running %v after %v", id, timeout, sig)
	}
}

// Close kills every running node and closes the probe clients. It is safe to call more than once.
func (c *Cluster) Close() {
	for _, n := range c.nodes {
		if n.Running() {
			_ = c.Kill(n.ID)
		}
		if n.probe != nil {
			n.probe.Close()
		}
	}
}

// LogTail returns the last lines of node id's log file (all runs).
func (c *Cluster) LogTail(id int32, lines int) string {
	b, err := os.ReadFile(c.Node(id).LogPath)
	if err != nil {
		return err.Error()
	}
	return tailLines(string(b), lines)
}

// Logs returns the last lines of every node's log, each under a header, for failure messages.
func (c *Cluster) Logs(lines int) string {
	var sb strings.Builder
	for _, n := range c.nodes {
		fmt.Fprintf(&sb, "----- node %d (%s), last %d lines -----\n%s\n", n.ID, n.LogPath, lines, c.LogTail(n.ID, lines))
	}
	return sb.String()
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !isClosed(n.exited)
}

// Unexpected returns an error if the node's process exited without the harness signalling it, as
// when it crashed or something outside the harness killed it.
func (n *Node) Unexpected() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.wantRunning && n.exited != nil && isClosed(n.exited) {
		return fmt.Errorf("node %d exited by itself (not signalled by the harness): %v; see %s", n.ID, n.exitErr, n.LogPath)
	}
	return nil
}

// note writes a harness line into the node's log; n.mu must be held.
func (n *Node) note(format string, args ...any) {
	if n.logf != nil {
		n.logf.note(fmt.Sprintf("=== chaos: %s: node %d: %s\n", time.Now().Format(time.RFC3339Nano), n.ID, fmt.Sprintf(format, args...)))
	}
}

// ExitErr is the exit error of the node's last run (nil while running or after exit status 0).
func (n *Node) ExitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitErr
}

// Runs is how many times the node has been started.
func (n *Node) Runs() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.runs
}

func sigName(sig syscall.Signal) string {
	switch {
	case sig == syscall.SIGKILL:
		return "SIGKILL"
	case sig == syscall.SIGTERM:
		return "SIGTERM"
	case sig == sigPause:
		return "SIGSTOP"
	case sig == sigResume:
		return "SIGCONT"
	}
	return sig.String()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// readyWriter appends a process's output to its log file and closes ready at the first readyLine.
// The process's output and the harness's notes may be written concurrently, hence mu.
type readyWriter struct {
	mu    sync.Mutex
	file  *os.File
	ready chan struct{}
	seen  bool
	tail  []byte // the unfinished last line, to find readyLine split across writes
}

func (w *readyWriter) note(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file != nil {
		_, _ = w.file.WriteString(s)
	}
}

func (w *readyWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.file.Close()
	w.file = nil
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen {
		w.tail = append(w.tail, p...)
		if bytes.Contains(w.tail, []byte(readyLine)) {
			w.seen = true
			w.tail = nil
			close(w.ready)
		} else if i := bytes.LastIndexByte(w.tail, '\n'); i >= 0 {
			w.tail = append(w.tail[:0], w.tail[i+1:]...)
		}
	}
	return w.file.Write(p)
}

// freeLoopbackPorts reserves n distinct loopback ports for the cluster's processes. They stay
// reserved until this process exits, since nodes restart in place on the same ports for the
// cluster's whole life (see package loopback).
func freeLoopbackPorts(n int) ([]int, error) {
	p, err := loopback.Reserve(n)
	if err != nil {
		return nil, err
	}
	return p.List(), nil
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
