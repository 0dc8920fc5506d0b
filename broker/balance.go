package broker

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// BalanceConfig holds the rack of this broker and the controller's automatic
// balancing settings (metadata/autobalance.go, metadata/balance.go). The
// auto.balance settings act on the broker that is the active controller.
type BalanceConfig struct {
	// BrokerRack is this broker's rack, Kafka's broker.rack: the balancer and
	// drains keep a partition's replicas on distinct racks when there are enough.
	// Default none.
	BrokerRack string `yaml:"broker.rack"`
	// AutoBalanceEnable turns on automatic balancing: when a broker joins or the
	// cluster is unbalanced by replicas, leaders or bytes per broker, or a
	// broker's disk is fuller than AutoBalanceDiskThreshold, replicas and
	// leaders move. Default true.
	AutoBalanceEnable *bool `yaml:"auto.balance.enable"`
	// AutoBalanceIntervalMs is how often the controller checks the balance.
	// Default 10000; it also checks right after a broker is unfenced.
	AutoBalanceIntervalMs int64 `yaml:"auto.balance.interval.ms"`
	// AutoBalanceMaxMoves bounds the reassignments in progress at once. Default 2.
	AutoBalanceMaxMoves int `yaml:"auto.balance.max.moves"`
	// AutoBalanceRoundGapMs is the least time between two balancer rounds that
	// started moves, which paces moves that complete at once. Default 1000.
	AutoBalanceRoundGapMs int64 `yaml:"auto.balance.round.gap.ms"`
	// AutoBalanceDiskThreshold is the share of a broker's disk in use above which
	// partitions move off it. Default 0.85.
	AutoBalanceDiskThreshold float64 `yaml:"auto.balance.disk.threshold"`
	// AutoBalanceBytesTolerance is how far bytes per broker may differ, as a share
	// of the mean, before partitions move for bytes alone. Default 0.1.
	AutoBalanceBytesTolerance float64 `yaml:"auto.balance.bytes.tolerance"`
}

func (c *BalanceConfig) applyDefaults() {
	if c.AutoBalanceEnable == nil {
		c.AutoBalanceEnable = ptr(true)
	}
	setDefault(&c.AutoBalanceIntervalMs, 10000)
	setDefault(&c.AutoBalanceMaxMoves, 2)
	setDefault(&c.AutoBalanceRoundGapMs, 1000)
	setDefault(&c.AutoBalanceDiskThreshold, 0.85)
	setDefault(&c.AutoBalanceBytesTolerance, 0.1)
}

func (c *BalanceConfig) validate() error {
	switch {
	case len(c.BrokerRack) > 255:
		return fmt.Errorf("broker.rack: longer than 255 characters")
	case c.AutoBalanceIntervalMs < 100:
		return fmt.Errorf("auto.balance.interval.ms: %d is below 100", c.AutoBalanceIntervalMs)
	case c.AutoBalanceMaxMoves < 1 || c.AutoBalanceMaxMoves > 1000:
		return fmt.Errorf("auto.balance.max.moves: %d is outside [1, 1000]", c.AutoBalanceMaxMoves)
	case c.AutoBalanceRoundGapMs < 1 || c.AutoBalanceRoundGapMs > 3600000:
		return fmt.Errorf("auto.balance.round.gap.ms: %d is outside [1, 3600000]", c.AutoBalanceRoundGapMs)
	case !(c.AutoBalanceDiskThreshold > 0 && c.AutoBalanceDiskThreshold <= 1):
		return fmt.Errorf("auto.balance.disk.threshold: %v is outside (0, 1]", c.AutoBalanceDiskThreshold)
	case !(c.AutoBalanceBytesTolerance > 0) || math.IsInf(c.AutoBalanceBytesTolerance, 0):
		return fmt.Errorf("auto.balance.bytes.tolerance: %v is not a positive number", c.AutoBalanceBytesTolerance)
	}
	return nil
}

// autoBalanceConfig is the metadata quorum's balancer configuration for this broker.
func (b *Broker) autoBalanceConfig() metadata.AutoBalanceConfig {
	c := b.cfg.Balance
	return metadata.AutoBalanceConfig{
		Disabled:      !*c.AutoBalanceEnable,
		Enabled:       func() bool { v, _ := b.brokerConfigValue(autoBalanceEnable); return v != "false" },
		Interval:      time.Duration(c.AutoBalanceIntervalMs) * time.Millisecond,
		MaxMoves:      c.AutoBalanceMaxMoves,
		RoundGap:      time.Duration(c.AutoBalanceRoundGapMs) * time.Millisecond,
		DiskThreshold: c.AutoBalanceDiskThreshold,
		ByteTolerance: c.AutoBalanceBytesTolerance,
		Usage:         b.brokerUsage,
		OnMoves: func(cause string, n int) {
			if b.balanceMetrics != nil {
				b.balanceMetrics.moves.WithLabelValues(cause).Add(float64(n))
			}
		},
	}
}

