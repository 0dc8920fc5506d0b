package notify

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Retry policy of notifications and snapshot jobs: exponential from 1 s,
// doubling, capped at MaxRetryInterval, given up after MaxAttempts; a
// receiver's own delay (Slack's Retry-After) is honoured up to
// MaxReceiverDelay.
const (
	MaxAttempts      = 12
	MaxRetryInterval = 5 * time.Minute
	MaxReceiverDelay = time.Hour
)

// RetryDelay is the wait after the attempts-th failed attempt (1 for the
// first): the capped exponential backoff, or receiverDelay when a receiver
// asked for longer. It is the one backoff of the ticket service.
func RetryDelay(attempts int, receiverDelay time.Duration) time.Duration {
	b := &backoff.ExponentialBackOff{InitialInterval: time.Second, RandomizationFactor: 0.1, Multiplier: 2,
		MaxInterval: MaxRetryInterval}
	b.Reset()
	d := b.InitialInterval
	for range max(attempts, 1) {
		d = b.NextBackOff()
	}
	return max(d, min(receiverDelay, MaxReceiverDelay))
}
