package testutil

import (
	"context"
	"testing"
	"time"
)

// stopTimeout bounds how long a component Start ran may take to return once stopped.
const stopTimeout = 30 * time.Second

// Running is a component's Run(ctx) started by Start: a broker, the exporter, the gateway, the
// alerting or ticket service.
type Running struct {
	what    string
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// Start runs run (a component's Run) in a goroutine of its own for the rest of the test: at
// cleanup, unless stopped before, its context is cancelled and it must return nil within 30 s, or
// the test fails naming what. Start itself does not wait: WaitReady does.
func Start(tb testing.TB, what string, run func(context.Context) error) *Running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{what: what, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	tb.Cleanup(func() { r.Stop(tb) })
	return r
}

// WaitReady waits until ready is closed, failing the test if run returns first or d passes.
func (r *Running) WaitReady(tb testing.TB, ready <-chan struct{}, d time.Duration) {
	tb.Helper()
	select {
	case <-ready:
	case err := <-r.done:
		r.done <- err // for Stop
		tb.Fatalf("%s ended before it was ready: %v", r.what, err)
	case <-time.After(d):
		tb.Fatalf("%s not ready within %v", r.what, d)
	}
}

// Stop cancels the component's context and waits until run returns (30 s at most), failing the
// test if it returned an error or did not return. Stopping again does nothing. Call it from the
// test's goroutine (cleanups run there too).
func (r *Running) Stop(tb testing.TB) {
	tb.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			tb.Errorf("%s stopped with %v", r.what, err)
		}
	case <-time.After(stopTimeout):
		tb.Errorf("%s did not stop within %v", r.what, stopTimeout)
	}
}
