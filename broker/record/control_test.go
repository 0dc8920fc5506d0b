package record

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestMarkerRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range []Marker{
		{ProducerID: 1, ProducerEpoch: 2, Commit: true, CoordinatorEpoch: 3},
		{ProducerID: 1 << 40, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: 0},
	} {
		b := BuildMarker(7, 1000, m)
		h, err := Validate(b)
		require.NoError(t, err)
		require.True(t, h.IsControl())
		require.True(t, h.IsTransactional())
		require.EqualValues(t, -1, h.BaseSequence)
		got, err := ParseMarker(b)
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
	_, err := ParseMarker(Build(0, 1, testRecords()))
	require.ErrorIs(t, err, kerr.CorruptMessage, "a data batch holds no marker")
}

// FuzzParseMarker feeds arbitrary bytes to the control batch decoder: it may
// not panic, and what it accepts encodes back to the same marker.
func FuzzParseMarker(f *testing.F) {
	f.Add(BuildMarker(0, 1, Marker{ProducerID: 1, ProducerEpoch: 2, Commit: true, CoordinatorEpoch: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMarker(b)
		if err != nil {
			return
		}
		re, err := ParseMarker(BuildMarker(0, 1, m))
		require.NoError(t, err)
		require.Equal(t, m, re)
	})
}
