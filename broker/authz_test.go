package broker

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/sluicemq/sluice/broker/acl"
)

// withAuthorizer turns on the StandardAuthorizer with the given super users.
func withAuthorizer(superUsers string) func(*Config) {
	return func(c *Config) {
		c.AuthorizerClassName = StandardAuthorizer
		c.SuperUsers = superUsers
	}
}

// grant stores ACLs through the controller directly, as an administrator would have.
func grant(t *testing.T, tb *testBroker, bindings ...acl.Binding) {
	t.Helper()
	errs, err := tb.quorum.CreateACLs(context.Background(), bindings)
	require.NoError(t, err)
	for _, e := range errs {
		require.NoError(t, e)
	}
}

func anon(rt kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) acl.Binding {
	return acl.Binding{ResourceType: rt, PatternType: pt, ResourceName: name, Principal: acl.AnonymousPrincipal,
		Host: "*", Operation: op, Permission: perm}
}

// anyACL is a kadm filter matching every ACL.
func anyACL() *kadm.ACLBuilder {
	return kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny).
		ResourcePatternType(kadm.ACLPatternAny)
}

func createTopics(t *testing.T, tb *testBroker, names ...string) {
	t.Helper()
	for _, n := range names {
		_, err := tb.quorum.CreateTopic(context.Background(), n, 1, 1, nil, nil)
		require.NoError(t, err)
		tb.waitForImage(context.Background(), func() bool { return tb.topicByName(n) != nil })
	}
}

