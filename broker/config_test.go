package broker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig("testdata/config/valid-full.yaml")
	require.NoError(t, err)
	require.Equal(t, int32(3), c.NodeID)
	require.Equal(t, "always", c.Flush)
	require.Equal(t, int32(6), c.NumPartitions)
	require.False(t, *c.AutoCreateTopics)
	require.Equal(t, int64(0), *c.GroupInitialRebalanceDelayMs)
	require.Equal(t, int32(50), c.OffsetsTopicNumPartitions, "defaults fill what the file leaves out")

	c, err = LoadConfig("testdata/config/valid-limits.yaml")
	require.NoError(t, err)
	require.Equal(t, int64(16<<20), c.QueuedMaxRequestBytes)
	require.Equal(t, 50, c.MaxConnectionsPerIP)
	require.Equal(t, "10.0.0.1:200, 127.0.0.1:0", c.MaxConnectionsPerIPOverrides)
	require.Equal(t, int32(64), c.MaxPartitionsPerTopic)
	require.Equal(t, 5, c.Quotas.QuotaWindowNum)
	overrides, err := parseIPOverrides(c.MaxConnectionsPerIPOverrides)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"10.0.0.1": 200, "127.0.0.1": 0}, overrides)

	c, err = LoadConfig("testdata/config/valid-authorizer.yaml")
	require.NoError(t, err)
	require.Equal(t, StandardAuthorizer, c.AuthorizerClassName)
	require.Equal(t, []string{"User:admin", "User:broker-1"}, c.superUsers())

	c, err = LoadConfig("testdata/config/valid-security.yaml")
	require.NoError(t, err)
	specs, err := c.listenerSpecs()
	require.NoError(t, err)
	require.Len(t, specs, 2)
	require.Equal(t, "required", specs[1].clientAuth)
	require.True(t, specs[1].interBroker)
	require.True(t, c.raftTLS())
	require.Equal(t, []string{"User:gateway"}, c.gatewayPrincipals())

	c, err = LoadConfig("testdata/config/valid-tenants.yaml")
	require.NoError(t, err)
	require.False(t, *c.Tenants.TenantMeteringEnable)
	require.Equal(t, int64(2000), c.Tenants.TenantDiskCheckIntervalMs)
	require.Equal(t, 50, c.Tenants.TenantMaxPrincipalTopicSeries)
	require.Equal(t, "ops,platform", c.Tenants.AdminWriteUsers)

	c, err = LoadConfig("testdata/config/valid-empty.yaml")
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), c)

	for _, tc := range []struct{ file, mentions string }{
		{"invalid-unknown-field.yaml", "log.retention.hourz"},
		{"invalid-flush.yaml", "flush"},
		{"invalid-listen.yaml", "listen"},
		{"invalid-type.yaml", "line 1"},
		{"invalid-cleanup.yaml", "log.cleanup.policy"},
		{"invalid-range.yaml", "group.max.session.timeout.ms"},
		{"invalid-heartbeat-interval.yaml", "broker.heartbeat.interval.ms"},
		{"invalid-authorizer.yaml", "authorizer.class.name"},
		{"invalid-super-users.yaml", "super.users"},
		{"invalid-plaintext-public.yaml", "listeners: PLAINTEXT listener PLAINTEXT on \"0.0.0.0:9092\" does not authenticate"},
		{"invalid-raft-plaintext-public.yaml", "controller.listener.names: the Raft transport"},
		{"missing.yaml", "no such file"},
		{"invalid-pool.yaml", "queued.max.request.bytes"},
		{"invalid-overrides.yaml", "max.connections.per.ip.overrides"},
		{"invalid-quota-window.yaml", "quota.window.num"},
		{"invalid-max-connections.yaml", "max.connections"},
		{"invalid-txn-timeout.yaml", "transaction.max.timeout.ms"},
		{"invalid-tenant-disk-check.yaml", "tenant.disk.check.interval.ms"},
		{"invalid-gateway-principals.yaml", "gateway.principals: User:ANONYMOUS"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := LoadConfig("testdata/config/" + tc.file)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.mentions)
		})
	}
}
