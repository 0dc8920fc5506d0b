package metadata

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/acl"
)

// TestACLs creates and deletes ACLs through the controller, and checks they survive a snapshot and a
// restart: the ACLs live in the metadata log, like Kafka's AccessControlEntryRecords.
func TestACLs(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0, func(cfg *Config) { cfg.SessionTimeout = 10 * time.Second })
	q := c.waitController(10 * time.Second)
	read := acl.Binding{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: "orders", PatternType: kmsg.ACLResourcePatternTypeLiteral,
		Principal: "User:alice", Host: "*", Operation: kmsg.ACLOperationRead, Permission: kmsg.ACLPermissionTypeAllow}
	write := read
	write.Operation, write.PatternType, write.ResourceName = kmsg.ACLOperationWrite, kmsg.ACLResourcePatternTypePrefixed, "ord"
	bad := read
	bad.Principal = "alice"

	errs, err := q.CreateACLs(ctx, []acl.Binding{read, bad, write, read})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], kerr.InvalidRequest)
	require.NoError(t, errs[2])
	require.NoError(t, errs[3])
	require.ElementsMatch(t, []acl.Binding{read, write}, q.Image().ACLs.Bindings(), "a duplicate is stored once")
	setBefore := q.Image().ACLs
	errs, err = q.CreateACLs(ctx, []acl.Binding{read})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.Same(t, setBefore, q.Image().ACLs, "creating an existing acl changes nothing")

	require.NoError(t, q.raft.Snapshot().Error())

	name := "orders"
	writes := acl.Filter{ResourceType: kmsg.ACLResourceTypeAny, ResourceName: &name, PatternType: kmsg.ACLResourcePatternTypeMatch,
		Operation: kmsg.ACLOperationWrite, Permission: kmsg.ACLPermissionTypeAny}
	none := writes
	none.Operation = kmsg.ACLOperationAlter
	deleted, err := q.DeleteACLs(ctx, []acl.Filter{writes, none})
	require.NoError(t, err)
	require.Equal(t, [][]acl.Binding{{write}, nil}, deleted)
	require.Equal(t, []acl.Binding{read}, q.Image().ACLs.Bindings())

	before := q.Image()
	nd := c.start(c.stop(1))
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, nd.q.WaitApplied(ctx2, before.Index))
	require.Equal(t, before.ACLs.Bindings(), nd.q.Image().ACLs.Bindings())
}
