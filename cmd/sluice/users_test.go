package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/stack/localca"
)

// TestUsersCommand creates, lists and deletes a SCRAM user through a SASL_SSL
// listener, authenticating as the initial admin, and checks that the new user can
// then authenticate (by listing users as that user).
func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	ca, err := localca.New(filepath.Join(dir, "ca"), "test", time.Hour)
	require.NoError(t, err)
	srv, err := ca.Issue("broker", "broker", []string{"127.0.0.1"}, time.Hour)
	require.NoError(t, err)
	adminPass := filepath.Join(dir, "admin.pass")
	require.NoError(t, os.WriteFile(adminPass, []byte("admin-pw\n"), 0o600))
	cfg := broker.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.OffsetsTopicNumPartitions = 1
	cfg.Listeners = "CLIENT://127.0.0.1:0"
	cfg.ListenerSecurityProtocolMap = "CLIENT:SASL_SSL"
	cfg.SSLKeystoreLocation, cfg.SSLTruststoreLocation = srv.Keystore, ca.CertFile
	cfg.InitialSCRAMUsers = []broker.InitialSCRAMUser{{Name: "admin", PasswordFile: adminPass}}
	b := brokertest.Run(t, cfg)
	ctx := context.Background()
	as := func(user, passFile string) []string {
		return []string{"--bootstrap", b.ListenerAddr("CLIENT"), "--security-protocol", "SASL_SSL", "--tls-ca", ca.CertFile,
			"--sasl-username", user, "--sasl-password-file", passFile}
	}
	alicePass := filepath.Join(dir, "alice.pass")
	require.NoError(t, os.WriteFile(alicePass, []byte("alice-pw"), 0o600))
	// The initial admin is written by the first controller term; retry until then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = runUsers(ctx, append([]string{"create"}, append(as("admin", adminPass), "--password-file", alicePass, "alice")...))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err)
	require.NoError(t, runUsers(ctx, append([]string{"list"}, as("alice", alicePass)...)))
	require.NoError(t, runUsers(ctx, append([]string{"delete"}, append(as("admin", adminPass), "alice")...)))
	err = runUsers(ctx, append([]string{"delete"}, append(as("admin", adminPass), "alice")...))
	require.ErrorIs(t, err, kerr.ResourceNotFound)
	require.Error(t, runUsers(ctx, append([]string{"list"}, as("alice", alicePass)...)), "a deleted user cannot authenticate")
	require.Error(t, runUsers(ctx, []string{"rename"}))
}
