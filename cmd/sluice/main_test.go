//go:build !lean

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
)

// sluiceBin is the binary the tests run: $SLUICE_BIN, or built once by
// TestMain.
var sluiceBin string

func TestMain(m *testing.M) {
	bin, err := testutil.BuildSluice()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = bin
	code := m.Run()
	testutil.RemoveBuilt()
	os.Exit(code)
}

// result is a finished run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// sluice runs the binary with args in dir (the test's temp dir if empty) and
// waits up to a minute for it.
func sluice(t *testing.T, dir string, args ...string) result {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sluiceBin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{code, out.String(), errb.String()}
}

func subcommandNames() []string {
	var names []string
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		r := sluice(t, "", args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
		for _, n := range append(subcommandNames(), "help", "version") {
			require.Regexp(t, `(?m)^  `+n+` +\S`, r.stdout, "%v", args)
		}
	}
	r := sluice(t, "")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "Usage: sluice COMMAND")
}

func TestVersionFromBuildInfo(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		r := sluice(t, "", arg)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^sluice \S+ .*go1\.\d+.* linux/`, r.stdout)
	}
}

func TestUnknownCommandSuggests(t *testing.T) {
	for arg, want := range map[string]string{
		"brokr":    `sluice: unknown command "brokr"; did you mean "broker"?`,
		"tickts":   `sluice: unknown command "tickts"; did you mean "tickets"?`,
		"alert":    `sluice: unknown command "alert"; did you mean "alerting"?`,
		"frobnify": `sluice: unknown command "frobnify"` + "\n",
	} {
		r := sluice(t, "", arg)
		require.Equal(t, 2, r.code, arg)
		require.Contains(t, r.stderr, want)
		require.Contains(t, r.stderr, "sluice help")
	}
}

var doubledDefault = regexp.MustCompile(`\(default[^)]*\).*\(default`)

// TestSubcommandHelp: every subcommand's --help (and `sluice help CMD`)
// exits 0, and no flag says its default twice.
func TestSubcommandHelp(t *testing.T) {
	for _, n := range subcommandNames() {
		for _, args := range [][]string{{n, "--help"}, {n, "-h"}, {"help", n}} {
			r := sluice(t, "", args...)
			require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
			usage := r.stdout + r.stderr
			require.Contains(t, usage, "-", "%v prints its flags", args)
			for _, line := range strings.Split(usage, "\n") {
				require.NotRegexp(t, doubledDefault, line, "%v", args)
			}
		}
	}
	// A wrong flag is a usage error.
	r := sluice(t, "", "broker", "--no-such-flag")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "flag provided but not defined: -no-such-flag")
}

// startBroker starts `sluice broker` with args in dir and waits until it
// holds its log.dir (the lock file names its pid).
func startBroker(t *testing.T, dir, dataDir string, args ...string) (*exec.Cmd, *testutil.Buffer) {
	t.Helper()
	cmd := exec.Command(sluiceBin, append([]string{"broker", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	errb := &testutil.Buffer{}
	cmd.Stderr = errb
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lock := filepath.Join(dir, dataDir, "sluice.lock")
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(lock)
		if strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			return cmd, errb
		}
		require.False(t, time.Now().After(deadline), "broker never took %s: %s", lock, errb.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// stopWith sends sig and waits (a minute at most) for the process to exit.
func stopWith(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) error {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(sig))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("sluice broker did not stop within a minute of %v", sig)
		return nil
	}
}

// TestBrokerDefaultDataDirAndHeldDir: `sluice broker` without --data-dir
// uses sluice-data/broker-<node id>, not make run's ./data; a second broker
// on a held directory fails at once naming the holder; SIGTERM stops the
// first cleanly.
func TestBrokerDefaultDataDirAndHeldDir(t *testing.T) {
	dir := t.TempDir()
	first, firstErr := startBroker(t, dir, filepath.Join("sluice-data", "broker-1"))
	_, err := os.Stat(filepath.Join(dir, "data"))
	require.True(t, os.IsNotExist(err), "make run's ./data is left alone")

	start := time.Now()
	r := sluice(t, dir, "broker", "--listen", "127.0.0.1:0")
	require.Equal(t, 1, r.code, r.stderr)
	require.Less(t, time.Since(start), 30*time.Second)
	require.Contains(t, r.stderr, fmt.Sprintf("log.dir sluice-data/broker-1 is in use by another broker (pid %d: %s broker", first.Process.Pid, sluiceBin))

	// Another node id has a directory of its own.
	second, _ := startBroker(t, dir, filepath.Join("sluice-data", "broker-2"), "--node-id", "2")
	require.NoError(t, stopWith(t, second, syscall.SIGINT))
	require.NoError(t, stopWith(t, first, syscall.SIGTERM), firstErr.String())
	require.NotContains(t, firstErr.String(), "level=ERROR")
}

// TestBrokerStartupHonoursSignals: a broker that cannot finish starting (its
// quorum's other voters are not there) still stops at SIGTERM and SIGINT.
func TestBrokerStartupHonoursSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			cmd, errb := startBroker(t, dir, "d", "--data-dir", "d", "--controller-listen", "127.0.0.1:0",
				"--controller-quorum", "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3")
			err := stopWith(t, cmd, sig)
			if err != nil {
				require.IsType(t, &exec.ExitError{}, err, errb.String())
			}
		})
	}
}