// produceErr produces one record to topic and returns the client's error.
func produceErr(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

func topicNames(t *testing.T, adm *kadm.Client) []string {
	t.Helper()
	td, err := adm.ListTopics(context.Background())
	require.NoError(t, err)
	return td.Names()
}

// TestAuthorizationWithoutACLs checks a principal no ACL names gets Kafka's
// authorization errors from every kind of request, and that nothing changes.
func TestAuthorizationWithoutACLs(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:admin"))
	createTopics(t, tb, "orders")
	ctx := context.Background()
	adm := kadm.NewClient(newClient(t, tb.Addr()))

	require.Empty(t, topicNames(t, adm), "Metadata lists only topics the principal may describe")

	created, err := adm.CreateTopics(ctx, 1, 1, nil, "fresh")
	require.NoError(t, err)
	require.ErrorIs(t, created["fresh"].Err, kerr.TopicAuthorizationFailed)

	plain := newClient(t, tb.Addr(), kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	require.ErrorIs(t, produceErr(t, plain, "orders"), kerr.TopicAuthorizationFailed)
	idem := newClient(t, tb.Addr(), kgo.RecordRetries(1))
	require.ErrorIs(t, produceErr(t, idem, "orders"), kerr.TopicAuthorizationFailed)

	initPID := kmsg.NewPtrInitProducerIDRequest()
	resp, err := initPID.RequestWith(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, resp.ErrorCode, "idempotence needs IDEMPOTENT_WRITE or WRITE on a topic")

	_, err = adm.FetchOffsets(ctx, "g1")
	require.ErrorIs(t, err, kerr.GroupAuthorizationFailed)

	described, err := adm.DescribeACLs(ctx, anyACL())
	require.NoError(t, err)
	require.ErrorIs(t, described[0].Err, kerr.ClusterAuthorizationFailed)
	res, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:ANONYMOUS").Topics("orders").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	require.NoError(t, err)
	require.ErrorIs(t, res[0].Err, kerr.ClusterAuthorizationFailed)
	require.Zero(t, tb.quorum.Image().ACLs.Len())

	cfgs, err := adm.DescribeTopicConfigs(ctx, "orders")
	if err == nil {
		err = cfgs[0].Err
	}
	require.ErrorIs(t, err, kerr.TopicAuthorizationFailed)

	deleted, err := adm.DeleteTopics(ctx, "orders")
	require.NoError(t, err)
	require.ErrorIs(t, deleted["orders"].Err, kerr.TopicAuthorizationFailed)
	require.NotNil(t, tb.quorum.Image().Topic("orders"), "the topic is still there")

	// A plain client connection trying a broker-only API, the node-99 hijack.
	reg := kmsg.NewPtrBrokerRegistrationRequest()
	reg.BrokerID, reg.ClusterID = 99, tb.cfg.ClusterID
	l := kmsg.NewBrokerRegistrationRequestListener()
	l.Name, l.Host, l.Port = "PLAINTEXT", "127.0.0.1", 1
	reg.Listeners = append(reg.Listeners, l)
	regResp, err := reg.RequestWith(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, regResp.ErrorCode)
	_, registered := tb.quorum.Image().Brokers[99]
	require.False(t, registered)
}

// TestAuthorizationPrefixedAndDeny checks a PREFIXED ACL grants exactly its prefix
// and a DENY beats an ALLOW.
func TestAuthorizationPrefixedAndDeny(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer(""))
	createTopics(t, tb, "team-a.orders", "team-a.secret", "team-a", "team-b.orders")
	grant(t, tb,
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, "team-a.", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "team-a.secret", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeDeny),
	)
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	require.ElementsMatch(t, []string{"team-a.orders", "team-a.secret"}, topicNames(t, adm), "WRITE implies DESCRIBE; a DENY of WRITE does not deny DESCRIBE")

	cl := newClient(t, tb.Addr(), kgo.RecordRetries(1))
	require.NoError(t, produceErr(t, cl, "team-a.orders"), "idempotent produce with WRITE on a topic")
	require.ErrorIs(t, produceErr(t, cl, "team-a.secret"), kerr.TopicAuthorizationFailed, "DENY beats ALLOW")
	require.ErrorIs(t, produceErr(t, cl, "team-a"), kerr.TopicAuthorizationFailed, "the prefix is longer than the name")
	require.ErrorIs(t, produceErr(t, cl, "team-b.orders"), kerr.TopicAuthorizationFailed)

	// Reading needs READ on the topic and on the group.
	consumer := newClient(t, tb.Addr(), kgo.ConsumeTopics("team-a.orders"), kgo.ConsumerGroup("readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	fetches := consumer.PollFetches(ctx)
	cancel()
	var groupErr error
	fetches.EachError(func(_ string, _ int32, err error) { groupErr = err })
	require.ErrorIs(t, groupErr, kerr.GroupAuthorizationFailed)

	grant(t, tb,
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "team-a.orders", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypePrefixed, "read", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
	)
	consumer = newClient(t, tb.Addr(), kgo.ConsumeTopics("team-a.orders"), kgo.ConsumerGroup("readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) == 0 && ctx.Err() == nil {
		f := consumer.PollFetches(ctx)
		require.NoError(t, f.Err0(), "consuming with READ on topic and group")
		got = append(got, f.Records()...)
	}
	require.Len(t, got, 1)
	require.NoError(t, consumer.CommitUncommittedOffsets(ctx))
}

// TestAuthorizationSuperUser checks a super user passes every check without ACLs and
// manages ACLs through the Kafka APIs with kadm.
func TestAuthorizationSuperUser(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:ANONYMOUS"))
	ctx := context.Background()
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	created, err := adm.CreateTopics(ctx, 1, 1, nil, "orders")
	require.NoError(t, err)
	require.NoError(t, created["orders"].Err)
	cl := newClient(t, tb.Addr())
	require.NoError(t, produceErr(t, cl, "orders"))

	b := kadm.NewACLs().Allow("User:alice").AllowHosts("10.0.0.1").Topics("orders").Groups("g").
		Operations(kadm.OpRead, kadm.OpDescribe).ResourcePatternType(kadm.ACLPatternLiteral)
	res, err := adm.CreateACLs(ctx, b)
	require.NoError(t, err)
	require.Len(t, res, 4)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	prefixed := kadm.NewACLs().Deny("User:bob").Topics("ord").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternPrefixed)
	_, err = adm.CreateACLs(ctx, prefixed)
	require.NoError(t, err)
	require.Equal(t, 5, tb.quorum.Image().ACLs.Len())

	// MATCH finds the ACLs that apply to topic "orders": the literal ones and the prefix.
	described, err := adm.DescribeACLs(ctx, kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).
		Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny))
	require.NoError(t, err)
	require.NoError(t, described[0].Err)
	require.Len(t, described[0].Described, 3)

	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().Allow("User:alice").AllowHosts("10.0.0.1").Topics("orders").
		Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	require.NoError(t, err)
	require.Len(t, deleted, 1)
	require.NoError(t, deleted[0].Err)
	require.Len(t, deleted[0].Deleted, 1)
	require.Equal(t, 4, tb.quorum.Image().ACLs.Len())

	// A bad ACL is refused and the others still created.
	bad := kmsg.NewPtrCreateACLsRequest()
	for _, name := range []string{"not-kafka-cluster", "kafka-cluster"} {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeCluster, name, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:carol", "*", kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow
		bad.Creations = append(bad.Creations, c)
	}
	badResp, err := bad.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, kerr.InvalidRequest.Code, badResp.Results[0].ErrorCode)
	require.Zero(t, badResp.Results[1].ErrorCode)
	require.Equal(t, 5, tb.quorum.Image().ACLs.Len())
}

