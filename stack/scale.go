package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/chaos/scaling"
)

// scaleNodesDir is where the scaling scenario's nodes keep their data and logs, under DataDir.
const scaleNodesDir = "scale"

// checkScaleDataDir refuses a data directory a scaling scenario ran on before: its nodes would be
// registered, the original broker 3 unregistered, and the scenario's topic would exist.
func checkScaleDataDir(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, scaleNodesDir)); err == nil {
		return fmt.Errorf("the scaling scenario needs a new data directory, and %s has a previous run: remove it (make demo SCENARIO=scale does)", dataDir)
	}
	return nil
}

// scaleCluster is the scaling scenario's cluster on the local stack: the three original
// controllers+brokers run in the stack's process (so the scenario stops one cleanly and kills an added
// one with SIGKILL), the added brokers and controller are `sluice broker` processes.
type scaleCluster struct {
	bin        string
	dir        string
	quorum     string // the controllers' addresses, --controller-quorum-bootstrap-servers
	flush      string
	stopBroker func(id int32) error

	mu    sync.Mutex
	nodes map[int32]*scaleProc
}

// scaleProc is a node the scenario started.
type scaleProc struct {
	name                   string
	args                   []string
	addr, metrics, logPath string
	cmd                    *exec.Cmd
	done                   chan struct{}
	starts                 int
}

func freeLoopbackPorts(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// newProc prepares a node on free loopback ports; extra are its role and id flags.
func (c *scaleCluster) newProc(name string, extra ...string) (*scaleProc, error) {
	addrs, err := freeLoopbackPorts(3)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &scaleProc{name: name, addr: addrs[0], metrics: addrs[2], logPath: filepath.Join(c.dir, name+".log")}
	p.args = append([]string{"broker", "--listen", addrs[0], "--controller-listen", addrs[1], "--metrics-listen", addrs[2],
		"--data-dir", dir, "--flush", c.flush, "--controller-quorum-bootstrap-servers", c.quorum}, extra...)
	return p, nil
}

// start runs p and waits until its log says ready (the line "<role> ready" of this run).
func (c *scaleCluster) start(ctx context.Context, p *scaleProc, ready string) error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logFile, "=== start %d: sluice %s\n", p.starts, strings.Join(p.args, " "))
	cmd := exec.Command(c.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	chaos.OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logFile, "=== %s exited: %v\n", p.name, err)
		logFile.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	marker := fmt.Sprintf("=== start %d:", p.starts)
	return chaos.WaitFor(ctx, 90*time.Second, p.name+" "+ready, func(context.Context) (bool, error) {
		select {
		case <-done:
			return false, chaos.Permanent{Err: fmt.Errorf("%s exited; its log is %s", p.name, p.logPath)}
		default:
		}
		raw, err := os.ReadFile(p.logPath)
		if err != nil {
			return false, err
		}
		cur := string(raw)
		i := strings.LastIndex(cur, marker)
		return i >= 0 && strings.Contains(cur[i:], `msg="`+ready+`"`), nil
	})
}

// nodeID reads the node id the controller allocated from the node's meta.properties.
func nodeIDOf(dir string) (int32, error) {
	f, err := os.Open(filepath.Join(dir, "meta.properties"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "node.id="); ok {
			id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			return int32(id), err
		}
	}
	return 0, fmt.Errorf("no node.id in %s/meta.properties", dir)
}

func (c *scaleCluster) AddBroker(ctx context.Context, name string) (scaling.Node, error) {
	p, err := c.newProc(name, "--process-roles", "broker")
	if err != nil {
		return scaling.Node{}, err
	}
	if err := c.start(ctx, p, "broker ready"); err != nil {
		return scaling.Node{}, err
	}
	id, err := nodeIDOf(filepath.Join(c.dir, name))
	if err != nil {
		return scaling.Node{}, err
	}
	c.mu.Lock()
	c.nodes[id] = p
	c.mu.Unlock()
	return scaling.Node{ID: id, Addr: p.addr, MetricsAddr: p.metrics}, nil
}

