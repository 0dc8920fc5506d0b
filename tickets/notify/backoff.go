package notify

import (
	"time"

	"github.com/sluicemq/sluice/internal/backoff"
)

// Retry policy of notifications and snapshot jobs: the project's one backoff
// (internal/backoff) from 1 s, capped at MaxRetryInterval, given up after
// MaxAttempts; a receiver's own delay (Slack's Retry-After) is honoured up to
// the cap internal/backoff allows.
const (
	MaxAttempts      = 12
	MaxRetryInterval = 5 * time.Minute
)

// RetryDelay is the wait after the attempts-th failed attempt (1 for the
// first) of a message whose attempts are counted in the database rather than
// in a running loop: the delay internal/backoff gives at that attempt, or
// receiverDelay when a receiver asked for longer.
func RetryDelay(attempts int, receiverDelay time.Duration) time.Duration {
	b := backoff.New(time.Second, MaxRetryInterval)
	for range max(attempts, 1) - 1 {
		b.Next(0)
	}
	return b.Next(receiverDelay)
}
