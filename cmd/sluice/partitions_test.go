package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
)

// TestPartitionsAndClusterCommands runs `sluice partitions` and `sluice cluster` against one broker:
// what works with one broker, and the clear errors of bad input, which change nothing.
func TestPartitionsAndClusterCommands(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	b := brokertest.Run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	require.NoError(t, err)
	defer kcl.Close()
	_, err = kadm.NewClient(kcl).CreateTopic(ctx, 2, 1, nil, "cli")
	require.NoError(t, err)

	run := func(cmd func(context.Context, []string, *bytes.Buffer) error, args ...string) (string, error) {
		var out bytes.Buffer
		err := cmd(ctx, append(args[:1:1], append([]string{"--bootstrap", b.Addr()}, args[1:]...)...), &out)
		return out.String(), err
	}
	parts := func(ctx context.Context, args []string, out *bytes.Buffer) error {
		return partitionsCommand(ctx, args, out)
	}
	cluster := func(ctx context.Context, args []string, out *bytes.Buffer) error {
		return clusterCommand(ctx, args, out)
	}

	out, err := run(parts, "status")
	require.NoError(t, err)
	require.Equal(t, "no reassignments in progress\n", out)
	out, err = run(parts, "reassign", "--topic", "cli", "--partition", "1", "--replicas", "1", "--wait")
	require.NoError(t, err)
	require.Equal(t, "reassigning cli-1\nreassignments complete\n", out)
	out, err = run(parts, "elect-leaders")
	require.NoError(t, err)
	require.Equal(t, "no election needed\n", out)
	out, err = run(parts, "elect-leaders", "--topic", "cli", "--partition", "0")
	require.NoError(t, err)
	require.Contains(t, out, "ELECTION_NOT_NEEDED")

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing plan", []string{"reassign", "--plan", filepath.Join(dir, "nope.json")}, "--plan"},
		{"bad json", []string{"reassign", "--plan", write("bad.json", "{")}, "--plan"},
		{"unknown field", []string{"reassign", "--plan", write("field.json", `{"version":1,"partitions":[],"x":1}`)}, "unknown field"},
		{"bad version", []string{"reassign", "--plan", write("v2.json", `{"version":2,"partitions":[{"topic":"cli","partition":0,"replicas":[1]}]}`)}, "version"},
		{"empty plan", []string{"reassign", "--plan", write("empty.json", `{"version":1,"partitions":[]}`)}, "partitions: empty"},
		{"bad replicas", []string{"reassign", "--topic", "cli", "--partition", "0", "--replicas", "1,x"}, "--replicas"},
		{"negative throttle", []string{"reassign", "--topic", "cli", "--partition", "0", "--replicas", "1", "--throttle", "-5"}, "--throttle"},
		{"unknown broker", []string{"reassign", "--topic", "cli", "--partition", "0", "--replicas", "7"}, "INVALID_REPLICA_ASSIGNMENT"},
		{"cancel without reassignment", []string{"reassign", "--cancel", "--topic", "cli", "--partition", "0"}, "NO_REASSIGNMENT_IN_PROGRESS"},
		{"unknown topic", []string{"reassign", "--topic", "nope", "--partition", "0", "--replicas", "1"}, "UNKNOWN_TOPIC_OR_PARTITION"},
		{"bad election type", []string{"elect-leaders", "--type", "sometimes"}, "--type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(parts, tc.args...)
			require.ErrorContains(t, err, tc.want)
		})
	}
	// Nothing changed: both partitions still on broker 1, no reassignment.
	out, err = run(parts, "status")
	require.NoError(t, err)
	require.Equal(t, "no reassignments in progress\n", out)

	_, err = run(cluster, "unregister", "7")
	require.ErrorContains(t, err, "BROKER_ID_NOT_REGISTERED")
	_, err = run(cluster, "unregister", "1")
	require.ErrorContains(t, err, "INVALID_REQUEST")
	_, err = run(cluster, "drain", "x")
	require.ErrorContains(t, err, "not a broker id")
	// A lone broker cannot be drained: nowhere to move to. The drain gives up at its timeout, and
	// --undo lifts the cordon.
	out, err = run(cluster, "drain", "--timeout", "2s", "1")
	require.ErrorContains(t, err, "still holds")
	require.Contains(t, out, "broker 1 cordoned")
	out, err = run(cluster, "drain", "--undo", "1")
	require.NoError(t, err)
	require.Equal(t, "broker 1 takes replicas again\n", out)
}
