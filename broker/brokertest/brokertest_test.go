package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kgo.(*Client).reapConnectionsLoop"))
}

// TestSecureCluster: the secure cluster is what Config.Users promises. Admin is a super user on
// the client listener; a user with the wrong password, and a client that does not authenticate,
// get nothing; another user gets only what ACLs grant (none here); Metric counts the
// authentications per listener and mechanism; a stopped broker leaves the other serving.
func TestSecureCluster(t *testing.T) {
	c := Start(t, Config{Brokers: 2, Users: map[string]string{Admin: "admin-pw", "alice": "alice-pw"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	adm := kadm.NewClient(c.AdminClient(t))
	res, err := adm.CreateTopic(ctx, 1, 2, nil, "t")
	require.NoError(t, err)
	require.NoError(t, res.Err)

	wrong := c.Client(t, SCRAM("alice", "not-alice-pw"), kgo.RequestRetries(0))
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(ctx, wrong)
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)

	anonymous := c.Client(t, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	_, err = kmsg.NewPtrMetadataRequest().RequestWith(actx, anonymous)
	require.Error(t, err, "a client that does not authenticate is not served")

	alice := c.Client(t, SCRAM("alice", "alice-pw"))
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, alice)
	require.NoError(t, err)
	require.Empty(t, md.Topics, "alice may describe no topic")
	_, err = kadm.NewClient(alice).CreateTopic(ctx, 1, 1, nil, "alice-t")
	require.ErrorIs(t, err, kerr.TopicAuthorizationFailed)

	require.Positive(t, c.Metric(t, "sluice_broker_authentications_total", "listener", "CLIENT", "mechanism", "SCRAM-SHA-512"))
	require.Positive(t, c.Metric(t, "sluice_broker_authentication_failures_total", "listener", "CLIENT"))
	require.Zero(t, c.Metric(t, "sluice_broker_authentications_total", "listener", "NO-SUCH-LISTENER"))

	c.Brokers[1].Stop(t)
	c.Brokers[1].Stop(t) // again: nothing
	testutil.WaitForErr(t, 30*time.Second, "broker 1 serving alone", func() (bool, error) {
		_, err := adm.ListTopics(ctx)
		return err == nil, err
	})
}

// TestRun: a single broker from a configuration the test built, with its HTTP listeners served
// when Run returns.
func TestRun(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen, cfg.AdminListen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.OffsetsTopicNumPartitions = 1
	b := Run(t, cfg)
	require.NotEmpty(t, b.AdminAddr())
	require.NotEmpty(t, b.MetricsAddr())
	require.NotEmpty(t, testutil.Scrape(t, b.MetricsAddr()))
}
