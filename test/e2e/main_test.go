// Package e2e is Sluice's end-to-end fault drill: a 3-broker cluster of `sluice broker` processes,
// the exporter and the ticket service, watched once by a real Prometheus and Alertmanager (Debian's
// binaries) and once by `sluice alerting`. Under acks=all load a broker is killed with SIGKILL; the
// drill checks that the rule fires, that the ticket service opens an incident whose fault snapshot
// names the killed broker, that the incident resolves by itself after the broker restarts, and
// that no acknowledged record was lost. `make e2e` runs it.
package e2e

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/internal/testutil"
)

var (
	// sluiceBin is the binary every part runs from: $SLUICE_BIN, or cmd/sluice built once by
	// TestMain.
	sluiceBin string
	binErr    error

	// httpc is the drill's HTTP client, closed before the goroutine check.
	httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
)

// TestMain builds cmd/sluice once and checks for leaked goroutines after the tests.
func TestMain(m *testing.M) {
	sluiceBin, binErr = testutil.BuildSluice()
	code := m.Run()
	testutil.RemoveBuilt()
	httpc.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