// TestAuthorizationDisabled checks the ACL APIs answer SECURITY_DISABLED without an
// authorizer, and everything else is allowed as before.
func TestAuthorizationDisabled(t *testing.T) {
	tb := startTestBroker(t, t.TempDir())
	adm := kadm.NewClient(newClient(t, tb.Addr()))
	described, err := adm.DescribeACLs(context.Background(), anyACL())
	require.NoError(t, err)
	require.ErrorIs(t, described[0].Err, kerr.SecurityDisabled)
	cl := newClient(t, tb.Addr(), kgo.AllowAutoTopicCreation())
	require.NoError(t, produceErr(t, cl, "auto"))
}

// TestAuthorizedOperations checks KIP-430's authorized operations in Metadata,
// DescribeCluster and DescribeGroups.
func TestAuthorizedOperations(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer(""))
	createTopics(t, tb, "orders")
	grant(t, tb,
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "orders", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeLiteral, "g", kmsg.ACLOperationDelete, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeCluster, kmsg.ACLResourcePatternTypeLiteral, acl.ClusterName, kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow),
	)
	ctx := context.Background()
	// Metadata asks for the cluster's operations only up to v10.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(3, 10)
	cl := newClient(t, tb.Addr(), kgo.MaxVersions(versions))
	bits := func(ops ...kmsg.ACLOperation) int32 {
		var b int32
		for _, op := range ops {
			b |= 1 << op
		}
		return b
	}

	md := kmsg.NewPtrMetadataRequest()
	md.Version = 10
	md.IncludeClusterAuthorizedOperations, md.IncludeTopicAuthorizedOperations = true, true
	mdResp, err := md.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Len(t, mdResp.Topics, 1)
	require.Equal(t, bits(kmsg.ACLOperationRead, kmsg.ACLOperationDescribe), mdResp.Topics[0].AuthorizedOperations)
	require.Equal(t, bits(kmsg.ACLOperationDescribe), mdResp.AuthorizedOperations)

	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.IncludeClusterAuthorizedOperations = true
	dcResp, err := dc.RequestWith(ctx, cl)
	require.NoError(t, err)
	require.Equal(t, bits(kmsg.ACLOperationDescribe), dcResp.ClusterAuthorizedOperations)

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups, dg.IncludeAuthorizedOperations = []string{"g", "other"}, true
	dgResp, err := dg.RequestWith(ctx, cl.Broker(int(tb.cfg.NodeID)))
	require.NoError(t, err)
	require.Len(t, dgResp.Groups, 2)
	for _, g := range dgResp.Groups {
		switch g.Group {
		case "g":
			require.Zero(t, g.ErrorCode)
			require.Equal(t, bits(kmsg.ACLOperationDelete, kmsg.ACLOperationDescribe), g.AuthorizedOperations)
		default:
			require.Equal(t, kerr.GroupAuthorizationFailed.Code, g.ErrorCode)
		}
	}
}

// TestEveryAPIIsAuthorized checks every API the broker serves says how it is
// authorized, so an API added later cannot skip authorization unnoticed.
func TestEveryAPIIsAuthorized(t *testing.T) {
	for _, a := range registeredAPIs() {
		_, ok := apiAuthorization[a.key]
		require.True(t, ok, "API %s (%d) has no entry in apiAuthorization", kmsg.NameForKey(a.key), a.key)
	}
}

