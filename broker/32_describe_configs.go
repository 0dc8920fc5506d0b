package broker

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs: v0-4
//
// Behavior:
//   - Topics: every topic config Sluice honours with its effective value; values set
//     on the topic have source DYNAMIC_TOPIC_CONFIG, the rest DEFAULT_CONFIG with the
//     broker setting they derive from as synonym (v1+ IncludeSynonyms).
//   - Brokers (resource name = node id, or empty): the broker's settings, read-only,
//     source STATIC_BROKER_CONFIG; Sluice's flush policy is sluice.flush.policy.
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
				v, override := b.topicConfigValue(overrides, d)
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value, c.ConfigType = d.name, &v, d.typ
				c.IsDefault = !override
				c.Source = kmsg.ConfigSourceDefaultConfig
				if override {
					c.Source = kmsg.ConfigSourceDynamicTopicConfig
				}
				if req.IncludeSynonyms {
					if override {
						c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(d.name, v, kmsg.ConfigSourceDynamicTopicConfig))
					}
					c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(d.synonym, d.def(&b.cfg), kmsg.ConfigSourceDefaultConfig))
				}
				sr.Configs = append(sr.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(b.cfg.NodeID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				msg := fmt.Sprintf("broker %q is not this broker", rr.ResourceName)
				sr.ErrorMessage = &msg
				break
			}
			for _, bc := range b.brokerConfigs() {
				if !want(bc.name) {
					continue
				}
				v := bc.value
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value, c.ReadOnly = bc.name, &v, true
				c.Source = kmsg.ConfigSourceStaticBrokerConfig
				c.ConfigType = kmsg.ConfigTypeString
				if req.IncludeSynonyms {
					c.ConfigSynonyms = append(c.ConfigSynonyms, synonym(bc.name, v, kmsg.ConfigSourceStaticBrokerConfig))
				}
				sr.Configs = append(sr.Configs, c)
			}
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
	return nil
}
