package clienttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/internal/testutil"
)

// testTimeout bounds every single client operation in this package, so a hung
// broker fails one test instead of the whole binary's -timeout.
const testTimeout = 30 * time.Second

// apiLogPath, from CLIENTTEST_API_LOG, names a file that collects which API
// keys and versions each client sent. When set, startBroker puts a recording
// proxy (apilog_test.go) in front of the broker and advertises the proxy, so
// that every connection of every client goes through it. The version tables
// in docs/compatibility.md come from such a run. Sluice only, not kfake.
var apiLogPath = os.Getenv("CLIENTTEST_API_LOG")

// TestMain removes the sluice binary built for process tests and checks for
// leaked goroutines: every client and broker a test starts must be closed.
func TestMain(m *testing.M) {
	code := m.Run()
	cleanupSluiceBinary()
	if code == 0 {
		if err := goleak.Find(
			// sarama's metrics registry starts one process-wide meter ticker.
			goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testCtx returns a context cancelled after testTimeout or at test cleanup.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns prefix followed by random hex, for topics and groups.
func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// newKgo returns a franz-go client seeded with addr and closed at cleanup.
func newKgo(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)
	cl, err := kgo.NewClient(opts...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// newAdmin returns a kadm client over its own franz-go client.
func newAdmin(t testing.TB, addr string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newKgo(t, addr))
}

// createTopic creates topic with the given partition count and replication
// factor 1, and waits until its metadata shows every partition with a leader.
func createTopic(t testing.TB, addr, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := newAdmin(t, addr)
	ctx := testCtx(t)
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	require.NoError(t, err)
	require.NoError(t, resp.Err, "create topic %s", topic)
	testutil.WaitFor(t, 10*time.Second, "topic "+topic+" metadata", func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil || len(td.Partitions) != int(partitions) {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
		return true
	})
}
