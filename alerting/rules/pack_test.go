package rules

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/require"
)

// packCases give, for every alert of the default pack, series under which its expression
// matches (bad) and under which it does not (good), evaluated at 70m through Prometheus' own
// engine. The `for` durations are Prometheus' business and are not re-tested here.
var packCases = map[string]struct{ bad, good string }{
	"SluiceBrokerDown": {
		bad:  `up{job="broker",instance="b1"} 0x100`,
		good: `up{job="broker",instance="b1"} 1x100`,
	},
	"SluiceActiveControllerCount": {
		bad:  "sluice_active_controller{instance=\"b1\"} 0x100\nsluice_active_controller{instance=\"b2\"} 0x100",
		good: "sluice_active_controller{instance=\"b1\"} 1x100\nsluice_active_controller{instance=\"b2\"} 0x100",
	},
	"SluiceOfflinePartitions": {
		bad:  `sluice_offline_partitions{instance="b1"} 3x100`,
		good: `sluice_offline_partitions{instance="b1"} 0x100`,
	},
	"SluiceUnderReplicatedPartitions": {
		bad:  `sluice_under_replicated_partitions{instance="b1"} 2x100`,
		good: `sluice_under_replicated_partitions{instance="b1"} 0x100`,
	},
	"SluiceUnderMinISRPartitions": {
		bad:  `sluice_under_min_isr_partitions{instance="b1"} 1x100`,
		good: `sluice_under_min_isr_partitions{instance="b1"} 0x100`,
	},
	"SluiceISRShrinkRate": {
		bad:  `sluice_isr_shrinks_total{instance="b1"} 0+2x100`,
		good: `sluice_isr_shrinks_total{instance="b1"} 0+0x100`,
	},
	"SluiceUncleanLeaderElection": {
		bad:  `sluice_leader_elections_total{instance="b1",type="unclean"} 0+0x60 1+1x40`,
		good: `sluice_leader_elections_total{instance="b1",type="unclean"} 0x100`,
	},
	"SluiceDiskUsageHigh": {
		bad:  "sluice_log_dir_used_bytes{instance=\"b1\",dir=\"/d\"} 85x100\nsluice_log_dir_total_bytes{instance=\"b1\",dir=\"/d\"} 100x100",
		good: "sluice_log_dir_used_bytes{instance=\"b1\",dir=\"/d\"} 50x100\nsluice_log_dir_total_bytes{instance=\"b1\",dir=\"/d\"} 100x100",
	},
	"SluiceDiskWillFillIn6Hours": {
		// 1 GB free, losing 10 MB a minute: empty in under 2 hours.
		bad:  `sluice_log_dir_free_bytes{instance="b1",dir="/d"} 2000000000-10000000x100`,
		good: `sluice_log_dir_free_bytes{instance="b1",dir="/d"} 2000000000-10000x100`,
	},
	"SluiceProduceLatencyHigh": {
		bad:  "sluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"0.5\"} 0+0x100\nsluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"1\"} 0+100x100\nsluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"+Inf\"} 0+100x100",
		good: "sluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"0.01\"} 0+100x100\nsluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"1\"} 0+100x100\nsluice_request_total_seconds_bucket{instance=\"b1\",api=\"Produce\",le=\"+Inf\"} 0+100x100",
	},
	"SluiceFetchLatencyHigh": {
		bad:  "sluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"0.25\"} 0+0x100\nsluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"1\"} 0+50x100\nsluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"+Inf\"} 0+50x100",
		good: "sluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"0.01\"} 0+50x100\nsluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"1\"} 0+50x100\nsluice_request_local_seconds_bucket{instance=\"b1\",api=\"Fetch\",le=\"+Inf\"} 0+50x100",
	},
	"SluiceRequestHandlerIdleLow": {
		bad:  `sluice_request_handler_idle_ratio{instance="b1"} 0.1x100`,
		good: `sluice_request_handler_idle_ratio{instance="b1"} 0.8x100`,
	},
	"SluiceConsumerGroupStatus": {
		bad:  "sluice_consumergroup_worst_status{consumergroup=\"g\",status=\"STOP\"} 1x100\nsluice_consumergroup_worst_status{consumergroup=\"g\",status=\"OK\"} 0x100",
		good: "sluice_consumergroup_worst_status{consumergroup=\"g\",status=\"STOP\"} 0x100\nsluice_consumergroup_worst_status{consumergroup=\"g\",status=\"OK\"} 1x100",
	},
	"SluiceConsumerGroupLagSeconds": {
		bad:  `sluice_consumergroup_lag_seconds{consumergroup="g",topic="t",partition="0"} 900x100`,
		good: `sluice_consumergroup_lag_seconds{consumergroup="g",topic="t",partition="0"} 3x100`,
	},
	"SluiceExporterCollectionStale": {
		bad:  `sluice_exporter_collection_age_seconds{instance="e"} 600x100`,
		good: `sluice_exporter_collection_age_seconds{instance="e"} 5x100`,
	},
	"SluiceExporterDown": {
		bad:  `up{job="exporter",instance="e"} 0x100`,
		good: `up{job="exporter",instance="e"} 1x100`,
	},
	"SluiceTransactionOpenTooLong": {
		bad:  `sluice_txn_oldest_age_seconds{instance="b1"} 1000x100`,
		good: `sluice_txn_oldest_age_seconds{instance="b1"} 30x100`,
	},
	"SluiceLastStableOffsetStuck": {
		// The LSO (current offset - LSO lag) stays at 95 while the lag is 5.
		bad: "kafka_topic_partition_current_offset{topic=\"t\",partition=\"0\"} 100x100\nkafka_topic_partition_lso_lag{topic=\"t\",partition=\"0\"} 5x100",
		// Transactions come and go: there is always some LSO lag, but the LSO moves.
		good: "kafka_topic_partition_current_offset{topic=\"t\",partition=\"0\"} 100+10x100\nkafka_topic_partition_lso_lag{topic=\"t\",partition=\"0\"} 5x100",
	},
}

