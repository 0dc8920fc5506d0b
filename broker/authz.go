package broker

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
	"github.com/sluicemq/sluice/broker/metadata"
)

// StandardAuthorizer is the authorizer.class.name that turns on ACL authorization: Kafka's own name for
// the authorizer whose ACLs live in the metadata log, whose semantics Sluice implements.
const StandardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

// apiAuthorization is what each served API authorizes, as Kafka's "Operations and
// Resources on Protocols" table has it; TestEveryAPIIsAuthorized fails for an API
// that is served without an entry here, so none skips authorization unnoticed.
var apiAuthorization = map[int16]string{
	0:  "WRITE topic; WRITE transactional id",
	1:  "READ topic; CLUSTER_ACTION cluster for followers",
	2:  "DESCRIBE topic",
	3:  "DESCRIBE topic (unlisted otherwise); CREATE cluster or topic for auto-creation",
	8:  "READ group; READ topic",
	9:  "DESCRIBE group; DESCRIBE topic",
	10: "DESCRIBE group or transactional id",
	11: "READ group",
	12: "READ group",
	13: "READ group",
	14: "READ group",
	15: "DESCRIBE group",
	16: "DESCRIBE cluster, else DESCRIBE group (filtered)",
	17: "none (authentication)",
	18: "none",
	19: "CREATE cluster, else CREATE topic; DESCRIBE_CONFIGS topic for the configs",
	20: "DELETE topic (and DESCRIBE by ID)",
	21: "DELETE topic",
	22: "IDEMPOTENT_WRITE cluster or WRITE on some topic; WRITE transactional id",
	23: "CLUSTER_ACTION cluster, else DESCRIBE topic",
	24: "WRITE transactional id; WRITE topic; v4+ (brokers) CLUSTER_ACTION cluster",
	25: "WRITE transactional id; READ group",
	26: "WRITE transactional id",
	29: "DESCRIBE cluster",
	30: "ALTER cluster",
	31: "ALTER cluster",
	32: "DESCRIBE_CONFIGS topic or cluster",
	33: "ALTER_CONFIGS topic or cluster",
	35: "DESCRIBE cluster",
	36: "none (authentication)",
	37: "ALTER topic",
	42: "DELETE group",
	44: "ALTER_CONFIGS topic or cluster",
	47: "DELETE group; READ topic",
	48: "DESCRIBE_CONFIGS cluster",
	49: "ALTER_CONFIGS cluster",
	50: "DESCRIBE cluster",
	51: "ALTER cluster",
	55: "DESCRIBE cluster",
	56: "CLUSTER_ACTION cluster",
	58: "CLUSTER_ACTION cluster, then the forwarded request as the client",
	60: "none; KIP-430 operations need DESCRIBE cluster",
	62: "CLUSTER_ACTION cluster",
	63: "CLUSTER_ACTION cluster",
	65: "DESCRIBE transactional id; DESCRIBE topic (partitions filtered)",
	66: "DESCRIBE transactional id (filtered)",
	67: "CLUSTER_ACTION cluster",
	// Transactions, partition side.
	27: "CLUSTER_ACTION cluster, on a broker-only listener",
	28: "WRITE transactional id; READ group; READ topic",
	61: "READ topic",
	80: "ALTER cluster",
	81: "ALTER cluster",
	// Reassignment and elections (scale-reassign).
	43: "ALTER cluster",
	45: "ALTER cluster",
	46: "DESCRIBE cluster",
	64: "ALTER cluster",
}

// validateAuthorizer checks authorizer.class.name and super.users.
func (c *Config) validateAuthorizer() error {
	switch c.AuthorizerClassName {
	case "", StandardAuthorizer:
	default:
		return fmt.Errorf("authorizer.class.name: %q is not empty or %s", c.AuthorizerClassName, StandardAuthorizer)
	}
	for _, u := range c.superUsers() {
		if typ, name, ok := strings.Cut(u, ":"); !ok || typ == "" || name == "" {
			return fmt.Errorf("super.users: %q is not a principal of the form Type:name", u)
		}
	}
	return nil
}

