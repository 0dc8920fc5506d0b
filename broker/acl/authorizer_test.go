package acl

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	topic   = kmsg.ACLResourceTypeTopic
	group   = kmsg.ACLResourceTypeGroup
	cluster = kmsg.ACLResourceTypeCluster
	literal = kmsg.ACLResourcePatternTypeLiteral
	prefix  = kmsg.ACLResourcePatternTypePrefixed
	allow   = kmsg.ACLPermissionTypeAllow
	deny    = kmsg.ACLPermissionTypeDeny
)

func bind(rt kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name, principal, host string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) Binding {
	return Binding{ResourceType: rt, PatternType: pt, ResourceName: name, Principal: principal, Host: host, Operation: op, Permission: perm}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	bindings := []Binding{
		bind(topic, prefix, "team-a.", "User:alice", "*", kmsg.ACLOperationWrite, allow),
		bind(topic, literal, "team-a.secret", "User:alice", "*", kmsg.ACLOperationAll, deny),
		bind(topic, literal, "shared", "User:*", "*", kmsg.ACLOperationRead, allow),
		bind(topic, literal, "shared", "User:mallory", "*", kmsg.ACLOperationRead, deny),
		bind(topic, literal, "from-host", "User:bob", "10.0.0.1", kmsg.ACLOperationRead, allow),
		bind(topic, literal, "*", "User:carol", "*", kmsg.ACLOperationDescribe, allow),
		bind(topic, literal, "cfg", "User:dave", "*", kmsg.ACLOperationAlterConfigs, allow),
		bind(topic, literal, "noread", "User:erin", "*", kmsg.ACLOperationRead, deny),
		bind(group, prefix, "g-", "User:alice", "*", kmsg.ACLOperationRead, allow),
		bind(cluster, literal, ClusterName, "User:alice", "*", kmsg.ACLOperationIdempotentWrite, allow),
	}
	a := New(Config{SuperUsers: []string{"User:admin"}}, bindings)
	for _, tc := range []struct {
		name      string
		principal string
		host      string
		op        kmsg.ACLOperation
		rt        kmsg.ACLResourceType
		resource  string
		want      bool
	}{
		{"prefix grants its prefix", "User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "team-a.orders", true},
		{"prefix grants the bare prefix", "User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "team-a.", true},
		{"prefix does not grant outside", "User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "team-b.orders", false},
		{"prefix does not grant a shorter name", "User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "team-a", false},
		{"prefix grants only its operation", "User:alice", "1.2.3.4", kmsg.ACLOperationRead, topic, "team-a.orders", false},
		{"write implies describe", "User:alice", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "team-a.orders", true},
		{"deny wins over allow", "User:alice", "1.2.3.4", kmsg.ACLOperationWrite, topic, "team-a.secret", false},
		{"deny all denies describe", "User:alice", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "team-a.secret", false},
		{"wildcard principal", "User:bob", "1.2.3.4", kmsg.ACLOperationRead, topic, "shared", true},
		{"deny for one user beats wildcard allow", "User:mallory", "1.2.3.4", kmsg.ACLOperationRead, topic, "shared", false},
		{"host matches", "User:bob", "10.0.0.1", kmsg.ACLOperationRead, topic, "from-host", true},
		{"other host", "User:bob", "10.0.0.2", kmsg.ACLOperationRead, topic, "from-host", false},
		{"wildcard resource", "User:carol", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "anything", true},
		{"wildcard resource only its op", "User:carol", "1.2.3.4", kmsg.ACLOperationRead, topic, "anything", false},
		{"alter configs implies describe configs", "User:dave", "1.2.3.4", kmsg.ACLOperationDescribeConfigs, topic, "cfg", true},
		{"alter configs does not imply describe", "User:dave", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "cfg", false},
		{"deny read does not deny describe", "User:erin", "1.2.3.4", kmsg.ACLOperationDescribe, topic, "noread", false},
		{"no acls: denied by default", "User:alice", "1.2.3.4", kmsg.ACLOperationRead, kmsg.ACLResourceTypeTransactionalId, "tx", false},
		{"group prefix", "User:alice", "1.2.3.4", kmsg.ACLOperationRead, group, "g-1", true},
		{"cluster op", "User:alice", "1.2.3.4", kmsg.ACLOperationIdempotentWrite, cluster, ClusterName, true},
		{"cluster other op", "User:alice", "1.2.3.4", kmsg.ACLOperationAlter, cluster, ClusterName, false},
		{"super user passes", "User:admin", "1.2.3.4", kmsg.ACLOperationDelete, topic, "team-a.secret", true},
		{"anonymous denied", AnonymousPrincipal, "1.2.3.4", kmsg.ACLOperationRead, topic, "team-a.orders", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, a.Authorize(tc.principal, tc.host, tc.op, tc.rt, tc.resource))
		})
	}
}

func TestAllowIfNoACL(t *testing.T) {
	t.Parallel()
	a := New(Config{AllowIfNoACL: true}, []Binding{
		bind(topic, literal, "guarded", "User:alice", "*", kmsg.ACLOperationRead, allow),
	})
	require.True(t, a.Authorize("User:bob", "h", kmsg.ACLOperationRead, topic, "open"), "no acl names the topic")
	require.False(t, a.Authorize("User:bob", "h", kmsg.ACLOperationRead, topic, "guarded"), "an acl names the topic")
	require.True(t, a.Authorize("User:bob", "h", kmsg.ACLOperationRead, group, "g"), "no acl for groups at all")
	require.False(t, New(Config{}, nil).Authorize("User:bob", "h", kmsg.ACLOperationRead, topic, "open"))
}

func TestAuthorizeAny(t *testing.T) {
	t.Parallel()
	a := New(Config{}, []Binding{
		bind(topic, prefix, "a-", "User:alice", "*", kmsg.ACLOperationWrite, allow),
		bind(topic, literal, "b", "User:bob", "*", kmsg.ACLOperationWrite, allow),
		bind(topic, prefix, "b", "User:bob", "*", kmsg.ACLOperationWrite, deny),
		bind(topic, literal, "c", "User:carol", "*", kmsg.ACLOperationWrite, allow),
		bind(topic, literal, "*", "User:carol", "*", kmsg.ACLOperationWrite, deny),
	})
	require.True(t, a.AuthorizeAny("User:alice", "h", kmsg.ACLOperationWrite, topic))
	require.False(t, a.AuthorizeAny("User:alice", "h", kmsg.ACLOperationRead, topic))
	require.False(t, a.AuthorizeAny("User:bob", "h", kmsg.ACLOperationWrite, topic), "deny prefix covers the allow")
	require.False(t, a.AuthorizeAny("User:carol", "h", kmsg.ACLOperationWrite, topic), "wildcard deny")
	require.False(t, a.AuthorizeAny("User:dave", "h", kmsg.ACLOperationWrite, topic))
}

func TestAuthorizedOperations(t *testing.T) {
	t.Parallel()
	a := New(Config{}, []Binding{
		bind(topic, literal, "t", "User:alice", "*", kmsg.ACLOperationRead, allow),
	})
	got := a.AuthorizedOperations("User:alice", "h", topic, "t")
	require.Equal(t, int32(1<<kmsg.ACLOperationRead|1<<kmsg.ACLOperationDescribe), got)
}

func TestFilterMatches(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	lit := bind(topic, literal, "orders", "User:alice", "*", kmsg.ACLOperationRead, allow)
	wild := bind(topic, literal, "*", "User:alice", "*", kmsg.ACLOperationRead, allow)
	pre := bind(topic, prefix, "ord", "User:alice", "*", kmsg.ACLOperationRead, allow)
	other := bind(topic, prefix, "pay", "User:alice", "*", kmsg.ACLOperationRead, allow)
	any := Filter{ResourceType: kmsg.ACLResourceTypeAny, PatternType: kmsg.ACLResourcePatternTypeAny,
		Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}
	for _, b := range []Binding{lit, wild, pre, other} {
		require.True(t, any.Matches(b))
	}
	match := any
	match.PatternType, match.ResourceName = kmsg.ACLResourcePatternTypeMatch, str("orders")
	require.True(t, match.Matches(lit))
	require.True(t, match.Matches(wild))
	require.True(t, match.Matches(pre))
	require.False(t, match.Matches(other))
	exact := any
	exact.PatternType, exact.ResourceName = kmsg.ACLResourcePatternTypeLiteral, str("orders")
	require.True(t, exact.Matches(lit))
	require.False(t, exact.Matches(wild))
	require.False(t, exact.Matches(pre))
	byName := any
	byName.ResourceName = str("ord")
	require.True(t, byName.Matches(pre), "ANY pattern type matches names exactly")
	require.False(t, byName.Matches(lit))
	denyOnly := any
	denyOnly.Permission = kmsg.ACLPermissionTypeDeny
	require.False(t, denyOnly.Matches(lit))
	principal := any
	principal.Principal = str("User:bob")
	require.False(t, principal.Matches(lit))
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := bind(topic, literal, "t", "User:alice", "*", kmsg.ACLOperationRead, allow)
	require.NoError(t, good.Validate())
	for name, mut := range map[string]func(*Binding){
		"any resource type":   func(b *Binding) { b.ResourceType = kmsg.ACLResourceTypeAny },
		"match pattern":       func(b *Binding) { b.PatternType = kmsg.ACLResourcePatternTypeMatch },
		"any operation":       func(b *Binding) { b.Operation = kmsg.ACLOperationAny },
		"any permission":      func(b *Binding) { b.Permission = kmsg.ACLPermissionTypeAny },
		"empty name":          func(b *Binding) { b.ResourceName = "" },
		"cluster name":        func(b *Binding) { b.ResourceType = cluster },
		"principal without :": func(b *Binding) { b.Principal = "alice" },
		"empty host":          func(b *Binding) { b.Host = "" },
	} {
		b := good
		mut(&b)
		require.ErrorIs(t, b.Validate(), ErrInvalid, name)
	}
}

// BenchmarkAuthorize is one decision among 1,000 ACLs of other users, granted by a
// PREFIXED ACL: the per-topic cost a produce request pays.
func BenchmarkAuthorize(b *testing.B) {
	var bindings []Binding
	for i := range 1000 {
		bindings = append(bindings, bind(topic, literal, "other."+string(rune('a'+i%26))+string(rune('a'+i/26%26)), "User:u", "*", kmsg.ACLOperationWrite, allow))
	}
	bindings = append(bindings, bind(topic, prefix, "bench.", "User:alice", "*", kmsg.ACLOperationWrite, allow))
	a := New(Config{}, bindings)
	b.ReportAllocs()
	for b.Loop() {
		if !a.Authorize("User:alice", "127.0.0.1", kmsg.ACLOperationWrite, topic, "bench.orders") {
			b.Fatal("denied")
		}
	}
}
