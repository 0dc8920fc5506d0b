package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// StartProcesses starts a cluster of `sluice broker` processes (a chaos.Cluster: nodes can be
// killed and restarted in place) and waits until every one is ready, two minutes at most. cfg.Bin
// defaults to testutil.SluiceBin, cfg.Dir to a directory of the test's. The processes are killed at
// cleanup, and the last lines of every broker's log are printed if the test failed.
func StartProcesses(t testing.TB, cfg chaos.ClusterConfig) *chaos.Cluster {
	t.Helper()
	if cfg.Bin == "" {
		cfg.Bin = testutil.SluiceBin(t)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := chaos.StartCluster(ctx, cfg)
	if err != nil {
		t.Fatalf("brokertest: starting %d broker processes: %v", cfg.Brokers, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(80))
		}
		cl.Close()
	})
	return cl
}
