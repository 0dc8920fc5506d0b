//go:build kfake

package clienttest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// isKfake is true when the tests run against franz-go's kfake (-tags kfake).
const isKfake = true

// testBroker is a running broker the tests talk to.
type testBroker struct {
	Addr    string
	DataDir string
}

// brokerOpt adjusts the broker a test starts.
type brokerOpt func(*[]kfake.Opt)

// withMaxRequestBytes has no kfake counterpart; tests needing it skip on kfake.
func withMaxRequestBytes(int32) brokerOpt { return func(*[]kfake.Opt) {} }

// startBroker starts a one-broker kfake cluster, closed at cleanup.
func startBroker(t testing.TB, opts ...brokerOpt) *testBroker {
	t.Helper()
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.AllowAutoTopicCreation(),
		// Kafka 3.9 has no KIP-848 groups, like Sluice: clients use the
		// classic JoinGroup/SyncGroup protocol.
		kfake.MaxVersions(kversion.V3_9_0()),
	}
	for _, o := range opts {
		o(&kopts)
	}
	c, err := kfake.NewCluster(kopts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &testBroker{Addr: c.ListenAddrs()[0]}
}
