package scaling

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigRefusesBadInput: the scenario needs the gateway, the binary, the three original brokers,
// and a broker to kill that is not the one leaving; it starts nothing otherwise.
func TestConfigRefusesBadInput(t *testing.T) {
	orig := []Node{{ID: 1}, {ID: 2}, {ID: 3}}
	for name, cfg := range map[string]Config{
		"no gateway":         {Bin: "sluice", Brokers: orig},
		"no binary":          {Gateway: "127.0.0.1:1", Brokers: orig},
		"two brokers":        {Gateway: "127.0.0.1:1", Bin: "sluice", Brokers: orig[:2]},
		"kill the leaver":    {Gateway: "127.0.0.1:1", Bin: "sluice", Brokers: orig, Kill: 3},
		"brokers 2, 3 and 4": {Gateway: "127.0.0.1:1", Bin: "sluice", Brokers: []Node{{ID: 2}, {ID: 3}, {ID: 4}}},
	} {
		_, err := Run(context.Background(), nil, cfg)
		require.Error(t, err, name)
		t.Logf("%s: %v", name, err)
	}
}

func TestWithin(t *testing.T) {
	brokers := []int32{1, 2, 3, 1001}
	require.NoError(t, withinOne(map[int32]int{1: 30, 2: 30, 3: 30, 1001: 30}, brokers, "replicas"))
	require.NoError(t, withinOne(map[int32]int{1: 31, 2: 30, 3: 30, 1001: 30}, brokers, "replicas"), "0.75 off the mean")
	require.Error(t, withinOne(map[int32]int{1: 31, 2: 31, 3: 29, 1001: 29}, []int32{1, 2, 3, 1001}, "replicas"), "exactly one off the mean is not within one")
	require.Error(t, withinOne(map[int32]int{1: 40, 2: 40, 3: 40}, brokers, "replicas"), "a broker without replicas")
	require.Error(t, withinOne(map[int32]int{1: 30, 2: 30, 3: 30, 1001: 30, 7: 1}, brokers, "replicas"), "replicas on a broker not in the list")
	require.NoError(t, within10(map[int32]int{1: 11, 2: 9, 3: 10, 1001: 10}, brokers, "leaders"))
	require.Error(t, within10(map[int32]int{1: 12, 2: 8, 3: 10, 1001: 10}, brokers, "leaders"))
}

func TestRatios(t *testing.T) {
	r := Result{Before: 100, Idle: 50, During: 40, Pairs: [][2]float64{{40, 50}, {30, 60}, {90, 100}, {10, 0}}}
	require.InDelta(t, 0.4, r.Ratio(), 1e-9)
	require.InDelta(t, 0.8, r.IdleRatio(), 1e-9)
	require.InDelta(t, 0.8, r.PairedRatio(), 1e-9, "median of 0.8, 0.5, 0.9; a pair without a paused rate left out")
	r.Pairs = r.Pairs[:2]
	require.InDelta(t, 0.65, r.PairedRatio(), 1e-9)
	require.Zero(t, Result{}.PairedRatio())
	require.Zero(t, Result{}.IdleRatio())
}
