package alerting

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a stopped Manager (rule evaluation, scrapes, TSDB, Alertmanager
// dispatch, HTTP server) leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
