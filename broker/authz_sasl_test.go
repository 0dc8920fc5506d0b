package broker

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// saslUserClient is a franz-go client authenticating as user with SCRAM-SHA-512.
func saslUserClient(t *testing.T, addr, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	var m sasl.Mechanism = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(m), kgo.RecordRetries(1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return cl
}

// kcatAs runs Debian's kcat (librdkafka) against addr as user with SASL PLAIN and
// returns its stdout, stderr and error.
func kcatAs(t *testing.T, addr, user, pass, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"-b", addr, "-X", "broker.address.family=v4", "-X", "security.protocol=SASL_PLAINTEXT",
		"-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=" + user, "-X", "sasl.password=" + pass}, args...)
	cmd := exec.CommandContext(ctx, "/usr/bin/kcat", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestAuthorizationSASLUsers authenticates real users over SASL and checks what the
// ACLs let each do, with franz-go/kadm and with kcat: a user without ACLs gets the
// authorization errors, a PREFIXED ACL grants exactly its prefix, DENY beats ALLOW,
// and the super user passes.
func TestAuthorizationSASLUsers(t *testing.T) {
	b, _ := startSecure(t, func(c *Config) {
		c.Listeners = "CLIENT://127.0.0.1:0"
		c.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
		c.SASLEnabledMechanisms = "PLAIN,SCRAM-SHA-512"
		c.AuthorizerClassName = StandardAuthorizer
		c.SuperUsers = "User:admin"
	})
	addr := b.ListenerAddr("CLIENT")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	admin := kadm.NewClient(saslUserClient(t, addr, "admin", "admin-secret"))
	users, err := admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-pw"},
		{User: "bob", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "bob-pw"},
	})
	require.NoError(t, err)
	require.NoError(t, users.Error())
	created, err := admin.CreateTopics(ctx, 1, 1, nil, "team-a.orders", "team-a.secret", "team-b.orders")
	require.NoError(t, err)
	require.NoError(t, created.Error())
	acls, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("team-a.").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite, kadm.OpRead))
	require.NoError(t, err)
	for _, r := range acls {
		require.NoError(t, r.Err)
	}
	acls, err = admin.CreateACLs(ctx, kadm.NewACLs().Deny("User:alice").Topics("team-a.secret").
		ResourcePatternType(kadm.ACLPatternLiteral).Operations(kadm.OpAll))
	require.NoError(t, err)
	require.NoError(t, acls[0].Err)

	alice := saslUserClient(t, addr, "alice", "alice-pw")
	aliceAdm := kadm.NewClient(alice)
	topics, err := aliceAdm.ListTopics(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"team-a.orders"}, topics.Names(), "only what alice may describe; the DENY ALL hides team-a.secret")
	require.NoError(t, produceErr(t, alice, "team-a.orders"))
	require.ErrorIs(t, produceErr(t, alice, "team-a.secret"), kerr.TopicAuthorizationFailed, "DENY beats ALLOW")
	require.ErrorIs(t, produceErr(t, alice, "team-b.orders"), kerr.TopicAuthorizationFailed, "outside the prefix")
	res, err := aliceAdm.CreateACLs(ctx, kadm.NewACLs().Allow("User:alice").Topics("team-b.").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite))
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, kerr.ClusterAuthorizationFailed, "alice may not grant herself more")

	bob := saslUserClient(t, addr, "bob", "bob-pw")
	bobAdm := kadm.NewClient(bob)
	topics, err = bobAdm.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics.Names())
	require.ErrorIs(t, produceErr(t, bob, "team-a.orders"), kerr.TopicAuthorizationFailed)
	_, err = bobAdm.DescribeUserSCRAMs(ctx)
	require.ErrorIs(t, err, kerr.ClusterAuthorizationFailed)
	deleted, err := bobAdm.DeleteTopics(ctx, "team-a.orders")
	require.NoError(t, err)
	require.ErrorIs(t, deleted["team-a.orders"].Err, kerr.TopicAuthorizationFailed)

	// The super user passes without any ACL.
	require.NoError(t, produceErr(t, saslUserClient(t, addr, "admin", "admin-secret"), "team-b.orders"))

	t.Run("kcat", func(t *testing.T) {
		if _, err := exec.LookPath("/usr/bin/kcat"); err != nil {
			t.Skipf("kcat not installed (apt-get install kcat): %v", err)
		}
		_, stderr, err := kcatAs(t, addr, "alice", "alice-pw", "hello\n", "-P", "-t", "team-a.orders", "-X", "acks=all")
		require.NoError(t, err, stderr)
		_, stderr, err = kcatAs(t, addr, "alice", "alice-pw", "hello\n", "-P", "-t", "team-b.orders", "-X", "acks=all")
		require.Error(t, err)
		require.Contains(t, stderr, "Topic authorization failed")
		out, stderr, err := kcatAs(t, addr, "bob", "bob-pw", "", "-L")
		require.NoError(t, err, stderr)
		require.Contains(t, out, "0 topics")
		out, stderr, err = kcatAs(t, addr, "admin", "admin-secret", "", "-L")
		require.NoError(t, err, stderr)
		require.Contains(t, out, "5 topics", "the three, __consumer_offsets and __transaction_state")
	})
}