// brokerUsage is what the balancer learns of a broker's disk: this broker's
// own from its logs, another's with DescribeLogDirs over the controller's
// connection to it.
func (b *Broker) brokerUsage(ctx context.Context, br metadata.Broker) (metadata.BrokerUsage, error) {
	u := metadata.BrokerUsage{Partitions: map[string]map[int32]int64{}}
	if br.ID == b.cfg.NodeID {
		u.DiskTotal, u.DiskUsable = diskSpace(b.cfg.DataDir)
		for _, p := range b.allPartitions() {
			if u.Partitions[p.topic.name] == nil {
				u.Partitions[p.topic.name] = map[int32]int64{}
			}
			u.Partitions[p.topic.name][p.index] = p.log.Size()
		}
		return u, nil
	}
	p, err := b.peerIn(&b.ctl.ctlPeers, br.ID)
	if err != nil {
		return u, err
	}
	req := kmsg.NewPtrDescribeLogDirsRequest()
	req.Version = 4
	kresp, err := p.request(ctx, req)
	if err != nil {
		return u, err
	}
	resp := kresp.(*kmsg.DescribeLogDirsResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return u, err
	}
	for _, d := range resp.Dirs {
		u.DiskTotal, u.DiskUsable = d.TotalBytes, d.UsableBytes
		for _, t := range d.Topics {
			if u.Partitions[t.Topic] == nil {
				u.Partitions[t.Topic] = map[int32]int64{}
			}
			for _, tp := range t.Partitions {
				u.Partitions[t.Topic][tp.Partition] = tp.Size
			}
		}
	}
	return u, nil
}

// balanceMetrics are the reassignment and balance metrics: moves started by
// the balancer on this broker while it was the active controller, and gauges
// computed from the metadata image, reported by the active controller only (0
// and absent elsewhere, like sluice_offline_partitions).
type balanceMetrics struct {
	b     *Broker
	moves *prometheus.CounterVec
}

var (
	descReassigning    = prometheus.NewDesc("sluice_reassignments_in_progress", "Partitions with a reassignment in progress; reported by the active controller only, 0 elsewhere.", nil, nil)
	descBrokerReplicas = prometheus.NewDesc("sluice_broker_replicas", "Partition replicas assigned to each broker (target replicas of reassignments); reported by the active controller only.", []string{"broker"}, nil)
	descBrokerLeaders  = prometheus.NewDesc("sluice_broker_leaders", "Partitions each broker leads; reported by the active controller only.", []string{"broker"}, nil)
	descBrokerCordoned = prometheus.NewDesc("sluice_broker_cordoned", "1 for a broker cordoned (cordoned.log.dirs) or being drained; reported by the active controller only.", []string{"broker"}, nil)
)

func newBalanceMetrics(b *Broker, reg prometheus.Registerer) *balanceMetrics {
	m := &balanceMetrics{b: b, moves: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_partition_moves_total",
		Help: "Partition reassignments the automatic balancer started while this broker was the active controller, by reason (balance, disk, drain).",
	}, []string{"reason"})}
	for _, r := range []string{metadata.CauseBalance, metadata.CauseDisk, metadata.CauseDrain} {
		m.moves.WithLabelValues(r)
	}
	reg.MustRegister(m.moves, m)
	return m
}

func (m *balanceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReassigning, descBrokerReplicas, descBrokerLeaders, descBrokerCordoned} {
		ch <- d
	}
}

func (m *balanceMetrics) Collect(ch chan<- prometheus.Metric) {
	if !m.b.quorum.IsController() {
		ch <- prometheus.MustNewConstMetric(descReassigning, prometheus.GaugeValue, 0)
		return
	}
	img := m.b.quorum.Image()
	reassigning := 0
	replicas, leaders := map[int32]int{}, map[int32]int{}
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if p.Reassigning() {
				reassigning++
			}
			for _, r := range p.TargetReplicas() {
				replicas[r]++
			}
			if p.Leader >= 0 {
				leaders[p.Leader]++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descReassigning, prometheus.GaugeValue, float64(reassigning))
	ids := make([]int32, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		l := strconv.Itoa(int(id))
		cordoned := 0.0
		if img.Cordoned(id) {
			cordoned = 1
		}
		ch <- prometheus.MustNewConstMetric(descBrokerReplicas, prometheus.GaugeValue, float64(replicas[id]), l)
		ch <- prometheus.MustNewConstMetric(descBrokerLeaders, prometheus.GaugeValue, float64(leaders[id]), l)
		ch <- prometheus.MustNewConstMetric(descBrokerCordoned, prometheus.GaugeValue, cordoned, l)
	}
}

// autoBalanceEnable is also a dynamic broker config (cluster-wide or on the controller): false
// pauses the balancer before its next round (moves in progress complete), true resumes it at once.
const autoBalanceEnable = "auto.balance.enable"

// watchAutoBalance starts a balancer round as soon as auto.balance.enable turns true again.
func (b *Broker) watchAutoBalance() {
	last := ""
	b.onBrokerConfigChange([]string{autoBalanceEnable}, func(v map[string]string) {
		if v[autoBalanceEnable] == "true" && last == "false" {
			b.quorum.KickBalance()
		}
		last = v[autoBalanceEnable]
	})
}

func init() {
	registerBrokerConfig(brokerConfigDef{name: autoBalanceEnable, typ: kmsg.ConfigTypeBoolean, scope: scopeCluster,
		static: func(c *Config) string {
			if c.Balance.AutoBalanceEnable == nil || *c.Balance.AutoBalanceEnable {
				return "true"
			}
			return "false"
		}, validate: oneOf("true", "false")})
	// cordoned.log.dirs (KIP-1066) is per broker: "*" (or any log dir) cordons it.
	registerBrokerConfig(brokerConfigDef{name: metadata.CordonConfig, typ: kmsg.ConfigTypeList, scope: scopePerBroker,
		static: func(*Config) string { return "" }, validate: func(string) error { return nil }})
}