func (c *scaleCluster) AddController(ctx context.Context, id int32) error {
	p, err := c.newProc("controller-"+strconv.Itoa(int(id)), "--node-id", strconv.Itoa(int(id)), "--process-roles", "controller")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.nodes[id] = p
	c.mu.Unlock()
	return c.start(ctx, p, "controller ready")
}

func (c *scaleCluster) proc(id int32) *scaleProc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *scaleCluster) Stop(ctx context.Context, id int32) error {
	p := c.proc(id)
	if p == nil {
		// An original broker runs in the stack's process: a stop that hangs fails the step.
		done := make(chan error, 1)
		go func() { done <- c.stopBroker(id) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(90 * time.Second):
			return fmt.Errorf("broker %d did not stop within 90s (%s)", id, c.dumpGoroutines(id))
		}
	}
	return p.signal(ctx, syscall.SIGTERM)
}

// dumpGoroutines writes every goroutine's stack of this process to a file in
// the scenario's directory, for a broker whose stop hangs, and says where.
func (c *scaleCluster) dumpGoroutines(id int32) string {
	name := filepath.Join(c.dir, fmt.Sprintf("goroutines-broker-%d-stop.txt", id))
	f, err := os.Create(name)
	if err != nil {
		return "no goroutine dump: " + err.Error()
	}
	defer f.Close()
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		return "no goroutine dump: " + err.Error()
	}
	return "goroutines in " + name
}

func (c *scaleCluster) Kill(ctx context.Context, id int32) error {
	p := c.proc(id)
	if p == nil {
		return fmt.Errorf("broker %d runs in the stack's process: only an added broker can be killed", id)
	}
	return p.signal(ctx, syscall.SIGKILL)
}

func (c *scaleCluster) Restart(ctx context.Context, id int32) error {
	p := c.proc(id)
	if p == nil {
		return fmt.Errorf("broker %d was not started by the scenario", id)
	}
	return c.start(ctx, p, "broker ready")
}

// signal sends sig to p and waits until it exited.
func (p *scaleProc) signal(ctx context.Context, sig syscall.Signal) error {
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s did not exit within 60s of %v", p.name, sig)
	}
}

// close stops every node the scenario started: SIGTERM, SIGKILL after 30 s.
func (c *scaleCluster) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.signal(ctx, syscall.SIGTERM); err != nil {
				p.signal(context.Background(), syscall.SIGKILL)
			}
		}()
	}
	wg.Wait()
}

// runScaleDemo runs the scaling scenario (chaos/scaling) on the stack and prints each step; the
// stack keeps running afterwards, with the scenario's nodes, until ctx ends.
func runScaleDemo(ctx context.Context, cl *scaleCluster, cfg scaling.Config, out io.Writer) error {
	defer cl.close()
	fmt.Fprintf(out, "scaling: the scenario starts; the added nodes' data and logs are in %s; watch the Balance row of the cluster overview dashboard and /api/v1/events\n", cl.dir)
	started := time.Now()
	res, err := scaling.Run(ctx, cl, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(out, "scaling: FAILED after %s: %v\n", time.Since(started).Round(time.Second), err)
		return err
	}
	fmt.Fprintf(out, "scaling: done in %s: time to balance %s; acknowledged records/s before %.0f, while balancing %.0f (%.2f of before); %d records acknowledged and consumed, no client error\n",
		time.Since(started).Round(time.Second), res.TimeToBalance.Round(100*time.Millisecond), res.Before, res.During, res.Ratio(), res.Acked)
	fmt.Fprintf(out, "scaling: the stack keeps running with brokers %v (Ctrl-C stops it)\n", append([]int32{1, 2}, res.Added...))
	<-ctx.Done()
	return nil
}

var errNoBin = errors.New("the scaling scenario starts `sluice broker` processes: Demo.Bin is required")
