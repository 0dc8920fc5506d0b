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
//   - Brokers: static, INVALID_REQUEST, as with AlterConfigs.
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
			t, err := b.alterableTopic(rr.ResourceType, rr.ResourceName)
			if err != nil {
				return err
			}
			configs := b.topicConfigs(t)
			for _, c := range rr.Configs {
				d := topicConfigDefByName(c.Name)
				if d == nil {
					return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("unknown topic config %q", c.Name))
				}
				cur, _ := b.topicConfigValue(configs, d)
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
					if d.typ != kmsg.ConfigTypeList {
						return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("%s is not a list", c.Name))
					}
					items := strings.Split(cur, ",")
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
			return b.setTopicConfigs(cc, t, configs, req.ValidateOnly)
		}()
		sr.ErrorCode, sr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}