// TestEnvelopeAuthorizesAsTheClient checks the controller authorizes a forwarded
// request as the client the Envelope names, from the client's address, and accepts
// Envelopes only from a principal with CLUSTER_ACTION.
func TestEnvelopeAuthorizesAsTheClient(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:broker"))
	ctx := context.Background()
	create := kmsg.NewPtrCreateTopicsRequest()
	create.Version = 7
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "env-orders", 1, 1
	create.Topics = append(create.Topics, rt)
	client := &conn{b: tb.Broker, ctx: ctx, principal: "User:bob", remote: "10.1.2.3:5000", clientID: "bob-app"}
	forward := func(from string) (*kmsg.EnvelopeResponse, *kmsg.CreateTopicsResponse) {
		t.Helper()
		broker := &conn{b: tb.Broker, ctx: ctx, principal: from, remote: "127.0.0.1:1"}
		resp, err := tb.handleEnvelope(broker, envelope(client, create))
		require.NoError(t, err)
		env := resp.(*kmsg.EnvelopeResponse)
		if env.ErrorCode != 0 {
			return env, nil
		}
		inner, err := unwrapEnvelope(create, env)
		require.NoError(t, err)
		return env, inner.(*kmsg.CreateTopicsResponse)
	}

	_, inner := forward("User:broker")
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, inner.Topics[0].ErrorCode, "bob, not the broker, is authorized")

	grant(t, tb, acl.Binding{ResourceType: kmsg.ACLResourceTypeTopic, PatternType: kmsg.ACLResourcePatternTypePrefixed,
		ResourceName: "env-", Principal: "User:bob", Host: "10.9.9.9", Operation: kmsg.ACLOperationCreate, Permission: kmsg.ACLPermissionTypeAllow})
	_, inner = forward("User:broker")
	require.Equal(t, kerr.TopicAuthorizationFailed.Code, inner.Topics[0].ErrorCode, "the ACL is for another host")
	grant(t, tb, acl.Binding{ResourceType: kmsg.ACLResourceTypeTopic, PatternType: kmsg.ACLResourcePatternTypePrefixed,
		ResourceName: "env-", Principal: "User:bob", Host: "10.1.2.3", Operation: kmsg.ACLOperationCreate, Permission: kmsg.ACLPermissionTypeAllow})
	_, inner = forward("User:broker")
	require.Zero(t, inner.Topics[0].ErrorCode)
	require.NotNil(t, tb.quorum.Image().Topic("env-orders"))

	env, _ := forward("User:bob")
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, env.ErrorCode, "an Envelope needs CLUSTER_ACTION")

	// A client cannot send one on the client listener either.
	raw := kmsg.NewPtrEnvelopeRequest()
	raw.RequestData, raw.RequestPrincipal = envelope(client, create).RequestData, []byte("User:broker")
	rawResp, err := raw.RequestWith(ctx, newClient(t, tb.Addr()))
	require.NoError(t, err)
	require.Equal(t, kerr.ClusterAuthorizationFailed.Code, rawResp.ErrorCode)
}

// TestAuthorizerFollowsACLChanges authorizes from several goroutines while ACLs
// change (run with -race), and checks a decision right after CreateAcls or DeleteAcls
// returns already sees the change.
func TestAuthorizerFollowsACLChanges(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer(""))
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := &conn{b: tb.Broker, ctx: ctx, remote: "127.0.0.1:1"}
			for {
				select {
				case <-stop:
					return
				default:
					cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, "t-7")
				}
			}
		}()
	}
	cc := &conn{b: tb.Broker, ctx: ctx, remote: "127.0.0.1:1"}
	for i := range 10 {
		name := "t-" + strconv.Itoa(i)
		require.False(t, cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, name))
		grant(t, tb, anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, name, kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow))
		require.True(t, cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, name), "right after CreateAcls")
	}
	name := "t-3"
	_, err := tb.quorum.DeleteACLs(ctx, []acl.Filter{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: &name,
		PatternType: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}})
	require.NoError(t, err)
	require.False(t, cc.authorized(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, name), "right after DeleteAcls")
	close(stop)
	wg.Wait()
}

// TestAuthorizationAutoCreate checks Metadata auto-creates a topic only for a
// principal with CREATE on the cluster or the topic.
func TestAuthorizationAutoCreate(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer(""))
	grant(t, tb,
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, "auto-", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, "auto-ok", kmsg.ACLOperationCreate, kmsg.ACLPermissionTypeAllow),
	)
	cl := newClient(t, tb.Addr(), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(1))
	require.ErrorIs(t, produceErr(t, cl, "auto-denied"), kerr.TopicAuthorizationFailed, "WRITE but no CREATE")
	require.Nil(t, tb.quorum.Image().Topic("auto-denied"), "nothing was created")
	require.NoError(t, produceErr(t, cl, "auto-ok-1"))
	require.NotNil(t, tb.quorum.Image().Topic("auto-ok-1"))
}

