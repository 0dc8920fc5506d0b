// Package backoff is the project's one retry delay: exponential with jitter (cenkalti/backoff, as
// Alertmanager's retry stage uses), capped, and never shorter than the delay a receiver asked for
// (Slack's Retry-After), as Alertmanager's notify/retry_stage.go does.
package backoff

import (
	"context"
	"time"

	cb "github.com/cenkalti/backoff/v5"
)

// Defaults of New's zero arguments.
const (
	DefaultInitial = 500 * time.Millisecond
	DefaultMax     = time.Minute
)

// Backoff hands out the delays between the attempts of one retried operation. It is not safe for
// concurrent use: each operation has its own.
type Backoff struct {
	exp *cb.ExponentialBackOff
	max time.Duration
}

// New returns a Backoff starting at initial and capped at max (DefaultInitial and DefaultMax when
// zero).
func New(initial, max time.Duration) *Backoff {
	if initial <= 0 {
		initial = DefaultInitial
	}
	if max <= 0 {
		max = DefaultMax
	}
	exp := cb.NewExponentialBackOff()
	exp.InitialInterval = initial
	exp.MaxInterval = max
	exp.Reset()
	return &Backoff{exp: exp, max: max}
}

// Next is the delay before the next attempt: the exponential delay, or the receiver's own delay
// when that is longer (a receiver that says "retry after 30 s" is not hammered sooner). The
// receiver's delay is honoured up to four times the cap, so a hostile or broken Retry-After cannot
// park a retry for hours.
func (b *Backoff) Next(receiverDelay time.Duration) time.Duration {
	d := b.exp.NextBackOff()
	if d == cb.Stop || d > b.max {
		d = b.max
	}
	if receiverDelay > d {
		d = min(receiverDelay, 4*b.max)
	}
	return d
}

// Wait sleeps for Next(receiverDelay), or until ctx ends, whose error it then returns.
func (b *Backoff) Wait(ctx context.Context, receiverDelay time.Duration) error {
	t := time.NewTimer(b.Next(receiverDelay))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
