package broker

import (
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs: v0-4
//
// Behavior:
//   - Topics: every topic config of Kafka 3.9 with its effective value; values set
//     on the topic have source DYNAMIC_TOPIC_CONFIG, the rest the source of the
//     broker setting they derive from (DYNAMIC_BROKER_CONFIG,
//     DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG or DEFAULT_CONFIG), with
//     every layer as synonym (v1+ IncludeSynonyms). v3+ IncludeDocumentation says
//     which configs Sluice accepts but does not act on.
//   - Brokers: resource name = this broker's node id gives every setting with its
//     source (dynamic per broker, dynamic cluster default, broker.yaml/flags,
//     default), read-only unless Kafka changes it at run time (dynconfig.go); the
//     empty name gives the cluster defaults set dynamically; another broker's id
//     gets INVALID_REQUEST, as in Kafka. Sluice's flush policy is
//     sluice.flush.policy.
//   - ConfigNames filters; v3+ carries config types.
//   - Authorization: DESCRIBE_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED)
//     or, for a broker, on the cluster (else CLUSTER_AUTHORIZATION_FAILED).

func init() { register(32, 0, 4, (*Broker).handleDescribeConfigs) }

func (b *Broker) handleDescribeConfigs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		want := func(name string) bool { return rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, name) }
		if err := cc.authorizeConfigs(kmsg.ACLOperationDescribeConfigs, rr.ResourceType, rr.ResourceName); err != nil {
			sr.ErrorCode, sr.ErrorMessage = errCode(err), errMessage(err)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := b.topicByName(rr.ResourceName)
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			overrides := b.topicConfigs(t)
			for i := range topicConfigDefs {
				d := &topicConfigDefs[i]
				if !want(d.name) {
					continue
				}
				v, src := b.topicConfigSource(overrides, d)
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value, c.ConfigType = d.name, &v, d.typ
				c.IsDefault = src == kmsg.ConfigSourceDefaultConfig
				c.Source = src
				if req.IncludeSynonyms {
					if src == kmsg.ConfigSourceDynamicTopicConfig {
						c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(d.name, v, kmsg.ConfigSourceDynamicTopicConfig))
					}
					if bd := brokerConfigDefByName(d.synonym); d.synonym != "" && bd != nil {
						c.ConfigSynonyms = append(c.ConfigSynonyms, b.brokerConfigSynonyms(bd, false)...)
					}
				}
				if why, ok := ignoredTopicConfigs[d.name]; ok && req.IncludeDocumentation {
					doc := "Accepted for compatibility; Sluice does not act on it: " + why + "."
					c.Documentation = &doc
				}
				sr.Configs = append(sr.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			b.describeBrokerConfigs(req, &rr, &sr)
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("resource type %v is not supported", rr.ResourceType)
			sr.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

func synonym(name, value string, src kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	s.Name, s.Value, s.Source = name, &value, src
	return s
}

// topicConfigs snapshots a topic's overrides.
func (b *Broker) topicConfigs(t *topic) map[string]string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[string]string, len(t.configs))
	for k, v := range t.configs {
		out[k] = v
	}
	return out
}

// setTopicConfigs validates a topic's new overrides and, unless validateOnly,
// replaces them through the controller, which records them in the metadata log;
// every replica applies them from there.
func (b *Broker) setTopicConfigs(cc *conn, t *topic, configs map[string]string, validateOnly bool) error {
	if err := validateTopicConfigs(configs); err != nil || validateOnly {
		return err
	}
	if err := b.quorum.AlterTopicConfigs(cc.ctx, t.name, configs); err != nil {
		return err
	}
	b.waitForImage(cc.ctx, func() bool { return maps.Equal(b.topicConfigs(t), configs) })
	b.logIgnoredConfigs(t.name, configs)
	return nil
}
