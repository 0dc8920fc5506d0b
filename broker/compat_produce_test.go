package broker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

// TestCompactedTopicRefusesKeylessRecords sets cleanup.policy=compact on a topic
// and produces batches with and without keys through Produce v7 and v8 and
// librdkafka's producer: keyless records get INVALID_RECORD (with record errors
// from v8 on) and nothing of their batch is stored.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	_, err := adm.CreateTopic(ctx, 1, 1, nil, "compacted")
	require.NoError(t, err)
	produce := func(version int16, keys ...[]byte) kmsg.ProduceResponseTopicPartition {
		var recs []kmsg.Record
		for _, k := range keys {
			r := kmsg.NewRecord()
			r.Key, r.Value = k, []byte("v")
			recs = append(recs, r)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Version, req.Acks, req.TimeoutMillis = version, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "compacted"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = record.Build(0, time.Now().UnixMilli(), recs)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.ProduceResponse](t, tb.Addr(), req)
		return resp.Topics[0].Partitions[0]
	}
	end := func() int64 {
		ends, err := adm.ListEndOffsets(ctx, "compacted")
		require.NoError(t, err)
		o, _ := ends.Lookup("compacted", 0)
		return o.Offset
	}

	require.Zero(t, produce(8, nil).ErrorCode, "a delete topic takes keyless records")
	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: kadm.StringPtr("compact")}}, "compacted")
	require.NoError(t, err)
	require.NoError(t, alter[0].Err)

	sp := produce(8, []byte("a"), nil, []byte("b"), nil)
	require.Equal(t, kerr.InvalidRecord.Code, sp.ErrorCode)
	require.NotNil(t, sp.ErrorMessage)
	require.Len(t, sp.ErrorRecords, 2)
	require.Equal(t, int32(1), sp.ErrorRecords[0].RelativeOffset)
	require.Equal(t, int32(3), sp.ErrorRecords[1].RelativeOffset)
	require.Equal(t, "Compacted topic cannot accept message without key in topic partition compacted-0.", *sp.ErrorRecords[0].ErrorMessage)

	sp = produce(7, nil)
	require.Equal(t, kerr.InvalidRecord.Code, sp.ErrorCode, "before v8 only the partition error")
	require.Equal(t, int64(1), end(), "a refused batch stores nothing")

	require.Zero(t, produce(8, []byte("a"), []byte("b")).ErrorCode)
	require.Equal(t, int64(3), end())

	var out []string
	runLibrdkafka(t, 2*time.Minute, "produce.py", &out, tb.Addr(), "compacted", jsonArg(t, []map[string]any{
		{"key": "k", "value": "keyed"}, {"key": nil, "value": "keyless"},
	}))
	require.Equal(t, []string{"", "INVALID_RECORD"}, out)
	require.Equal(t, int64(4), end())
}

// TestTimestampBoundsRefuseRecords: CreateTime records outside
// message.timestamp.before.max.ms / after.max.ms (or the deprecated
// difference.max.ms) get INVALID_TIMESTAMP with record errors; LogAppendTime
// topics are not checked.
func TestTimestampBoundsRefuseRecords(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	str := func(s string) *string { return &s }
	for name, configs := range map[string]map[string]*string{
		"bounded":     {"message.timestamp.before.max.ms": str("3600000"), "message.timestamp.after.max.ms": str("60000")},
		"difference":  {"message.timestamp.difference.max.ms": str("60000")},
		"append-time": {"message.timestamp.difference.max.ms": str("60000"), "message.timestamp.type": str("LogAppendTime")},
	} {
		resp := request[*kmsg.CreateTopicsResponse](t, tb.Addr(), createTopicsV4(name, false, configs))
		require.Zero(t, resp.Topics[0].ErrorCode, "%v", resp.Topics[0].ErrorMessage)
	}
	now := time.Now()
	cases := []struct {
		topic string
		ts    time.Time
		code  *kerr.Error
	}{
		{"bounded", now, nil},
		{"bounded", now.Add(-30 * time.Minute), nil},
		{"bounded", now.Add(-2 * time.Hour), kerr.InvalidTimestamp},
		{"bounded", now.Add(time.Hour), kerr.InvalidTimestamp},
		{"difference", now.Add(-time.Hour), kerr.InvalidTimestamp},
		{"difference", now.Add(time.Hour), kerr.InvalidTimestamp},
		{"difference", now, nil},
		{"append-time", now.Add(-time.Hour), nil},
	}
	for _, c := range cases {
		sp := produceAt(t, tb.Addr(), c.topic, 2, 10, c.ts)
		if c.code == nil {
			require.Zero(t, sp.ErrorCode, "%s at %v: %v", c.topic, c.ts, sp.ErrorMessage)
			continue
		}
		require.Equal(t, c.code.Code, sp.ErrorCode, "%s at %v", c.topic, c.ts)
		require.Len(t, sp.ErrorRecords, 2)
		require.Contains(t, *sp.ErrorRecords[1].ErrorMessage, "is out of range")
	}
}
