package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextGrowsAndIsCapped(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	var last time.Duration
	grew := false
	for range 30 {
		d := b.Next(0)
		require.Greater(t, d, time.Duration(0))
		require.LessOrEqual(t, d, time.Second, "capped")
		if d > last {
			grew = true
		}
		last = d
	}
	require.True(t, grew)
	require.GreaterOrEqual(t, last, 500*time.Millisecond, "reaches the cap region after many attempts")
}

func TestNextHonoursReceiverDelay(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	require.Equal(t, 3*time.Second, b.Next(3*time.Second), "Retry-After longer than the backoff wins")
	require.Equal(t, 4*time.Second, b.Next(time.Hour), "a huge Retry-After is bounded")
	require.Less(t, b.Next(time.Millisecond), time.Second+1)
}

func TestWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(time.Minute, time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		start := time.Now()
		require.ErrorIs(t, b.Wait(ctx, 0), context.Canceled)
		require.Equal(t, time.Second, time.Since(start))
	})
	synctest.Test(t, func(t *testing.T) {
		b := New(time.Second, time.Second)
		start := time.Now()
		require.NoError(t, b.Wait(context.Background(), 3*time.Second))
		require.Equal(t, 3*time.Second, time.Since(start))
	})
}
