package broker

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLogRingKeepsTheNewest(t *testing.T) {
	var r logRing
	require.Empty(t, r.recent())
	for i := range logRingSize + 3 {
		r.add(strconv.Itoa(i))
	}
	got := r.recent()
	require.Len(t, got, logRingSize)
	require.Equal(t, "3", got[0])
	require.Equal(t, strconv.Itoa(logRingSize+2), got[len(got)-1])
}