// superUsers splits super.users at semicolons, as Kafka does.
func (c *Config) superUsers() []string {
	var out []string
	for _, u := range strings.Split(c.SuperUsers, ";") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// authorizerState holds the authorizer built from the ACLs of the newest metadata image
// seen. It is rebuilt when a request finds the image's ACLs changed, so a request after
// a CreateAcls or DeleteAcls on this broker always sees them.
type authorizerState struct {
	cfg acl.Config

	mu  sync.Mutex // serializes rebuilds
	cur atomic.Pointer[builtAuthorizer]
}

// builtAuthorizer is an authorizer and the ACLs it was built from.
type builtAuthorizer struct {
	set *metadata.ACLSet
	a   *acl.Authorizer
}

// authorizer returns the authorizer for the current ACLs, or nil when
// authorizer.class.name is not set and every request is allowed.
func (b *Broker) authorizer() *acl.Authorizer {
	if b.cfg.AuthorizerClassName == "" {
		return nil
	}
	st := &b.authz
	set := b.quorum.Image().ACLs
	if cur := st.cur.Load(); cur != nil && cur.set == set {
		return cur.a
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if cur := st.cur.Load(); cur != nil && cur.set == set {
		return cur.a
	}
	built := &builtAuthorizer{set: set, a: acl.New(st.cfg, set.Bindings())}
	st.cur.Store(built)
	return built.a
}

// authorized reports whether the connection's principal may perform op on the
// resource of type rt called name; always true without an authorizer.
func (cc *conn) authorized(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	a := cc.b.authorizer()
	return a == nil || a.Authorize(cc.principalName(), cc.clientHost(), op, rt, name)
}

// authorizedCluster reports whether the connection's principal may perform op on the cluster.
func (cc *conn) authorizedCluster(op kmsg.ACLOperation) bool {
	return cc.authorized(op, kmsg.ACLResourceTypeCluster, acl.ClusterName)
}

// authorizedOperations is the KIP-430 bit field of what the connection's principal may do
// on a resource; every operation of the resource type without an authorizer.
func (cc *conn) authorizedOperations(rt kmsg.ACLResourceType, name string) int32 {
	a := cc.b.authorizer()
	if a == nil {
		var bits int32
		for _, op := range acl.Operations[rt] {
			bits |= 1 << uint(op)
		}
		return bits
	}
	return a.AuthorizedOperations(cc.principalName(), cc.clientHost(), rt, name)
}

// principalName is the connection's principal, "User:ANONYMOUS" before authentication.
func (cc *conn) principalName() string {
	if cc.principal == "" {
		return acl.AnonymousPrincipal
	}
	return cc.principal
}

// clientHost is the IP address the connection comes from, which ACL hosts match.
func (cc *conn) clientHost() string {
	if cc.host == "" {
		cc.host = cc.remote
		if h, _, err := net.SplitHostPort(cc.remote); err == nil {
			cc.host = h
		}
	}
	return cc.host
}

// authorizedTopic reports whether the connection's principal may perform op on a
// topic named by name, or by id when byID. A topic ID this broker does not know is
// let through: the request then fails with UNKNOWN_TOPIC_ID, and topic IDs are not
// secret (Kafka answers them alike).
func (cc *conn) authorizedTopic(op kmsg.ACLOperation, byID bool, name string, id [16]byte) bool {
	if cc.b.authorizer() == nil {
		return true
	}
	if byID {
		t := cc.b.topicByID(id)
		if t == nil {
			return true
		}
		name = t.name
	}
	return cc.authorized(op, kmsg.ACLResourceTypeTopic, name)
}

// authorizeFetch takes the topics the connection may not fetch out of req and
// returns their answers, TOPIC_AUTHORIZATION_FAILED for each partition: a follower
// (a replica id) needs CLUSTER_ACTION on the cluster, a consumer READ on the topic.
func (cc *conn) authorizeFetch(req *kmsg.FetchRequest) []kmsg.FetchResponseTopic {
	if cc.b.authorizer() == nil {
		return nil
	}
	replica := replicaID(req) >= 0 && !cc.authorizedCluster(kmsg.ACLOperationClusterAction)
	var denied []kmsg.FetchResponseTopic
	kept := req.Topics[:0]
	for _, rt := range req.Topics {
		if !replica && cc.authorizedTopic(kmsg.ACLOperationRead, req.Version >= 13, rt.Topic, rt.TopicID) {
			kept = append(kept, rt)
			continue
		}
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.RecordBatches = []byte{}
			st.Partitions = append(st.Partitions, sp)
		}
		denied = append(denied, st)
	}
	req.Topics = kept
	return denied
}

// metadataTopicDenied answers a topic of a Metadata request the principal may not
// see (DESCRIBE), or may not have auto-created (CREATE on the cluster or the topic),
// with TOPIC_AUTHORIZATION_FAILED; t is the topic if it exists. A topic asked for by
// ID is answered without its name.
func (cc *conn) metadataTopicDenied(rt kmsg.MetadataRequestTopic, t *metadata.Topic, autoCreate bool) (kmsg.MetadataResponseTopic, bool) {
	if cc.b.authorizer() == nil {
		return kmsg.MetadataResponseTopic{}, false
	}
	mt := kmsg.NewMetadataResponseTopic()
	mt.ErrorCode = kerr.TopicAuthorizationFailed.Code
	name := ""
	switch {
	case t != nil:
		name = t.Name
	case rt.Topic != nil:
		name = *rt.Topic
	}
	if rt.Topic == nil || *rt.Topic == "" {
		mt.TopicID = rt.TopicID
	} else {
		mt.Topic = rt.Topic
	}
	if name == "" {
		return mt, false
	}
	if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, name) {
		return mt, true
	}
	if t == nil && autoCreate && !cc.authorizedCluster(kmsg.ACLOperationCreate) &&
		!cc.authorized(kmsg.ACLOperationCreate, kmsg.ACLResourceTypeTopic, name) {
		return mt, true
	}
	return mt, false
}

