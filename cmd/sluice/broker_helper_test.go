package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
)

// runTestBroker starts an in-process broker with cfg for a command's test, waits until it is
// ready, and stops it at cleanup, failing the test if it ended with an error.
func runTestBroker(t *testing.T, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.New(cfg, nil)
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })
	select {
	case <-b.Ready():
	case <-time.After(90 * time.Second):
		t.Fatal("broker not ready")
	}
	return b
}
