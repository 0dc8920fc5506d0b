package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// AlterConfigs: v0-2
//
// Behavior:
//   - Carried out by the controller (other brokers forward to it) and recorded in
//     the metadata log, so every replica applies the new configs.
//   - Topics: the given configs replace every override of the topic (the legacy,
//     non-incremental semantics); all are validated before any is applied.
//   - Brokers (resource name = a node id, or empty for the cluster-wide default):
//     the given dynamic settings replace that resource's (dynconfig.go); each
//     broker applies them without a restart. Read-only settings get
//     INVALID_REQUEST "Cannot update these configs dynamically", bad values
//     INVALID_REQUEST, unknown names INVALID_CONFIG.
//   - ValidateOnly checks without applying.
//   - Authorization: ALTER_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED) or,
//     for a broker, on the cluster (else CLUSTER_AUTHORIZATION_FAILED).

func init() { register(33, 0, 2, (*Broker).handleAlterConfigs) }

func (b *Broker) handleAlterConfigs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterConfigsRequest)
	if !b.quorum.IsController() {
		if resp, err := b.forwardToController(cc, req); !errors.Is(err, errRetryLocally) {
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		err := func() error {
			if err := cc.authorizeConfigs(kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); err != nil {
				return err
			}
			if rr.ResourceType == kmsg.ConfigResourceTypeBroker {
				configs := make(map[string]string)
				for _, c := range rr.Configs {
					if c.Value != nil { // null: not set, as the whole set is replaced
						configs[c.Name] = *c.Value
					}
				}
				return b.setBrokerConfigs(cc, rr.ResourceName, configs, req.ValidateOnly)
			}
			t, err := b.alterableTopic(rr.ResourceType, rr.ResourceName)
			if err != nil {
				return err
			}
			configs := make(map[string]string)
			for _, c := range rr.Configs {
				if c.Value == nil {
					return nullTopicConfig(c.Name)
				}
				configs[c.Name] = *c.Value
			}
			return b.setTopicConfigs(cc, t, configs, req.ValidateOnly)
		}()
		sr.ErrorCode, sr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, sr)
	}
	return resp, nil
}

// alterableTopic resolves the topic a config change names.
func (b *Broker) alterableTopic(typ kmsg.ConfigResourceType, name string) (*topic, error) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		t := b.topicByName(name)
		if t == nil {
			return nil, kerr.UnknownTopicOrPartition
		}
		return t, nil
	default:
		return nil, kafkaErr(kerr.InvalidRequest, fmt.Sprintf("resource type %v is not supported", typ))
	}
}