// TestDefaultPack evaluates every alert expression of the default pack through the PromQL
// engine, and checks each alert has a runbook page and the annotations notifications show.
func TestDefaultPack(t *testing.T) {
	rgs, errs := rulefmt.ParseFile("sluice.yml", false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
	require.Empty(t, errs)
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 50_000_000)
	seen := map[string]bool{}
	for _, g := range rgs.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			t.Run(r.Alert, func(t *testing.T) {
				tc, ok := packCases[r.Alert]
				require.True(t, ok, "no test case for %s", r.Alert)
				for _, k := range []string{"summary", "description", "runbook_url", "value"} {
					require.NotEmpty(t, r.Annotations[k], "annotation %s", k)
				}
				require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"])
				_, err := os.Stat(filepath.Join("..", "..", "docs", "runbooks", r.Alert+".md"))
				require.NoError(t, err, "runbook page")
				for _, c := range []struct {
					name, series string
					fires        bool
				}{{"bad", tc.bad, true}, {"good", tc.good, false}} {
					st := promqltest.LoadedStorage(t, "load 1m\n  "+indent(c.series))
					q, err := engine.NewInstantQuery(context.Background(), st, nil, r.Expr, time.Unix(0, 0).Add(70*time.Minute))
					require.NoError(t, err)
					res := q.Exec(context.Background())
					require.NoError(t, res.Err)
					v, err := res.Vector()
					require.NoError(t, err)
					require.Equal(t, c.fires, len(v) > 0, "%s series: %v", c.name, v)
					q.Close()
				}
			})
		}
	}
	for name := range packCases {
		require.True(t, seen[name], "test case for a rule that does not exist: %s", name)
	}
}

func indent(s string) string {
	out := ""
	for i, l := range splitLines(s) {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
