package chaos

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckPipeline feeds the read_committed checker hand-made logs, one broken promise at a time.
func TestCheckPipeline(t *testing.T) {
	lr := func(off int64, v string) LogRecord { return LogRecord{Offset: off, Value: []byte(v)} }
	input := map[int32][]LogRecord{
		0: {lr(0, "p0/0/0"), lr(1, "p0/0/1")},
		1: {lr(0, "p0/1/0")},
	}
	copyOf := func(p int32, off int64) string { return fmt.Sprintf("%d/%d/%s", p, off, input[p][off].Value) }
	good := func() map[int32][]LogRecord {
		return map[int32][]LogRecord{
			0: {lr(0, copyOf(0, 0)), lr(2, copyOf(0, 1))}, // offset 1 holds a control batch
			1: {lr(0, copyOf(1, 0))},
		}
	}
	offsets := map[int32]int64{0: 2, 1: 1}
	markers := []string{"ABORTED/0/0", "ABORTED/0/1"}
	uncommitted := func(out map[int32][]LogRecord) map[int32][]LogRecord {
		u := map[int32][]LogRecord{}
		for p, rs := range out {
			u[p] = append(u[p], rs...)
		}
		u[0] = append(u[0], lr(9, "ABORTED/0/0"))
		u[1] = append(u[1], lr(9, "ABORTED/0/1"))
		return u
	}
	tests := []struct {
		name    string
		out     func(map[int32][]LogRecord) map[int32][]LogRecord
		offsets map[int32]int64
		markers []string
		check   func(t *testing.T, c TxnCheck)
	}{
		{name: "exactly once", check: func(t *testing.T, c TxnCheck) {
			require.Zero(t, c.Violations(), c.Examples)
			require.Equal(t, 3, c.Input)
			require.Equal(t, 3, c.Output)
			require.Equal(t, 2, c.MarkersSeenUncommitted)
		}},
		{name: "missing", out: func(m map[int32][]LogRecord) map[int32][]LogRecord { m[1] = nil; return m },
			check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.Missing); require.Equal(t, 1, c.OffsetMismatch) }},
		{name: "duplicated", out: func(m map[int32][]LogRecord) map[int32][]LogRecord {
			m[0] = append(m[0], lr(5, copyOf(0, 0)))
			return m
		}, check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.Duplicated); require.Equal(t, 1, c.Violations()) }},
		{name: "aborted visible", out: func(m map[int32][]LogRecord) map[int32][]LogRecord {
			m[1] = append(m[1], lr(3, "ABORTED/4/1"))
			return m
		}, check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.AbortedVisible) }},
		{name: "foreign: wrong partition", out: func(m map[int32][]LogRecord) map[int32][]LogRecord {
			m[1] = append(m[1], lr(3, copyOf(0, 1)))
			return m
		}, check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.Foreign) }},
		{name: "foreign: wrong value", out: func(m map[int32][]LogRecord) map[int32][]LogRecord {
			m[1] = append(m[1], lr(3, "1/0/p9/9/9"))
			return m
		}, check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.Foreign) }},
		{name: "offsets ahead of the output", offsets: map[int32]int64{0: 2, 1: 2},
			check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.OffsetMismatch); require.Zero(t, c.Missing) }},
		{name: "acknowledged marker lost", markers: append(markers, "ABORTED/1/0"),
			check: func(t *testing.T, c TxnCheck) { require.Equal(t, 1, c.Violations()); require.Equal(t, 3, c.Markers) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := good()
			u := uncommitted(out)
			if tt.out != nil {
				out = tt.out(out)
			}
			offs, ms := offsets, markers
			if tt.offsets != nil {
				offs = tt.offsets
			}
			if tt.markers != nil {
				ms = tt.markers
			}
			c := CheckPipeline(input, out, u, offs, ms)
			tt.check(t, c)
			if tt.name != "exactly once" {
				require.NotZero(t, c.Violations())
				require.NotEmpty(t, c.Examples)
			}
		})
	}
}

// TestConfigMode checks the txn mode's settings: defaults, and a clear error naming a bad mode or
// transformer count.
func TestConfigMode(t *testing.T) {
	c := Config{Bin: "sluice"}
	require.NoError(t, c.SetDefaults())
	require.Equal(t, ModeIdempotent, c.Mode)
	require.Equal(t, 2, c.Transformers)

	c = Config{Bin: "sluice", Mode: ModeTxn, Transformers: 3}
	require.NoError(t, c.SetDefaults())
	require.Equal(t, 3, c.Transformers)
	require.Equal(t, "chaos-out", outputTopic(c))

	c = Config{Bin: "sluice", Mode: "exactly-once"}
	require.ErrorContains(t, c.SetDefaults(), `mode "exactly-once" is not idempotent or txn`)
	c = Config{Bin: "sluice", Mode: ModeTxn, Transformers: -1}
	require.ErrorContains(t, c.SetDefaults(), "transformers -1")
}