// TestEnvelopeRefusesBrokerAPIs checks an Envelope cannot carry what must come from
// a broker itself or belongs to the connection: a registration inside one would slip
// past the check that binds a broker principal to its node id.
func TestEnvelopeRefusesBrokerAPIs(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:broker"))
	ctx := context.Background()
	client := &conn{b: tb.Broker, ctx: ctx, principal: "User:broker", remote: "127.0.0.1:5000"}
	reg := kmsg.NewPtrBrokerRegistrationRequest()
	reg.BrokerID, reg.ClusterID = 99, tb.cfg.ClusterID
	l := kmsg.NewBrokerRegistrationRequestListener()
	l.Name, l.Host, l.Port = "PLAINTEXT", "127.0.0.1", 1
	reg.Listeners = append(reg.Listeners, l)
	for _, req := range []kmsg.Request{reg, kmsg.NewPtrProduceRequest(), kmsg.NewPtrApiVersionsRequest(), kmsg.NewPtrEnvelopeRequest()} {
		req.SetVersion(apis[req.Key()].max)
		resp, err := tb.handleEnvelope(client, envelope(client, req))
		require.NoError(t, err)
		require.Equal(t, kerr.InvalidRequest.Code, resp.(*kmsg.EnvelopeResponse).ErrorCode, kmsg.NameForKey(req.Key()))
	}
	_, registered := tb.quorum.Image().Brokers[99]
	require.False(t, registered)
}

// TestDeleteACLsFilterLimit checks a DeleteAcls request with more filters than the
// limit is refused whole and deletes nothing.
func TestDeleteACLsFilterLimit(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer("User:ANONYMOUS"))
	grant(t, tb, anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "t", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow))
	req := kmsg.NewPtrDeleteACLsRequest()
	for range maxACLFilters + 1 {
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
		f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		req.Filters = append(req.Filters, f)
	}
	resp, err := req.RequestWith(context.Background(), newClient(t, tb.Addr()))
	require.NoError(t, err)
	require.Len(t, resp.Results, maxACLFilters+1)
	require.Equal(t, kerr.InvalidRequest.Code, resp.Results[0].ErrorCode)
	require.Equal(t, 1, tb.quorum.Image().ACLs.Len())
}

// TestAuthorizationOffsets checks OffsetCommit and OffsetFetch authorize the group
// and each topic: a topic the principal may not read is refused per partition on
// commit and left out of a fetch of all the group's offsets. (The commit is a raw
// request: kadm's CommitOffsets looks the topics up in Metadata first and fails them
// all when one is not describable.)
func TestAuthorizationOffsets(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), withAuthorizer(""))
	createTopics(t, tb, "a", "b")
	grant(t, tb,
		anon(kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeLiteral, "g", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
		anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "a", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow),
	)
	ctx := context.Background()
	cl := newClient(t, tb.Addr())
	commit := func(group string) *kmsg.OffsetCommitResponse {
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group = group
		for _, n := range []string{"a", "b"} {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = n
			rt.Partitions = append(rt.Partitions, kmsg.NewOffsetCommitRequestTopicPartition())
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl.Broker(int(tb.cfg.NodeID)))
		require.NoError(t, err)
		require.Len(t, resp.Topics, 2)
		return resp
	}
	codes := func(resp *kmsg.OffsetCommitResponse) map[string]int16 {
		out := map[string]int16{}
		for _, rt := range resp.Topics {
			out[rt.Topic] = rt.Partitions[0].ErrorCode
		}
		return out
	}
	require.Equal(t, map[string]int16{"a": 0, "b": kerr.TopicAuthorizationFailed.Code}, codes(commit("g")))
	require.Equal(t, map[string]int16{"a": kerr.GroupAuthorizationFailed.Code, "b": kerr.GroupAuthorizationFailed.Code}, codes(commit("other")))

	// With READ on b for a moment, b's offset is committed; once that ACL is gone, a
	// fetch of all the group's offsets leaves b out.
	readB := anon(kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, "b", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow)
	grant(t, tb, readB)
	require.Equal(t, map[string]int16{"a": 0, "b": 0}, codes(commit("g")))
	name := "b"
	_, err := tb.quorum.DeleteACLs(ctx, []acl.Filter{{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: &name,
		PatternType: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}})
	require.NoError(t, err)
	fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
	require.NoError(t, err)
	require.Contains(t, fetched, "a")
	require.NotContains(t, fetched, "b")
}
