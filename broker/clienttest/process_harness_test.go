package clienttest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// buildSluice is the sluice binary the process tests run: $SLUICE_BIN (a release build, say; it
// must accept `broker --listen --data-dir`), or cmd/sluice built once per test binary
// (testutil.SluiceBin), removed by TestMain.
func buildSluice(t testing.TB) string {
	t.Helper()
	if isKfake && os.Getenv("SLUICE_BIN") == "" {
		t.Skip("process tests need a sluice binary: set SLUICE_BIN with -tags kfake")
	}
	return testutil.SluiceBin(t)
}

func cleanupSluiceBinary() { testutil.RemoveBuilt() }

// sluiceProcess is bin/sluice running as a child process on a fixed loopback
// port and data dir, so that it can be killed and restarted in place.
type sluiceProcess struct {
	t       testing.TB
	bin     string
	Addr    string
	DataDir string

	cmd     *exec.Cmd
	log     *testutil.Buffer
	exited  chan struct{}
	exitErr error
}

// startProcess builds bin/sluice (once) and starts it on a loopback port reserved for the test
// with a fresh data dir. The process is killed at cleanup if still running.
func startProcess(t testing.TB) *sluiceProcess {
	t.Helper()
	p := &sluiceProcess{
		t:       t,
		bin:     buildSluice(t),
		Addr:    testutil.Addrs(t, 1)[0],
		DataDir: t.TempDir(),
	}
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("sluice process log (last run):\n%s", tail(p.log.String(), 100))
		}
	})
	p.start()
	return p
}

// start launches the process and waits up to 30s for its "ready" log line.
func (p *sluiceProcess) start() {
	p.t.Helper()
	p.log = &testutil.Buffer{}
	p.cmd = exec.Command(p.bin, "broker", "--listen", p.Addr, "--data-dir", p.DataDir)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	require.NoError(p.t, p.cmd.Start())
	p.exited = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	testutil.WaitFor(p.t, 30*time.Second, "sluice process to log ready", func() bool {
		if !p.running() {
			p.t.Fatalf("sluice exited before ready: %v\n%s", p.exitErr, tail(p.log.String(), 50))
		}
		return strings.Contains(p.log.String(), "ready")
	})
}

func (p *sluiceProcess) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *sluiceProcess) kill9() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("process still running 10s after SIGKILL")
	}
}

// sigterm sends SIGTERM and returns the exit code once the process is gone.
func (p *sluiceProcess) sigterm(timeout time.Duration) int {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("process still running %v after SIGTERM", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.exitErr, &ee) {
		return ee.ExitCode()
	}
	require.NoError(p.t, p.exitErr)
	return 0
}

// restart starts the process again on the same port and data dir (Go listeners
// set SO_REUSEADDR, so the port is free again as soon as the old process is).
func (p *sluiceProcess) restart() {
	p.t.Helper()
	require.False(p.t, p.running(), "restart of a running process")
	p.start()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
