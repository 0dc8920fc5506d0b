package snapshot

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCauseOf(t *testing.T) {
	urp := make([]PartitionState, 57)
	state := &Snapshot{
		Cluster: &Cluster{ID: "cid", ControllerID: 1, Brokers: []BrokerInfo{
			{ID: 1, Host: "127.0.0.1", Port: 9092, Reachable: true},
			{ID: 2, Host: "127.0.0.1", Port: 9093, Reachable: false, Fenced: true},
			{ID: 3, Host: "127.0.0.1", Port: 9094, Reachable: true},
		}},
		UnderReplicated: urp, Offline: make([]PartitionState, 2),
	}
	healthy := &Snapshot{Cluster: &Cluster{ID: "cid", ControllerID: 1, Brokers: []BrokerInfo{{ID: 1, Host: "h", Port: 1, Reachable: true}}}}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		state  *Snapshot
		key    string
		title  string
	}{
		{"broker down by its labels", map[string]string{"alertname": "SluiceBrokerDown", "broker": "2", "kafka_address": "127.0.0.1:9093"}, state,
			"cid/broker/2", "Broker 2 (127.0.0.1:9093) down: 57 partitions under-replicated, 2 offline"},
		{"broker down without cluster state", map[string]string{"alertname": "SluiceBrokerDown", "broker": "2", "kafka_address": "127.0.0.1:9093"}, nil,
			"/broker/2", "Broker 2 (127.0.0.1:9093) down"},
		{"an under-replication alarm of another leader", map[string]string{"alertname": "SluiceUnderReplicatedPartitions", "broker": "1"}, state,
			"cid/broker/2", "Broker 2 (127.0.0.1:9093) down: 57 partitions under-replicated, 2 offline"},
		{"fenced but reachable", map[string]string{"alertname": "SluiceOfflinePartitions"},
			&Snapshot{Cluster: &Cluster{ID: "cid", ControllerID: 1, Brokers: []BrokerInfo{{ID: 3, Host: "h", Port: 9, Reachable: true, Fenced: true}}},
				UnderReplicated: make([]PartitionState, 1)},
			"cid/broker/3", "Broker 3 (h:9) fenced by the controller: 1 partition under-replicated"},
		{"disk", map[string]string{"alertname": "SluiceDiskUsageHigh", "broker": "1", "kafka_address": "a:1", "dir": "/d"}, state,
			"cid/disk/1//d", "Log dir /d on broker 1 (a:1) is filling up"},
		{"controller", map[string]string{"alertname": "SluiceActiveControllerCount"}, healthy,
			"cid/controller", "Controller problem: the active controller count is not 1 (broker 1 reports itself controller)"},
		{"consumer lag keeps its grouping", map[string]string{"alertname": "SluiceConsumerGroupStatus"}, state, "", ""},
		{"no fault found", map[string]string{"alertname": "SluiceOfflinePartitions"}, healthy, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := CauseOf(tc.labels, tc.state)
			if tc.key == "" {
				require.Nil(t, c)
				return
			}
			require.NotNil(t, c)
			require.Equal(t, tc.key, c.Key)
			require.Equal(t, tc.title, c.Title)
		})
	}
}
