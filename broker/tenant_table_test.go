package broker

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/metadata"
)

// TestTenantTableSplitsThePlan builds the tenant table of an image: each broker holds a tenant to
// its plan's bandwidth divided by the live brokers leading the tenant's partitions, resources map
// to tenants by prefix, and a deleted tenant's series go.
func TestTenantTableSplitsThePlan(t *testing.T) {
	cfg := DefaultConfig()
	tm := newTenantManager(&Broker{cfg: cfg}, prometheus.NewRegistry())
	part := func(leader int32) metadata.Partition {
		return metadata.Partition{Leader: leader, Replicas: []int32{1, 2, 3}}
	}
	img := &metadata.Image{Index: 7,
		Brokers: map[int32]metadata.Broker{1: {ID: 1}, 2: {ID: 2}, 3: {ID: 3, Fenced: true}},
		Topics: map[string]*metadata.Topic{
			"pay.a":  {Name: "pay.a", Partitions: []metadata.Partition{part(1), part(2), part(2)}},
			"pay.b":  {Name: "pay.b", Partitions: []metadata.Partition{part(3)}}, // its leader is fenced
			"shop.a": {Name: "shop.a", Partitions: []metadata.Partition{part(2)}},
			"other":  {Name: "other", Partitions: []metadata.Partition{part(1)}},
		},
		Plans: map[string]adminapi.Plan{"p": {Name: "p", ProduceBytesPerSecond: 1000, FetchBytesPerSecond: 3000, DiskBytes: 1}},
		Tenants: map[string]metadata.TenantState{
			"pay":  {Tenant: adminapi.Tenant{Name: "pay", Plan: "p", Principals: []string{"User:alice"}, Prefixes: []string{"pay."}}},
			"shop": {Tenant: adminapi.Tenant{Name: "shop", Plan: "p", Principals: []string{"User:bob"}, Prefixes: []string{"shop."}}},
		},
	}
	tm.mu.Lock()
	tt := tm.build(img)
	tm.mu.Unlock()
	require.True(t, tt.anyDisk)
	pay, shop := tt.byName["pay"], tt.byName["shop"]
	require.Same(t, pay, tt.byPrincipal["User:alice"])
	require.Same(t, pay, tt.ofResource("pay.anything"))
	require.Same(t, shop, tt.byTopic["shop.a"])
	require.Nil(t, tt.ofResource("pay"), "the prefix itself is not under it without its dot")
	require.Nil(t, tt.byTopic["other"])
	require.Equal(t, 500.0, pay.meter.produce.limit, "two live brokers lead pay's partitions")
	require.Equal(t, 1500.0, pay.meter.fetch.limit)
	require.Equal(t, 1000.0, shop.meter.produce.limit, "one broker leads shop's")

	// shop goes: its meter and series are dropped; pay keeps its meter across rebuilds.
	img2 := *img
	img2.Index = 8
	img2.Tenants = map[string]metadata.TenantState{"pay": img.Tenants["pay"]}
	tm.meterOf("shop").bytesIn.Add(5)
	tm.mu.Lock()
	tt2 := tm.build(&img2)
	tm.mu.Unlock()
	require.Same(t, pay.meter, tt2.byName["pay"].meter)
	require.Nil(t, tt2.byName["shop"])
	require.Zero(t, testCounterSeries(t, tm.bytesIn, "shop"))
	require.Equal(t, 1, testCounterSeries(t, tm.bytesIn, "pay"))
}

// testCounterSeries counts the series of v labelled tenant.
func testCounterSeries(t *testing.T, v *prometheus.CounterVec, tenant string) int {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	v.Collect(ch)
	close(ch)
	n := 0
	for m := range ch {
		var d dto.Metric
		require.NoError(t, m.Write(&d))
		for _, l := range d.GetLabel() {
			if l.GetName() == "tenant" && l.GetValue() == tenant {
				n++
			}
		}
	}
	return n
}