// metadataAuthorizedOperations fills KIP-430's authorized operations into a
// Metadata response when the request asks for them.
func (cc *conn) metadataAuthorizedOperations(req *kmsg.MetadataRequest, resp *kmsg.MetadataResponse) {
	if req.Version < 8 {
		return
	}
	if req.Version <= 10 && req.IncludeClusterAuthorizedOperations {
		resp.AuthorizedOperations = 0
		if cc.authorizedCluster(kmsg.ACLOperationDescribe) {
			resp.AuthorizedOperations = cc.authorizedOperations(kmsg.ACLResourceTypeCluster, acl.ClusterName)
		}
	}
	if !req.IncludeTopicAuthorizedOperations {
		return
	}
	for i := range resp.Topics {
		mt := &resp.Topics[i]
		if mt.ErrorCode == 0 && mt.Topic != nil {
			mt.AuthorizedOperations = cc.authorizedOperations(kmsg.ACLResourceTypeTopic, *mt.Topic)
		}
	}
}

// authorizedIdempotence reports whether the principal may produce idempotently: with
// IDEMPOTENT_WRITE on the cluster or WRITE on some topic (Kafka 3.x, KIP-679).
func (cc *conn) authorizedIdempotence() bool {
	a := cc.b.authorizer()
	return a == nil || cc.authorizedCluster(kmsg.ACLOperationIdempotentWrite) ||
		a.AuthorizeAny(cc.principalName(), cc.clientHost(), kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic)
}

// authorizeConfigs checks op (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the resource of
// a config request: a topic, or the cluster for a broker.
func (cc *conn) authorizeConfigs(op kmsg.ACLOperation, typ kmsg.ConfigResourceType, name string) error {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !cc.authorized(op, kmsg.ACLResourceTypeTopic, name) {
			return kerr.TopicAuthorizationFailed
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger:
		if !cc.authorizedCluster(op) {
			return kerr.ClusterAuthorizationFailed
		}
	}
	return nil
}

// authorizedDeleteTopic reports whether the principal may delete a topic: DELETE on
// it and, when it is named by ID (name nil), DESCRIBE too, as Kafka checks. A topic
// that does not exist is checked by its requested name.
func (cc *conn) authorizedDeleteTopic(name *string, t *topic) bool {
	if cc.b.authorizer() == nil {
		return true
	}
	switch {
	case name != nil:
		return cc.authorized(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, *name)
	case t == nil:
		return true // UNKNOWN_TOPIC_ID
	default:
		return cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.name) &&
			cc.authorized(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic, t.name)
	}
}

// scramAlterDenied answers every user of an AlterUserScramCredentials request with
// CLUSTER_AUTHORIZATION_FAILED.
func scramAlterDenied(req *kmsg.AlterUserSCRAMCredentialsRequest, resp *kmsg.AlterUserSCRAMCredentialsResponse) *kmsg.AlterUserSCRAMCredentialsResponse {
	seen := map[string]bool{}
	add := func(user string) {
		if seen[user] {
			return
		}
		seen[user] = true
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = user, kerr.ClusterAuthorizationFailed.Code
		resp.Results = append(resp.Results, r)
	}
	for _, d := range req.Deletions {
		add(d.Name)
	}
	for _, u := range req.Upsertions {
		add(u.Name)
	}
	return resp
}
