package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/chaos"
)

// TestAdminRequestsForwardedToController sends CreateTopics, CreateAcls and DeleteAcls
// to every broker of a 3-broker cluster with the authorizer on: the two that are not
// the controller forward them in an Envelope, and each answers only once its own
// metadata shows the change.
func TestAdminRequestsForwardedToController(t *testing.T) {
	require.NoError(t, binErr)
	ctx := testCtx(t, 2*time.Minute)
	// The brokers reach each other unauthenticated on loopback, so User:ANONYMOUS
	// must be a super user for them to have CLUSTER_ACTION.
	cl, err := chaos.StartCluster(ctx, chaos.ClusterConfig{Bin: binPath, Dir: t.TempDir(), Brokers: 3,
		BrokerConfig: "authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer\nsuper.users: User:ANONYMOUS\n"})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker logs:\n%s", cl.Logs(80))
		}
		cl.Close()
	})
	kcl := newClient(t, cl)
	for _, id := range []int32{1, 2, 3} {
		br := kcl.Broker(int(id))
		name := "fwd-" + string(rune('0'+id))

		ct := kmsg.NewPtrCreateTopicsRequest()
		ct.TimeoutMillis = 20000
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 3
		ct.Topics = append(ct.Topics, rt)
		ctResp, err := ct.RequestWith(ctx, br)
		require.NoError(t, err)
		require.Zero(t, ctResp.Topics[0].ErrorCode, "CreateTopics through broker %d", id)

		ca := kmsg.NewPtrCreateACLsRequest()
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceTypeTopic, name, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:alice", "*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
		ca.Creations = append(ca.Creations, c)
		caResp, err := ca.RequestWith(ctx, br)
		require.NoError(t, err)
		require.Zero(t, caResp.Results[0].ErrorCode, "CreateAcls through broker %d", id)

		da := kmsg.NewPtrDescribeACLsRequest()
		da.ResourceType, da.ResourceName, da.ResourcePatternType = kmsg.ACLResourceTypeTopic, &name, kmsg.ACLResourcePatternTypeLiteral
		da.Operation, da.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		daResp, err := da.RequestWith(ctx, br)
		require.NoError(t, err)
		require.Zero(t, daResp.ErrorCode)
		require.Len(t, daResp.Resources, 1, "broker %d answers CreateAcls only once it holds the ACL", id)

		del := kmsg.NewPtrDeleteACLsRequest()
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourceName, f.ResourcePatternType = kmsg.ACLResourceTypeTopic, &name, kmsg.ACLResourcePatternTypeLiteral
		f.Operation, f.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
		del.Filters = append(del.Filters, f)
		delResp, err := del.RequestWith(ctx, br)
		require.NoError(t, err)
		require.Zero(t, delResp.Results[0].ErrorCode)
		require.Len(t, delResp.Results[0].MatchingACLs, 1, "DeleteAcls through broker %d", id)
		daResp, err = da.RequestWith(ctx, br)
		require.NoError(t, err)
		require.Empty(t, daResp.Resources)
	}
}
