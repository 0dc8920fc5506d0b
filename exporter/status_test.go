package exporter

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEvaluate(t *testing.T) {
	// obs builds a window from (committed, lag) pairs.
	obs := func(pairs ...int64) []observation {
		var w []observation
		for i := 0; i < len(pairs); i += 2 {
			w = append(w, observation{unixMs: int64(i) * 1000, committed: pairs[i], lag: pairs[i+1], end: pairs[i] + pairs[i+1]})
		}
		return w
	}
	for _, tc := range []struct {
		name       string
		window     []observation
		hasMembers bool
		want       Status
	}{
		{"empty", nil, false, StatusOK},
		{"caught up", obs(5, 0, 9, 0, 12, 0), false, StatusOK},
		{"idle topic, no commits, caught up", obs(5, 0, 5, 0, 5, 0), false, StatusOK},
		{"window not full", obs(5, 3, 5, 6), false, StatusOK},
		{"stopped consumer behind", obs(5, 3, 5, 6, 5, 9), false, StatusStop},
		{"stopped consumer behind, idle producer", obs(5, 3, 5, 3, 5, 3), false, StatusStop},
		{"member not progressing", obs(5, 3, 5, 6, 5, 9), true, StatusStall},
		{"lag 0 once in the window", obs(5, 0, 5, 6, 5, 9), false, StatusOK},
		{"rewind", obs(9, 3, 4, 8), false, StatusRewind},
		{"rewind beats stop", obs(9, 3, 4, 8, 4, 8), false, StatusRewind},
		{"falling behind every step", obs(1, 3, 2, 5, 3, 7), false, StatusErr},
		{"not decreasing", obs(1, 3, 2, 3, 3, 5), false, StatusWarn},
		{"flat lag while moving", obs(1, 3, 2, 3, 3, 3), false, StatusOK},
		{"catching up", obs(1, 9, 4, 6, 8, 2), false, StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, evaluate(tc.window, 3, tc.hasMembers))
		})
	}
}

func TestWindowAdd(t *testing.T) {
	var w window
	for i := range int64(5) {
		w.add(observation{committed: i}, 3)
	}
	assert.Equal(t, []observation{{committed: 2}, {committed: 3}, {committed: 4}}, w.obs)
}
