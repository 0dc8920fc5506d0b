package broker

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/record"
)

func incrementalBroker(resource string, validateOnly bool, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) *kmsg.IncrementalAlterConfigsRequest {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version, req.ValidateOnly = 1, validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.Configs = kmsg.ConfigResourceTypeBroker, resource, ops
	req.Resources = append(req.Resources, rr)
	return req
}

func setOp(name, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op, c.Value = name, kmsg.IncrementalAlterConfigOpSet, &value
	return c
}

func deleteOp(name string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Op = name, kmsg.IncrementalAlterConfigOpDelete
	return c
}

func alterBroker(resource string, configs map[string]string) *kmsg.AlterConfigsRequest {
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version = 2
	rr := kmsg.NewAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, resource
	for k, v := range configs {
		c := kmsg.NewAlterConfigsRequestResourceConfig()
		c.Name, c.Value = k, &v
		rr.Configs = append(rr.Configs, c)
	}
	req.Resources = append(req.Resources, rr)
	return req
}

// describeConfig returns one config of a resource as the broker at addr
// describes it (DescribeConfigs v4 with synonyms).
func describeConfig(t *testing.T, addr string, typ kmsg.ConfigResourceType, resource, name string) kmsg.DescribeConfigsResponseResourceConfig {
	t.Helper()
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version, req.IncludeSynonyms = 4, true
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = typ, resource, []string{name}
	req.Resources = append(req.Resources, rr)
	resp := request[*kmsg.DescribeConfigsResponse](t, addr, req)
	require.Zero(t, resp.Resources[0].ErrorCode, "%v", resp.Resources[0].ErrorMessage)
	require.Len(t, resp.Resources[0].Configs, 1, name)
	return resp.Resources[0].Configs[0]
}

// produceAt sends one uncompressed batch of n records of size bytes each,
// timestamped ts, with Produce v8 acks=-1, and returns the partition's answer.
func produceAt(t *testing.T, addr, topic string, n, size int, ts time.Time) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	var recs []kmsg.Record
	for range n {
		r := kmsg.NewRecord()
		r.Key, r.Value = []byte("k"), make([]byte, size)
		recs = append(recs, r)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 8, -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = record.Build(0, ts.UnixMilli(), recs)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return request[*kmsg.ProduceResponse](t, addr, req).Topics[0].Partitions[0]
}

