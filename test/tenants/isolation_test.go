package tenants

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// isolation checks that cl, a tenant's client, can do nothing in another tenant's namespace:
// topic, group and transactional id each get their authorization error from every API that names
// them, and Metadata does not even list the topic.
func isolation(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, topicID [16]byte, group, txnID string) {
	t.Helper()
	br := cl.Broker(1)
	denied := func(api string, code int16, err error, want *kerr.Error) {
		t.Helper()
		if err != nil {
			require.True(t, errors.Is(err, want), "%s: %v, want %s", api, err, want)
			return
		}
		require.Equal(t, want.Code, code, "%s: got %v, want %s", api, kerr.ErrorForCode(code), want)
	}

	md := kmsg.NewPtrMetadataRequest() // all topics
	mdResp, err := md.RequestWith(ctx, br)
	require.NoError(t, err)
	for _, mt := range mdResp.Topics {
		require.NotEqual(t, topic, *mt.Topic, "Metadata lists nothing of the other tenant")
	}
	md = kmsg.NewPtrMetadataRequest()
	mrt := kmsg.NewMetadataRequestTopic()
	mrt.Topic = kmsg.StringPtr(topic)
	md.Topics = append(md.Topics, mrt)
	md.AllowAutoTopicCreation = true
	mdResp, err = md.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("Metadata", mdResp.Topics[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	prod := kmsg.NewPtrProduceRequest()
	prod.Acks, prod.TimeoutMillis = -1, 10000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic, pt.TopicID = topic, topicID // by name or by ID, whichever version the client picks
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = []byte{0} // never read: authorization comes first
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	prodResp, err := prod.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("Produce", prodResp.Topics[0].Partitions[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.MaxBytes = -1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, topicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fetchResp, err := fetch.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("Fetch", fetchResp.Topics[0].Partitions[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	loResp, err := lo.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("ListOffsets", loResp.Topics[0].Partitions[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{group}
	fcResp, err := fc.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("FindCoordinator", fcResp.Coordinators[0].ErrorCode, nil, kerr.GroupAuthorizationFailed)

	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group, oc.Generation = group, -1
	oct := kmsg.NewOffsetCommitRequestTopic()
	oct.Topic = topic
	ocp := kmsg.NewOffsetCommitRequestTopicPartition()
	ocp.Offset = 0
	oct.Partitions = append(oct.Partitions, ocp)
	oc.Topics = append(oc.Topics, oct)
	ocResp, err := oc.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("OffsetCommit", ocResp.Topics[0].Partitions[0].ErrorCode, nil, kerr.GroupAuthorizationFailed)

	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = group // before v8
	ofg := kmsg.NewOffsetFetchRequestGroup()
	ofg.Group = group // v8+
	of.Groups = append(of.Groups, ofg)
	ofResp, err := of.RequestWith(ctx, br)
	require.NoError(t, err)
	code := ofResp.ErrorCode
	if len(ofResp.Groups) > 0 {
		code = ofResp.Groups[0].ErrorCode
	}
	denied("OffsetFetch", code, nil, kerr.GroupAuthorizationFailed)

	jg := kmsg.NewPtrJoinGroupRequest()
	jg.Group, jg.SessionTimeoutMillis, jg.RebalanceTimeoutMillis, jg.ProtocolType = group, 10000, 10000, "consumer"
	jp := kmsg.NewJoinGroupRequestProtocol()
	jp.Name = "range"
	jg.Protocols = append(jg.Protocols, jp)
	jgResp, err := jg.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("JoinGroup", jgResp.ErrorCode, nil, kerr.GroupAuthorizationFailed)

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{group}
	dgResp, err := dg.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("DescribeGroups", dgResp.Groups[0].ErrorCode, nil, kerr.GroupAuthorizationFailed)

	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = topic+".new", 1, 1
	ct.Topics = append(ct.Topics, ctt)
	ctResp, err := ct.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("CreateTopics", ctResp.Topics[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	dt := kmsg.NewPtrDeleteTopicsRequest()
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	dtt.Topic = kmsg.StringPtr(topic)
	dt.Topics = append(dt.Topics, dtt)
	dt.TopicNames = []string{topic}
	dtResp, err := dt.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("DeleteTopics", dtResp.Topics[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	dc := kmsg.NewPtrDescribeConfigsRequest()
	dcr := kmsg.NewDescribeConfigsRequestResource()
	dcr.ResourceType, dcr.ResourceName = kmsg.ConfigResourceTypeTopic, topic
	dc.Resources = append(dc.Resources, dcr)
	dcResp, err := dc.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("DescribeConfigs", dcResp.Resources[0].ErrorCode, nil, kerr.TopicAuthorizationFailed)

	ip := kmsg.NewPtrInitProducerIDRequest()
	ip.TransactionalID = kmsg.StringPtr(txnID)
	ip.TransactionTimeoutMillis = 10000
	ipResp, err := ip.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("InitProducerId", ipResp.ErrorCode, nil, kerr.TransactionalIDAuthorizationFailed)

	// A tenant cannot grant itself access either.
	ca := kmsg.NewPtrCreateACLsRequest()
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, topic, kmsg.ACLResourcePatternTypeLiteral
	c.Principal, c.Host, c.Operation, c.PermissionType = "User:*", "*", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow
	ca.Creations = append(ca.Creations, c)
	caResp, err := ca.RequestWith(ctx, br)
	require.NoError(t, err)
	denied("CreateAcls", caResp.Results[0].ErrorCode, nil, kerr.ClusterAuthorizationFailed)
}
