package broker

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDataDirHelperProcess is not a test: TestDataDirHeldByAnotherProcess runs
// the test binary with it to hold a log.dir in another process.
func TestDataDirHelperProcess(t *testing.T) {
	dir := os.Getenv("SLUICE_TEST_HOLD_DIR")
	if dir == "" {
		return
	}
	l, err := lockDataDir(dir)
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin) // hold until the parent closes stdin
	l.release()
	os.Exit(0)
}

// TestDataDirHeldByAnotherProcess: a broker on a log.dir another process
// holds fails at once, before binding anything, naming the holder's pid and
// command line; once the holder exits the broker starts.
func TestDataDirHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDataDirHelperProcess$")
	cmd.Env = append(os.Environ(), "SLUICE_TEST_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = dir
	start := time.Now()
	_, err = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.Error(t, err)
	require.Less(t, time.Since(start), 10*time.Second, "fails at once, not after a timeout")
	require.Contains(t, err.Error(), "log.dir "+dir+" is in use by another broker (pid "+strconv.Itoa(cmd.Process.Pid)+": "+os.Args[0])

	stdin.Close()
	require.NoError(t, cmd.Wait())
	startTestBroker(t, dir)
}

// TestDataDirHeldInThisProcess: two brokers of one process (the local stack)
// cannot share a log.dir either; the first's lock goes when its Run returns.
func TestDataDirHeldInThisProcess(t *testing.T) {
	dir := t.TempDir()
	first := startTestBroker(t, dir)
	cfg := first.cfg
	_, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.ErrorContains(t, err, "is in use by another broker (pid "+strconv.Itoa(os.Getpid())+", this process)")
	first.stop(t)
	b, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	cancel()
	require.NoError(t, <-done)
}
