package broker

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs: v0-1
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it) and recorded in
//     the metadata log, so every replica applies the new configs.
//   - Topics: SET, DELETE (back to the default), and APPEND / SUBTRACT for list
//     configs (cleanup.policy), applied to the current overrides; all are validated
//     before any is applied.
//   - Brokers (a node id, or empty for the cluster-wide default): the same
//     operations on the resource's dynamic settings, then validated and applied as
//     with AlterConfigs (dynconfig.go).
//   - ValidateOnly checks without applying.
//   - Authorization: ALTER_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED) or,
//     for a broker, on the cluster (else CLUSTER_AUTHORIZATION_FAILED).

func init() { register(44, 0, 1, (*Broker).handleIncrementalAlterConfigs) }

func (b *Broker) handleIncrementalAlterConfigs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	if !b.quorum.IsController() {
		if resp, err := b.forwardToController(cc, req); !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		err := func() error {
			if err := cc.authorizeConfigs(kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); err != nil {
				return err
			}
			if rr.ResourceType == kmsg.ConfigResourceTypeBroker {
				if err := checkBrokerResource(rr.ResourceName); err != nil {
					return err
				}
				configs := b.brokerDynamicConfigs(rr.ResourceName)
				err := applyIncrementalOps(rr.Configs, configs, func(name string) (kmsg.ConfigType, string, error) {
					d := brokerConfigDefByName(name)
					if d == nil {
						return 0, "", kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Unknown broker config name: %s", name))
					}
					v, _ := b.brokerConfigValue(name)
					return d.typ, v, nil
				})
				if err != nil {
					return err
				}
				return b.setBrokerConfigs(cc, rr.ResourceName, configs, req.ValidateOnly)
			}
			t, err := b.alterableTopic(rr.ResourceType, rr.ResourceName)
			if err != nil {
				return err
			}
			configs := b.topicConfigs(t)
			err = applyIncrementalOps(rr.Configs, configs, func(name string) (kmsg.ConfigType, string, error) {
				d := topicConfigDefByName(name)
				if d == nil {
					return 0, "", kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Unknown topic config name: %s", name))
				}
				v, _ := b.topicConfigValue(configs, d)
				return d.typ, v, nil
			})
			if err != nil {
				return err
			}
			return b.setTopicConfigs(cc, t, configs, req.ValidateOnly)
		}()
		sr.ErrorCode, sr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// applyIncrementalOps applies IncrementalAlterConfigs operations to a resource's
// overrides; lookup gives a config's type and current effective value.
func applyIncrementalOps(ops []kmsg.IncrementalAlterConfigsRequestResourceConfig, configs map[string]string, lookup func(string) (kmsg.ConfigType, string, error)) error {
	for _, c := range ops {
		typ, _, err := lookup(c.Name)
		if err != nil {
			return err
		}
		_, cur, _ := lookup(c.Name)
		if v, ok := configs[c.Name]; ok {
			cur = v
		}
		val := ""
		if c.Value != nil {
			val = *c.Value
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			configs[c.Name] = val
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(configs, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if typ != kmsg.ConfigTypeList {
				return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Config value append is not allowed for config key: %s", c.Name))
			}
			var items []string
			if cur != "" {
				items = strings.Split(cur, ",")
			}
			for _, v := range strings.Split(val, ",") {
				if c.Op == kmsg.IncrementalAlterConfigOpAppend && !slices.Contains(items, v) {
					items = append(items, v)
				} else if c.Op == kmsg.IncrementalAlterConfigOpSubtract {
					items = slices.DeleteFunc(items, func(s string) bool { return s == v })
				}
			}
			configs[c.Name] = strings.Join(items, ",")
		default:
			return kafkaErr(kerr.InvalidRequest, fmt.Sprintf("unknown operation %d", c.Op))
		}
	}
	return nil
}
