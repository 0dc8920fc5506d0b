package broker

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAutoCreateLeadersServeAtOnce reproduces librdkafka's auto-create path on a
// 3-broker cluster: Metadata v4 with AllowAutoTopicCreation creates the topic,
// and a ListOffsets v2 sent at once to each partition leader named by the next
// Metadata answer must not get UNKNOWN_TOPIC_OR_PARTITION (librdkafka treats it
// as permanent): a broker is named leader only once it can serve.
func TestAutoCreateLeadersServeAtOnce(t *testing.T) {
	cluster := startTestCluster(t, 3, func(c *Config) { c.NumPartitions = 3 })
	addrs := map[int32]string{}
	for _, tb := range cluster {
		addrs[tb.cfg.NodeID] = tb.Addr()
	}
	for i := range 12 {
		topic := fmt.Sprintf("auto-%d", i)
		via := cluster[i%3].Addr()
		var md *kmsg.MetadataResponse
		for attempt := 0; ; attempt++ {
			req := kmsg.NewPtrMetadataRequest()
			req.Version, req.AllowAutoTopicCreation = 4, true
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = &topic
			req.Topics = append(req.Topics, rt)
			md = request[*kmsg.MetadataResponse](t, via, req)
			if md.Topics[0].ErrorCode == 0 {
				break
			}
			require.Equal(t, kerr.LeaderNotAvailable.Code, md.Topics[0].ErrorCode, "while being created")
			require.Less(t, attempt, 50)
		}
		require.Len(t, md.Topics[0].Partitions, 3)
		for _, mp := range md.Topics[0].Partitions {
			if mp.ErrorCode != 0 {
				require.Equal(t, kerr.LeaderNotAvailable.Code, mp.ErrorCode)
				continue
			}
			req := kmsg.NewPtrListOffsetsRequest()
			req.Version, req.ReplicaID = 2, -1
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = mp.Partition, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := request[*kmsg.ListOffsetsResponse](t, addrs[mp.Leader], req)
			code := resp.Topics[0].Partitions[0].ErrorCode
			require.NotEqual(t, kerr.UnknownTopicOrPartition.Code, code, "%s-%d at its leader %d", topic, mp.Partition, mp.Leader)
			if code != 0 {
				require.True(t, kerr.ErrorForCode(code).(*kerr.Error).Retriable, "%s-%d: %v", topic, mp.Partition, kerr.ErrorForCode(code))
			}
		}
	}
}
