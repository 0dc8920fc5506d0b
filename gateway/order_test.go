package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPartitionOrder: a partition's requests in flight pin it to the broker
// they went to; only a partition's sole request in flight may be sent again
// by the gateway, and none after an earlier one was answered with its failure
// until the client sends anew; a partition is free again once all its
// requests are answered, and nothing is left behind.
func TestPartitionOrder(t *testing.T) {
	var o partitionOrder
	p0, p1 := part{topic: "a", partition: 0}, part{topic: "a", partition: 1}
	_, _, ok := o.pinned(tp{"a", 0})
	require.False(t, ok, "nothing in flight")

	o.sent([]part{p0, p1}, 1, "b1") // request 1: a/0 and a/1 to broker 1
	id, addr, ok := o.pinned(tp{"a", 0})
	require.True(t, ok)
	require.Equal(t, int32(1), id)
	require.Equal(t, "b1", addr)
	require.Equal(t, []part{p0, p1}, o.alone([]part{p0, p1}), "request 1 is each partition's only request")

	o.sent([]part{p0}, 1, "b1") // request 2: a/0, pinned to broker 1 as well
	require.Equal(t, []part{p1}, o.alone([]part{p0, p1}), "a/0 has a later request in flight: not sent again")
	// request 1's a/0 is answered with its failure; request 2's then is too

	o.resent([]part{p1}, 2, "b2") // request 1's a/1 sent again to the new leader
	id, _, _ = o.pinned(tp{"a", 1})
	require.Equal(t, int32(2), id, "later requests for a/1 follow it")

	o.done([]part{p0, p1}) // request 1 answered
	require.Empty(t, o.alone([]part{p0}), "request 2 is a/0's only request, but request 1 failed before it")
	_, _, ok = o.pinned(tp{"a", 1})
	require.False(t, ok, "a/1 has nothing in flight")
	o.done([]part{p0}) // request 2 answered
	_, _, ok = o.pinned(tp{"a", 0})
	require.False(t, ok, "a/0 has nothing in flight")

	o.sent([]part{p0}, 2, "b2") // the client's retry of a/0
	require.Equal(t, []part{p0}, o.alone([]part{p0}), "a new request after the failure may be sent again")
	o.done([]part{p0})
	require.Empty(t, o.inflight)
}
