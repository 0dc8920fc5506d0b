package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
)

func TestQuotasSetList(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	b := brokertest.Run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := quotasCommand(ctx, append(args[:1:1], append([]string{"--bootstrap", b.Addr()}, args[1:]...)...), &out)
		return out.String(), err
	}

	out, err := run("set", "--entity", "user=alice,client-id=<default>", "producer_byte_rate=1048576", "request_percentage=150")
	require.NoError(t, err)
	require.Equal(t, "updated user=alice,client-id=<default>\n", out)
	_, err = run("set", "--entity", "client-id=batch", "consumer_byte_rate=2048")
	require.NoError(t, err)

	out, err = run("list")
	require.NoError(t, err)
	require.Equal(t, "ENTITY                          KEY                 VALUE\n"+
		"client-id=batch                 consumer_byte_rate  2048\n"+
		"user=alice,client-id=<default>  producer_byte_rate  1048576\n"+
		"user=alice,client-id=<default>  request_percentage  150\n", out)

	out, err = run("list", "--entity", "client-id=batch")
	require.NoError(t, err)
	require.Contains(t, out, "client-id=batch")
	require.NotContains(t, out, "alice")

	_, err = run("set", "--entity", "client-id=batch", "--remove", "consumer_byte_rate")
	require.NoError(t, err)
	out, err = run("list", "--entity", "client-id=batch")
	require.NoError(t, err)
	require.NotContains(t, out, "batch")

	// Bad input names what is wrong and changes nothing.
	_, err = run("set", "--entity", "user=bob", "producer_byte_rate=-5")
	require.ErrorContains(t, err, "producer_byte_rate")
	_, err = run("set", "--entity", "ip=1.2.3.4", "producer_byte_rate=5")
	require.ErrorContains(t, err, "--entity")
	_, err = run("set", "--entity", "user=bob", "producer_byte_rate=fast")
	require.ErrorContains(t, err, "not a number")
	out, err = run("list", "--entity", "user=bob")
	require.NoError(t, err)
	require.NotContains(t, out, "bob")
}