// TestDynamicBrokerConfigs changes broker settings at run time on a 3-broker
// cluster, per broker and as the cluster default, with AlterConfigs v2 and
// IncrementalAlterConfigs v1 as librdkafka and kadm send them: the metadata log
// carries them to every broker, which applies them without a restart and
// describes them with their source; read-only settings, bad values and unknown
// names are refused with Kafka's errors and change nothing.
func TestDynamicBrokerConfigs(t *testing.T) {
	cluster := startTestCluster(t, 3, func(c *Config) { c.LogRetentionCheckIntervalMs = 100 })
	addr := func(id int) string { return cluster[id-1].Addr() }

	// A subscriber sees every change of its settings.
	flushSeen := make(chan string, 16)
	cluster[2].onBrokerConfigChange([]string{"log.flush.interval.ms"}, func(v map[string]string) { flushSeen <- v["log.flush.interval.ms"] })
	require.Equal(t, "1000", <-flushSeen, "called once with the current value")

	t.Run("cluster default, incremental", func(t *testing.T) {
		resp := request[*kmsg.IncrementalAlterConfigsResponse](t, addr(2), incrementalBroker("", false,
			setOp("log.retention.ms", "3600000"), setOp("log.segment.bytes", "500"), setOp("log.flush.interval.ms", "250")))
		require.Zero(t, resp.Resources[0].ErrorCode, "%v", resp.Resources[0].ErrorMessage)
		for _, tb := range cluster {
			waitUntil(t, 10*time.Second, "the default applied everywhere", func() bool {
				v, src := tb.brokerConfigValue("log.retention.ms")
				return v == "3600000" && src == kmsg.ConfigSourceDynamicDefaultBrokerConfig
			})
		}
		require.Equal(t, "250", <-flushSeen)
		c := describeConfig(t, addr(1), kmsg.ConfigResourceTypeBroker, "1", "log.retention.ms")
		require.Equal(t, "3600000", *c.Value)
		require.Equal(t, kmsg.ConfigSourceDynamicDefaultBrokerConfig, c.Source)
		require.False(t, c.ReadOnly)
		require.Equal(t, kmsg.ConfigSourceDynamicDefaultBrokerConfig, c.ConfigSynonyms[0].Source)
		require.Equal(t, kmsg.ConfigSourceDefaultConfig, c.ConfigSynonyms[len(c.ConfigSynonyms)-1].Source)
		c = describeConfig(t, addr(1), kmsg.ConfigResourceTypeBroker, "", "log.segment.bytes")
		require.Equal(t, "500", *c.Value, "the empty name describes the cluster defaults")
	})

	t.Run("applied to existing partitions without restart", func(t *testing.T) {
		create := kmsg.NewPtrCreateTopicsRequest()
		create.Version, create.TimeoutMillis = 4, 30000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "dyn", -1, -1
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = 0, []int32{2}
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		create.Topics = append(create.Topics, rt)
		require.Zero(t, request[*kmsg.CreateTopicsResponse](t, addr(1), create).Topics[0].ErrorCode)
		waitUntil(t, 10*time.Second, "broker 2 leads dyn-0", func() bool {
			p := cluster[1].partitionOf("dyn", 0)
			return p != nil && p.hw.Load() >= 0 && func() bool { _, _, l := p.state(); return l }()
		})
		c := describeConfig(t, addr(2), kmsg.ConfigResourceTypeTopic, "dyn", "retention.ms")
		require.Equal(t, "3600000", *c.Value)
		require.Equal(t, kmsg.ConfigSourceDynamicDefaultBrokerConfig, c.Source)

		// Old records in 500-byte segments: retention deletes all but the
		// active segment.
		old := time.Now().Add(-2 * time.Hour)
		for range 5 {
			require.Zero(t, produceAt(t, addr(2), "dyn", 1, 300, old).ErrorCode)
		}
		p := cluster[1].partitionOf("dyn", 0)
		waitUntil(t, 15*time.Second, "retention from the dynamic defaults", func() bool { return p.log.LogStartOffset() >= 4 })

		// message.max.bytes for broker 2 only, with the legacy AlterConfigs.
		resp := request[*kmsg.AlterConfigsResponse](t, addr(3), alterBroker("2", map[string]string{"message.max.bytes": "300"}))
		require.Zero(t, resp.Resources[0].ErrorCode, "%v", resp.Resources[0].ErrorMessage)
		waitUntil(t, 10*time.Second, "broker 2 has message.max.bytes 300", func() bool {
			v, src := cluster[1].brokerConfigValue("message.max.bytes")
			return v == "300" && src == kmsg.ConfigSourceDynamicBrokerConfig
		})
		v, src := cluster[0].brokerConfigValue("message.max.bytes")
		require.Equal(t, "1048588", v, "broker 1 keeps its own")
		require.Equal(t, kmsg.ConfigSourceDefaultConfig, src)
		// The setting is visible a moment before applyImage has handed it to
		// every partition log.
		waitUntil(t, 10*time.Second, "400-byte records refused", func() bool {
			return produceAt(t, addr(2), "dyn", 1, 400, time.Now()).ErrorCode == kerr.MessageTooLarge.Code
		})
		require.Zero(t, produceAt(t, addr(2), "dyn", 1, 100, time.Now()).ErrorCode)

		// IncrementalAlterConfigs DELETE returns to the static value.
		inc := request[*kmsg.IncrementalAlterConfigsResponse](t, addr(1), incrementalBroker("2", false, deleteOp("message.max.bytes")))
		require.Zero(t, inc.Resources[0].ErrorCode)
		waitUntil(t, 10*time.Second, "broker 2 back to the default", func() bool {
			v, _ := cluster[1].brokerConfigValue("message.max.bytes")
			return v == "1048588"
		})
		waitUntil(t, 10*time.Second, "400-byte records accepted again", func() bool {
			return produceAt(t, addr(2), "dyn", 1, 400, time.Now()).ErrorCode == 0
		})
	})

	t.Run("refused", func(t *testing.T) {
		// The controller's image is the log's latest; a change it refused
		// is not in it.
		ctl := controllerOf(t, cluster)
		waitUntil(t, 10*time.Second, "the delete of broker 2's settings applied", func() bool {
			_, ok := ctl.quorum.Image().BrokerConfigs["2"]
			return !ok
		})
		before := ctl.quorum.Image().BrokerConfigs
		cases := []struct {
			name     string
			resource string
			configs  map[string]string
			code     *kerr.Error
			msg      string
		}{
			{"read-only", "1", map[string]string{"log.dir": "/tmp/x", "log.retention.ms": "1"}, kerr.InvalidRequest,
				"Invalid config value for resource ConfigResource(type=BROKER, name='1'): Cannot update these configs dynamically: Set(log.dir)"},
			{"read-only default", "", map[string]string{"num.partitions": "3"}, kerr.InvalidRequest, "Cannot update these configs dynamically: Set(num.partitions)"},
			{"bad value", "1", map[string]string{"log.retention.ms": "soon"}, kerr.InvalidRequest, "Invalid value soon for configuration log.retention.ms"},
			{"out of range", "", map[string]string{"log.segment.bytes": "3"}, kerr.InvalidRequest, "log.segment.bytes"},
			{"unknown", "1", map[string]string{"log.retention.weeks": "1"}, kerr.InvalidConfig, "Unknown broker config name: log.retention.weeks"},
			{"not a broker id", "broker-1", map[string]string{"log.retention.ms": "1"}, kerr.InvalidRequest, "Broker id must be an integer, but it is: broker-1"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp := request[*kmsg.AlterConfigsResponse](t, addr(1), alterBroker(c.resource, c.configs))
				require.Equal(t, c.code.Code, resp.Resources[0].ErrorCode)
				require.Contains(t, *resp.Resources[0].ErrorMessage, c.msg)
				var ops []kmsg.IncrementalAlterConfigsRequestResourceConfig
				for k, v := range c.configs {
					ops = append(ops, setOp(k, v))
				}
				inc := request[*kmsg.IncrementalAlterConfigsResponse](t, addr(1), incrementalBroker(c.resource, false, ops...))
				require.Equal(t, c.code.Code, inc.Resources[0].ErrorCode)
				require.Equal(t, before, ctl.quorum.Image().BrokerConfigs, "a refused change changes nothing")
			})
		}
		// ValidateOnly checks and stores nothing.
		inc := request[*kmsg.IncrementalAlterConfigsResponse](t, addr(1), incrementalBroker("3", true, setOp("log.retention.bytes", "1000")))
		require.Zero(t, inc.Resources[0].ErrorCode)
		require.Equal(t, before, ctl.quorum.Image().BrokerConfigs)

		// Describing another broker's settings is refused, as by Kafka.
		req := kmsg.NewPtrDescribeConfigsRequest()
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, "2"
		req.Resources = append(req.Resources, rr)
		require.Equal(t, kerr.InvalidRequest.Code, request[*kmsg.DescribeConfigsResponse](t, addr(1), req).Resources[0].ErrorCode)
	})

	t.Run("librdkafka admin client", func(t *testing.T) {
		var out map[string]string
		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, addr(1), "alter_configs", jsonArg(t, []map[string]any{
			{"type": "broker", "name": "3", "set": map[string]string{"log.cleaner.threads": "2", "log.retention.bytes": "1073741824"}},
		}))
		require.Equal(t, map[string]string{"3": ""}, out)
		waitUntil(t, 10*time.Second, "broker 3 applied it", func() bool {
			v, _ := cluster[2].brokerConfigValue("log.retention.bytes")
			return v == "1073741824"
		})
		var described map[string]map[string]struct {
			Value    *string `json:"value"`
			Source   int     `json:"source"`
			ReadOnly bool    `json:"read_only"`
		}
		runLibrdkafka(t, 2*time.Minute, "admin.py", &described, addr(3), "describe_configs", jsonArg(t, []map[string]any{{"type": "broker", "name": "3"}}))
		got := described["3"]
		require.Equal(t, "2", *got["log.cleaner.threads"].Value)
		require.Equal(t, int(kmsg.ConfigSourceDynamicBrokerConfig), got["log.cleaner.threads"].Source)
		require.Equal(t, int(kmsg.ConfigSourceDynamicDefaultBrokerConfig), got["log.retention.ms"].Source)
		require.Equal(t, int(kmsg.ConfigSourceStaticBrokerConfig), got["node.id"].Source)
		require.True(t, got["node.id"].ReadOnly)
		require.Equal(t, strconv.Itoa(3), *got["broker.id"].Value)

		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, addr(1), "alter_configs", jsonArg(t, []map[string]any{
			{"type": "broker", "name": "1", "set": map[string]string{"log.dirs": "/elsewhere"}},
		}))
		require.Contains(t, out["1"], "INVALID_REQUEST")
		require.Contains(t, out["1"], "Cannot update these configs dynamically")
	})
}

// controllerOf returns the active controller of a test cluster.
func controllerOf(t *testing.T, cluster []*testBroker) *testBroker {
	t.Helper()
	var ctl *testBroker
	waitUntil(t, 10*time.Second, "an active controller", func() bool {
		for _, tb := range cluster {
			if tb.quorum.IsController() {
				ctl = tb
				return true
			}
		}
		return false
	})
	return ctl
}

// TestDynamicBrokerConfigsSurviveRestart: the settings live in the metadata log,
// so a restarted broker applies them before it serves.
func TestDynamicBrokerConfigsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	tb := startTestBroker(t, dir)
	resp := request[*kmsg.IncrementalAlterConfigsResponse](t, tb.Addr(), incrementalBroker("1", false, setOp("log.retention.bytes", "5000000")))
	require.Zero(t, resp.Resources[0].ErrorCode)
	tb.stop(t)
	tb = startTestBroker(t, dir)
	waitUntil(t, 10*time.Second, "the dynamic setting applied after restart", func() bool {
		v, src := tb.brokerConfigValue("log.retention.bytes")
		return v == "5000000" && src == kmsg.ConfigSourceDynamicBrokerConfig
	})
}
