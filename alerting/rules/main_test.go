package rules

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the PromQL test engines and storages of the tests leave no goroutine
// behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
