// Package testutil is the project's one test-support package: polling with a deadline instead of
// sleeping, loopback ports reserved for child processes, the sluice binary that process tests
// run, and a log buffer servers write while the test reads it. In-process brokers for tests are
// package broker/brokertest's (it imports the broker, which this package must not).
//
// Process tests use the binary `make test` builds before running them (it exports SLUICE_BIN); run
// alone with `go test`, a package builds cmd/sluice once per test binary. A build failure fails the
// test: a regression must never show up as a skip.
package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicemq/sluice/internal/loopback"
)

// pollInterval is how often WaitFor checks its condition.
const pollInterval = 20 * time.Millisecond

// WaitFor polls cond until it is true, failing the test with what if it is still false after d.
// Deadlines should be generous: tests must pass on a machine at load average 10.
func WaitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	WaitForErr(tb, d, what, func() (bool, error) { return cond(), nil })
}

// WaitForErr is WaitFor for a condition that can say why it is not met yet: the last error is
// part of the failure message. An error wrapped by Permanent ends the wait at once.
func WaitForErr(tb testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		start := time.Now()
		ok, err := cond()
		if ok {
			return
		}
		var p permanent
		if errors.As(err, &p) {
			tb.Fatalf("%s: %v", what, p.err)
		}
		last = err
		if time.Now().After(deadline) {
			break
		}
		// A slow condition (an HTTP query, a client request) is not polled faster than it runs.
		time.Sleep(max(pollInterval, time.Since(start)))
	}
	if last != nil {
		tb.Fatalf("timed out after %v waiting for %s: %v", d, what, last)
	}
	tb.Fatalf("timed out after %v waiting for %s", d, what)
}

// Permanent marks a condition's error that no amount of waiting fixes (a process died): WaitForErr
// fails at once.
func Permanent(err error) error { return permanent{err} }

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Ports reserves n loopback ports for the test (see package loopback: no other process or test is
// given them) and releases them at cleanup. Use them for processes that must be told their port;
// in-process servers should listen on 127.0.0.1:0 instead.
func Ports(tb testing.TB, n int) []int {
	tb.Helper()
	p, err := loopback.Reserve(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Release)
	return p.List()
}

// Addrs is Ports as 127.0.0.1:port addresses.
func Addrs(tb testing.TB, n int) []string {
	tb.Helper()
	p, err := loopback.Reserve(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Release)
	return p.Addrs()
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// SluiceBin returns the sluice binary for process tests: $SLUICE_BIN, or cmd/sluice built once per
// test binary. It fails the test if the binary cannot be built.
func SluiceBin(tb testing.TB) string {
	tb.Helper()
	bin, err := BuildSluice()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// BuildSluice is SluiceBin for TestMain: $SLUICE_BIN, or cmd/sluice built once into a temporary
// directory that RemoveBuilt deletes.
func BuildSluice() (string, error) {
	if bin := os.Getenv("SLUICE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("SLUICE_BIN: %w", err)
		}
		return bin, nil
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "sluice-test-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sluicemq/sluice/cmd/sluice").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/sluice: %w\n%s", err, out)
		}
	})
	return binPath, binErr
}

// RemoveBuilt deletes the binary BuildSluice built, if any; call it from TestMain after m.Run.
func RemoveBuilt() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// Buffer is a log sink that a server's goroutines (or a child process) write while the test reads
// it: a bytes.Buffer behind a mutex. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Prometheus runs Debian's prometheus with config (the text of its prometheus.yml) on a loopback
// port reserved for the test until cleanup, and returns its URL once /-/ready answers. The TSDB
// lives in tsdb, or in a new directory when tsdb is empty; extra are further flags. Its log is
// printed if the test failed. Without prometheus on PATH the test is skipped (.ci/run installs
// Debian's prometheus package).
func Prometheus(tb testing.TB, config, tsdb string, extra ...string) string {
	tb.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		tb.Skip("prometheus not on PATH: install Debian's prometheus package (.ci/run does)")
	}
	dir := tb.TempDir()
	if tsdb == "" {
		tsdb = filepath.Join(dir, "tsdb")
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := Addrs(tb, 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config.file", cfg, "--storage.tsdb.path", tsdb,
		"--web.listen-address", addr}, extra...)...)
	var log Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("starting prometheus: %v", err)
	}
	tb.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if tb.Failed() {
			tb.Logf("prometheus log:\n%s", log.String())
		}
	})
	url := "http://" + addr
	WaitForErr(tb, 60*time.Second, "prometheus ready", func() (bool, error) {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("status %s", resp.Status)
	})
	return url
}
