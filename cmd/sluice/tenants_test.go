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

// TestTenantsAndPlans drives `sluice plans` and `sluice tenants` against a broker's admin
// interface: every subcommand, and a refused change that names the problem.
func TestTenantsAndPlans(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	b := brokertest.Run(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := "http://" + b.AdminAddr()
	tenants := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := tenantsCommand(ctx, append(args, "--admin", admin), &out)
		return out.String(), err
	}
	plans := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := plansCommand(ctx, append(args, "--admin", admin), &out)
		return out.String(), err
	}

	out, err := plans("create", "small", "--produce-bytes-per-second", "1048576", "--partitions", "10")
	require.NoError(t, err)
	require.Equal(t, "created plan small\n", out)
	_, err = plans("create", "large", "--disk-bytes", "1000000000")
	require.NoError(t, err)
	out, err = plans("list")
	require.NoError(t, err)
	require.Equal(t, "NAME   PRODUCE B/S  FETCH B/S  DISK BYTES  PARTITIONS  CONNECTIONS  DISK POLICY\n"+
		"large  unlimited    unlimited  1000000000  unlimited   unlimited    reject\n"+
		"small  1048576      unlimited  unlimited   10          unlimited    reject\n", out)

	out, err = tenants("create", "payments", "--plan", "small", "--prefix", "payments.", "--principal", "User:pay-app", "--email", "pay@example.com")
	require.NoError(t, err)
	require.Equal(t, "created tenant payments\n", out)
	_, err = tenants("create", "cards", "--plan", "small", "--prefix", "payments.cards.")
	require.ErrorContains(t, err, `409 Conflict: prefix "payments.cards." overlaps prefix "payments." of tenant "payments"`)
	_, err = tenants("create", "cards", "--plan", "gold", "--prefix", "cards.")
	require.ErrorContains(t, err, `400 Bad Request: plan "gold" does not exist`)

	_, err = tenants("add-principal", "payments", "User:pay-batch")
	require.NoError(t, err)
	_, err = tenants("remove-principal", "payments", "User:pay-app")
	require.NoError(t, err)
	_, err = tenants("remove-principal", "payments", "User:nobody")
	require.ErrorContains(t, err, "has no principal User:nobody")
	_, err = tenants("set-plan", "payments", "large")
	require.NoError(t, err)
	out, err = tenants("list")
	require.NoError(t, err)
	require.Equal(t, "NAME      PLAN   PREFIXES   PRINCIPALS\npayments  large  payments.  User:pay-batch\n", out)
	out, err = tenants("show", "payments")
	require.NoError(t, err)
	require.Contains(t, out, "email:         pay@example.com")
	require.Contains(t, out, "BROKER  BYTES IN")

	_, err = tenants("show", "payments", "extra")
	require.ErrorContains(t, err, "want 1 argument(s), got 2")
	out, err = tenants("delete", "payments")
	require.NoError(t, err)
	require.Equal(t, "deleted tenant payments\n", out)
	_, err = tenants("show", "payments")
	require.ErrorContains(t, err, "404")
}
