package broker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func jsonArg(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return string(raw)
}

// TestCreateTopicsExplicitAssignment sends CreateTopics v4 as librdkafka's admin
// client does with a replica assignment (NumPartitions = ReplicationFactor = -1),
// directly and through librdkafka, then grows the topic with CreatePartitions
// assignments.
func TestCreateTopicsExplicitAssignment(t *testing.T) {
	cluster := startTestCluster(t, 3)
	addr := cluster[1].Addr() // not necessarily the controller: forwarding is covered too

	t.Run("kmsg v4 as librdkafka sends it", func(t *testing.T) {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version = 4
		req.TimeoutMillis = 30000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "assigned", -1, -1
		for i, replicas := range [][]int32{{2, 3}, {3, 1}, {1, 2}} {
			a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
			a.Partition, a.Replicas = int32(i), replicas
			rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		}
		req.Topics = append(req.Topics, rt)
		resp := request[*kmsg.CreateTopicsResponse](t, addr, req)
		require.Len(t, resp.Topics, 1)
		require.Zero(t, resp.Topics[0].ErrorCode, "%v", resp.Topics[0].ErrorMessage)
		mt := cluster[1].quorum.Image().Topic("assigned")
		require.NotNil(t, mt)
		require.Len(t, mt.Partitions, 3)
		require.Equal(t, []int32{2, 3}, mt.Partitions[0].Replicas)
		require.Equal(t, []int32{3, 1}, mt.Partitions[1].Replicas)
		require.Equal(t, int32(2), mt.Partitions[0].Leader, "the first replica is the preferred leader")
	})

	bad := []struct {
		name       string
		partitions int32
		rf         int16
		assignment map[int32][]int32
		code       *kerr.Error
	}{
		{"count and assignment", 3, -1, map[int32][]int32{0: {1}}, kerr.InvalidRequest},
		{"replication factor and assignment", -1, 1, map[int32][]int32{0: {1}}, kerr.InvalidRequest},
		{"gap", -1, -1, map[int32][]int32{0: {1}, 2: {2}}, kerr.InvalidReplicaAssignment},
		{"uneven", -1, -1, map[int32][]int32{0: {1}, 1: {1, 2}}, kerr.InvalidReplicaAssignment},
		{"unknown broker", -1, -1, map[int32][]int32{0: {9}}, kerr.InvalidReplicaAssignment},
		{"repeated broker", -1, -1, map[int32][]int32{0: {1, 1}}, kerr.InvalidReplicaAssignment},
	}
	for _, validateOnly := range []bool{false, true} {
		for _, c := range bad {
			t.Run(c.name, func(t *testing.T) {
				req := kmsg.NewPtrCreateTopicsRequest()
				req.Version, req.ValidateOnly, req.TimeoutMillis = 4, validateOnly, 30000
				rt := kmsg.NewCreateTopicsRequestTopic()
				rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "bad-assignment", c.partitions, c.rf
				for p, r := range c.assignment {
					a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
					a.Partition, a.Replicas = p, r
					rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
				}
				req.Topics = append(req.Topics, rt)
				resp := request[*kmsg.CreateTopicsResponse](t, addr, req)
				require.Equal(t, c.code.Code, resp.Topics[0].ErrorCode, "validateOnly=%v: %v", validateOnly, resp.Topics[0].ErrorMessage)
				require.Nil(t, cluster[1].quorum.Image().Topic("bad-assignment"), "a refused request creates nothing")
			})
		}
	}

	t.Run("librdkafka admin client", func(t *testing.T) {
		var out map[string]string
		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, addr, "create_topics", jsonArg(t, []map[string]any{
			{"name": "rdk-assigned", "assignment": [][]int32{{1, 2}, {2, 3}}},
			{"name": "rdk-bad", "assignment": [][]int32{{1, 7}}},
		}))
		require.Contains(t, out, "rdk-assigned")
		require.Equal(t, "", out["rdk-assigned"])
		require.Contains(t, out["rdk-bad"], "INVALID_REPLICA_ASSIGNMENT")
		waitUntil(t, 10*time.Second, "rdk-assigned applied", func() bool { return cluster[1].topicByName("rdk-assigned") != nil })

		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, addr, "create_partitions", jsonArg(t, []map[string]any{
			{"name": "rdk-assigned", "count": 4, "assignment": [][]int32{{3, 1}, {1, 3}}},
		}))
		require.Contains(t, out, "rdk-assigned")
		require.Equal(t, "", out["rdk-assigned"])
		// librdkafka sends CreatePartitions to the controller, which may not be
		// the broker looked at.
		waitUntil(t, 10*time.Second, "four partitions applied", func() bool {
			return len(cluster[1].quorum.Image().Topic("rdk-assigned").Partitions) == 4
		})
		mt := cluster[1].quorum.Image().Topic("rdk-assigned")
		require.Equal(t, []int32{3, 1}, mt.Partitions[2].Replicas)
		require.Equal(t, []int32{1, 3}, mt.Partitions[3].Replicas)

		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, addr, "create_partitions", jsonArg(t, []map[string]any{
			{"name": "rdk-assigned", "count": 5, "assignment": [][]int32{{3}}},
		}))
		require.Contains(t, out["rdk-assigned"], "INVALID_REPLICA_ASSIGNMENT", "the topic has two replicas per partition")
		require.Len(t, cluster[1].quorum.Image().Topic("rdk-assigned").Partitions, 4)
	})
}
