package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
)

// TestACLsCommand runs `sluice acls add|list|remove` against an in-process broker
// with a SASL listener and the authorizer on, as its SCRAM super user.
func TestACLsCommand(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "admin.pass")
	require.NoError(t, os.WriteFile(pass, []byte("admin-secret\n"), 0o600))
	cfg := broker.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.OffsetsTopicNumPartitions = 1
	cfg.Listeners = "CLIENT://127.0.0.1:0"
	cfg.ListenerSecurityProtocolMap = "CLIENT:SASL_PLAINTEXT"
	cfg.SASLEnabledMechanisms = "SCRAM-SHA-512"
	cfg.InitialSCRAMUsers = []broker.InitialSCRAMUser{{Name: "admin", PasswordFile: pass}}
	cfg.AuthorizerClassName = broker.StandardAuthorizer
	cfg.SuperUsers = "User:admin"
	b := brokertest.Run(t, cfg)

	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		conn := []string{"--bootstrap", b.ListenerAddr("CLIENT"), "--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-512",
			"--sasl-username", "admin", "--sasl-password-file", pass, "--timeout", "20s"}
		err := runACLsTo(context.Background(), append(args[:1:1], append(conn, args[1:]...)...), &out)
		return out.String(), err
	}
	// The initial credential is written by the first controller term; retry until it is there.
	testutil.WaitForErr(t, 20*time.Second, "sluice acls list as admin", func() (bool, error) {
		_, err := run("list")
		return err == nil, err
	})

	out, err := run("add", "--allow-principal", "User:alice", "--operation", "Read,Write", "--topic", "team-a.",
		"--resource-pattern-type", "prefixed")
	require.NoError(t, err)
	require.Contains(t, out, "added 2 ACLs")
	out, err = run("add", "--deny-principal", "User:alice", "--operation", "All", "--topic", "team-a.secret")
	require.NoError(t, err)
	require.Contains(t, out, "added 1 ACLs")

	out, err = run("list", "--topic", "team-a.orders", "--resource-pattern-type", "match")
	require.NoError(t, err)
	require.Contains(t, out, "TOPIC     PREFIXED  team-a.  User:alice  *     READ       ALLOW")
	require.NotContains(t, out, "team-a.secret", "the deny applies to another topic")

	out, err = run("remove", "--allow-principal", "User:alice", "--operation", "Write", "--topic", "team-a.",
		"--resource-pattern-type", "prefixed")
	require.NoError(t, err)
	require.Contains(t, out, "removed 1 ACLs")
	out, err = run("list", "--principal", "User:alice")
	require.NoError(t, err)
	require.Contains(t, out, "READ")
	require.Contains(t, out, "DENY")
	require.NotContains(t, out, "WRITE")

	_, err = run("add", "--allow-principal", "User:alice", "--operation", "Fly", "--topic", "t")
	require.ErrorContains(t, err, "--operation")
	_, err = run("add", "--allow-principal", "User:alice", "--operation", "Read")
	require.ErrorContains(t, err, "name a resource")
	_, err = run("add", "--allow-principal", "User:alice", "--operation", "Describe", "--cluster")
	require.NoError(t, err)
}
