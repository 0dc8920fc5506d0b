package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafka39TopicConfigs is every topic config Kafka 3.9 knows (TopicConfig and
// the replication throttles of QuotaConfig) with a valid value other than the
// default.
var kafka39TopicConfigs = map[string]string{
	"cleanup.policy":                          "compact,delete",
	"compression.gzip.level":                  "5",
	"compression.lz4.level":                   "12",
	"compression.type":                        "zstd",
	"compression.zstd.level":                  "-5",
	"delete.retention.ms":                     "1000",
	"file.delete.delay.ms":                    "1000",
	"flush.messages":                          "100",
	"flush.ms":                                "1000",
	"follower.replication.throttled.replicas": "0:1,1:2",
	"index.interval.bytes":                    "8192",
	"leader.replication.throttled.replicas":   "*",
	"local.retention.bytes":                   "1000",
	"local.retention.ms":                      "-1",
	"max.compaction.lag.ms":                   "60000",
	"max.message.bytes":                       "2000000",
	"message.downconversion.enable":           "false",
	"message.format.version":                  "2.8-IV1",
	"message.timestamp.after.max.ms":          "3600000",
	"message.timestamp.before.max.ms":         "3600000",
	"message.timestamp.difference.max.ms":     "3600000",
	"message.timestamp.type":                  "LogAppendTime",
	"min.cleanable.dirty.ratio":               "0.2",
	"min.compaction.lag.ms":                   "1000",
	"min.insync.replicas":                     "1",
	"preallocate":                             "true",
	"remote.log.copy.disable":                 "true",
	"remote.log.delete.on.disable":            "true",
	"remote.storage.enable":                   "false",
	"retention.bytes":                         "1000000",
	"retention.ms":                            "3600000",
	"segment.bytes":                           "1048576",
	"segment.index.bytes":                     "1048576",
	"segment.jitter.ms":                       "10",
	"segment.ms":                              "3600000",
	"unclean.leader.election.enable":          "true",
}

func createTopicsV4(name string, validateOnly bool, configs map[string]*string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.ValidateOnly, req.TimeoutMillis = 4, validateOnly, 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, v
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestKafkaTopicConfigsAccepted creates topics with every topic config Kafka 3.9
// knows, directly and through librdkafka's admin client; only unknown names,
// invalid values and null values are refused, with Kafka's messages.
func TestKafkaTopicConfigsAccepted(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	require.Len(t, topicConfigDefs, len(kafka39TopicConfigs), "one definition per Kafka 3.9 topic config")
	all := map[string]*string{}
	for k, v := range kafka39TopicConfigs {
		all[k] = &v
		require.NotNil(t, topicConfigDefByName(k), k)
	}
	for _, validateOnly := range []bool{true, false} {
		resp := request[*kmsg.CreateTopicsResponse](t, tb.Addr(), createTopicsV4("every-config", validateOnly, all))
		require.Zero(t, resp.Topics[0].ErrorCode, "validateOnly=%v: %v", validateOnly, resp.Topics[0].ErrorMessage)
	}
	got := tb.topicConfigs(tb.topicByName("every-config"))
	require.Equal(t, kafka39TopicConfigs, got)

	describe := kmsg.NewPtrDescribeConfigsRequest()
	describe.Version, describe.IncludeDocumentation = 4, true
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, "every-config"
	describe.Resources = append(describe.Resources, dr)
	dresp := request[*kmsg.DescribeConfigsResponse](t, tb.Addr(), describe)
	for _, c := range dresp.Resources[0].Configs {
		require.Equal(t, kafka39TopicConfigs[c.Name], *c.Value, c.Name)
		require.Equal(t, kmsg.ConfigSourceDynamicTopicConfig, c.Source, c.Name)
		if _, ignored := ignoredTopicConfigs[c.Name]; ignored {
			require.NotNil(t, c.Documentation, "%s says it is ignored", c.Name)
		}
	}
	require.Len(t, dresp.Resources[0].Configs, len(kafka39TopicConfigs))

	str := func(s string) *string { return &s }
	bad := []struct {
		name, config string
		value        *string
		msg          string
	}{
		{"unknown", "retention.msec", str("1"), "Unknown topic config name: retention.msec"},
		{"broker config", "log.retention.ms", str("1"), "Unknown topic config name: log.retention.ms"},
		{"null", "retention.ms", nil, "Null value not supported for topic configs: retention.ms"},
		{"bad number", "segment.bytes", str("big"), "segment.bytes"},
		{"below minimum", "local.retention.ms", str("-3"), "local.retention.ms"},
		{"bad version", "message.format.version", str("4.2-beta"), "message.format.version"},
		{"bad throttle list", "leader.replication.throttled.replicas", str("0-1"), "leader.replication.throttled.replicas"},
		{"tiered storage", "remote.storage.enable", str("true"), "Tiered Storage functionality is disabled in the broker"},
		{"gzip level", "compression.gzip.level", str("0"), "compression.gzip.level"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			resp := request[*kmsg.CreateTopicsResponse](t, tb.Addr(), createTopicsV4("bad-config", false, map[string]*string{c.config: c.value}))
			require.Equal(t, kerr.InvalidConfig.Code, resp.Topics[0].ErrorCode)
			require.Contains(t, *resp.Topics[0].ErrorMessage, c.msg)
			require.Nil(t, tb.topicByName("bad-config"))
		})
	}

	t.Run("librdkafka admin client", func(t *testing.T) {
		var out map[string]string
		runLibrdkafka(t, 2*time.Minute, "admin.py", &out, tb.Addr(), "create_topics", jsonArg(t, []map[string]any{
			{"name": "rdk-deprecated", "partitions": 1, "replication_factor": 1,
				"config": map[string]string{"message.format.version": "0.10.2", "message.downconversion.enable": "true"}},
			{"name": "rdk-unknown", "partitions": 1, "replication_factor": 1, "config": map[string]string{"no.such.config": "1"}},
		}))
		require.Equal(t, "", out["rdk-deprecated"])
		require.Contains(t, out["rdk-unknown"], "INVALID_CONFIG")
		var altered map[string]string
		runLibrdkafka(t, 2*time.Minute, "admin.py", &altered, tb.Addr(), "alter_configs", jsonArg(t, []map[string]any{
			{"type": "topic", "name": "rdk-deprecated", "set": map[string]string{"message.format.version": "3.0", "segment.jitter.ms": "5"}},
		}))
		require.Equal(t, map[string]string{"rdk-deprecated": ""}, altered)
		require.Equal(t, map[string]string{"message.format.version": "3.0", "segment.jitter.ms": "5"}, tb.topicConfigs(tb.topicByName("rdk-deprecated")))
	})
}
