package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func v(producer int, seq int64) Value { return Value{Producer: producer, Partition: 0, Seq: seq} }

func rec(offset int64, val Value) LogRecord {
	return LogRecord{Offset: offset, Value: []byte(val.String())}
}

func TestValueRoundTrip(t *testing.T) {
	for _, want := range []Value{{0, 0, 0}, {12, 5, 123456789}} {
		got, ok := ParseValue([]byte(want.String()))
		require.True(t, ok)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"", "x1/2/3", "p1/2", "p1/2/x", "p1/2/3/4"} {
		_, ok := ParseValue([]byte(bad))
		require.False(t, ok, bad)
	}
}

func TestCheckPartition(t *testing.T) {
	tests := []struct {
		name string
		acks []Ack
		log  []LogRecord
		want PartitionCheck
	}{
		{
			name: "all there",
			acks: []Ack{{0, v(0, 0)}, {1, v(1, 0)}, {2, v(0, 1)}},
			log:  []LogRecord{rec(0, v(0, 0)), rec(1, v(1, 0)), rec(2, v(0, 1))},
			want: PartitionCheck{Acked: 3, InLog: 3},
		},
		{
			name: "unacknowledged record present is fine",
			acks: []Ack{{0, v(0, 0)}, {2, v(0, 2)}},
			log:  []LogRecord{rec(0, v(0, 0)), rec(1, v(0, 1)), rec(2, v(0, 2))},
			want: PartitionCheck{Acked: 2, InLog: 3, Unacked: 1},
		},
		{
			name: "lost: offset overwritten by another record after a failover",
			acks: []Ack{{0, v(0, 0)}, {1, v(0, 1)}},
			log:  []LogRecord{rec(0, v(0, 0)), rec(1, v(1, 7))},
			want: PartitionCheck{Acked: 2, InLog: 2, Lost: 1, Unacked: 1},
		},
		{
			name: "lost: log ends early",
			acks: []Ack{{0, v(0, 0)}, {1, v(0, 1)}},
			log:  []LogRecord{rec(0, v(0, 0))},
			want: PartitionCheck{Acked: 2, InLog: 1, Lost: 1},
		},
		{
			name: "moved",
			acks: []Ack{{0, v(0, 0)}, {1, v(0, 1)}},
			log:  []LogRecord{rec(0, v(0, 0)), rec(1, v(1, 0)), rec(2, v(0, 1))},
			want: PartitionCheck{Acked: 2, InLog: 3, Moved: 1, Unacked: 1},
		},
		{
			name: "duplicated",
			acks: []Ack{{0, v(0, 0)}, {1, v(0, 1)}},
			log:  []LogRecord{rec(0, v(0, 0)), rec(1, v(0, 1)), rec(2, v(0, 1))},
			want: PartitionCheck{Acked: 2, InLog: 3, Duplicated: 1},
		},
		{
			name: "reordered within a producer, other producers interleaved",
			acks: []Ack{{0, v(0, 1)}, {1, v(1, 0)}, {2, v(0, 0)}, {3, v(1, 1)}},
			log:  []LogRecord{rec(0, v(0, 1)), rec(1, v(1, 0)), rec(2, v(0, 0)), rec(3, v(1, 1))},
			want: PartitionCheck{Acked: 4, InLog: 4, Reordered: 1},
		},
		{
			name: "foreign value and a value of another partition",
			log: []LogRecord{{Offset: 0, Value: []byte("hello")},
				{Offset: 1, Value: []byte(Value{Producer: 0, Partition: 3, Seq: 0}.String())}},
			want: PartitionCheck{InLog: 2, Foreign: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckPartition(0, tt.acks, tt.log)
			require.Equal(t, len(got.Examples) > 0, got.Violations() > 0, "examples %q", got.Examples)
			got.Examples = nil
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCheckTopicSums(t *testing.T) {
	acks := map[int32][]Ack{0: {{0, v(0, 0)}}, 1: {{0, Value{0, 1, 0}}}}
	logs := map[int32][]LogRecord{0: {rec(0, v(0, 0))}}
	c := CheckTopic(2, acks, logs)
	require.Len(t, c.Partitions, 2)
	require.Equal(t, 2, c.Acked)
	require.Equal(t, 1, c.Lost)
	require.Equal(t, 1, c.Violations())
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range n {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	require.Equal(t, time.Duration(0), Percentile(nil, 50))
	require.Equal(t, 3*time.Millisecond, Percentile(ms(1, 2, 3, 4, 5), 50))
	require.Equal(t, 5*time.Millisecond, Percentile(ms(1, 2, 3, 4, 5), 99))
	require.Equal(t, 1*time.Millisecond, Percentile(ms(1), 99))
	samples := make([]int, 200)
	for i := range samples {
		samples[i] = i + 1
	}
	require.Equal(t, 198*time.Millisecond, Percentile(ms(samples...), 99))
}

func TestLedgerWatcherFiresOnRecordsIssuedAfter(t *testing.T) {
	l := newLedger()
	kill := time.Now()
	w := l.watch(2, kill)
	l.ack(Ack{Offset: 0, Value: Value{0, 2, 0}}, kill.Add(-time.Millisecond), kill.Add(time.Millisecond))
	l.ack(Ack{Offset: 0, Value: Value{0, 1, 0}}, kill.Add(time.Millisecond), kill.Add(2*time.Millisecond))
	select {
	case <-w.acked:
		t.Fatal("fired on a record issued before the kill or on another partition")
	default:
	}
	l.ack(Ack{Offset: 1, Value: Value{0, 2, 1}}, kill, kill.Add(3*time.Millisecond))
	require.Equal(t, kill.Add(3*time.Millisecond), <-w.acked)
	acked, failed := l.counts()
	require.Equal(t, int64(3), acked)
	require.Zero(t, failed)
}

func TestJavaBackoff(t *testing.T) {
	for _, tt := range []struct {
		max   time.Duration
		tries int
		want  time.Duration
	}{
		{time.Second, 1, 100 * time.Millisecond},
		{time.Second, 2, 200 * time.Millisecond},
		{time.Second, 4, 800 * time.Millisecond},
		{time.Second, 9, time.Second},
		{100 * time.Millisecond, 9, 100 * time.Millisecond},
	} {
		got := javaBackoff(tt.max)(tt.tries)
		require.InDelta(t, float64(tt.want), float64(got), 0.2*float64(tt.want), "max %v tries %d", tt.max, tt.tries)
	}
}
