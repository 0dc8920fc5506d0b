package testutil

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records failures instead of failing, and whose cleanups the
// test runs itself.
type recorder struct {
	testing.TB
	failures []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// as runs f as a test body would, on a goroutine that Fatalf may end, then the cleanups.
func (r *recorder) as(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(r.cleanups) - 1; i >= 0; i-- {
				r.cleanups[i]()
			}
		}()
		f()
	}()
	<-done
}

func TestStart(t *testing.T) {
	t.Run("ready, then stopped at cleanup", func(t *testing.T) {
		r := &recorder{TB: t}
		ready := make(chan struct{})
		stopped := false
		r.as(func() {
			Start(r, "svc", func(ctx context.Context) error {
				close(ready)
				<-ctx.Done()
				stopped = true
				return nil
			}).WaitReady(r, ready, time.Minute)
		})
		if len(r.failures) != 0 || !stopped {
			t.Fatalf("failures %q, stopped %v", r.failures, stopped)
		}
	})
	t.Run("ends before it is ready", func(t *testing.T) {
		r := &recorder{TB: t}
		r.as(func() {
			Start(r, "svc", func(context.Context) error { return errors.New("port in use") }).
				WaitReady(r, make(chan struct{}), time.Minute)
			t.Error("WaitReady returned")
		})
		// The error fails the test once, at WaitReady; Stop at cleanup reports it again.
		if len(r.failures) == 0 || !strings.Contains(r.failures[0], "svc ended before it was ready: port in use") {
			t.Fatalf("failures %q", r.failures)
		}
	})
	t.Run("not ready in time", func(t *testing.T) {
		r := &recorder{TB: t}
		r.as(func() {
			Start(r, "svc", func(ctx context.Context) error { <-ctx.Done(); return nil }).
				WaitReady(r, make(chan struct{}), 10*time.Millisecond)
		})
		if len(r.failures) != 1 || !strings.Contains(r.failures[0], "svc not ready within 10ms") {
			t.Fatalf("failures %q", r.failures)
		}
	})
	t.Run("an error at stop fails the test, once", func(t *testing.T) {
		r := &recorder{TB: t}
		r.as(func() {
			run := Start(r, "svc", func(ctx context.Context) error { <-ctx.Done(); return errors.New("flush failed") })
			run.Stop(r)
			run.Stop(r)
		})
		if len(r.failures) != 1 || r.failures[0] != "svc stopped with flush failed" {
			t.Fatalf("failures %q", r.failures)
		}
	})
}
