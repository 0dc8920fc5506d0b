package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// A tenant's disk use is the logical log size of each of its partitions, as its leader holds it,
// times the partition's replication factor. Each broker reports sluice_tenant_disk_bytes and
// sluice_tenant_partitions for the partitions it leads, so summing over brokers gives the
// cluster's figure (a partition without a leader is counted nowhere until it has one again).

// localTenantDisk returns the disk use and partition count of each tenant over the partitions
// this broker leads.
func (tm *tenantManager) localTenantDisk(t *tenantTable, img *metadata.Image) (disk map[string]int64, parts map[string]int) {
	disk, parts = map[string]int64{}, map[string]int{}
	if len(t.byTopic) == 0 {
		return disk, parts
	}
	for _, p := range tm.b.allPartitions() {
		e := t.byTopic[p.topic.name]
		if e == nil {
			continue
		}
		if _, _, leader := p.state(); !leader {
			continue
		}
		mp, ok := img.Partition(p.topic.name, p.index)
		if !ok {
			continue
		}
		disk[e.name] += p.log.Size() * int64(len(mp.Replicas))
		parts[e.name]++
	}
	return disk, parts
}

// runDiskChecks learns, every tenant.disk.check.interval.ms while some plan has a disk capacity,
// the cluster-wide disk use of every tenant: its own leaders' log sizes and, with DescribeLogDirs,
// those of the other live brokers for the partitions they lead. A tenant over its plan's capacity
// has its produce requests refused until it is under again.
func (tm *tenantManager) runDiskChecks(ctx context.Context) {
	tick := time.NewTicker(time.Duration(tm.b.cfg.Tenants.TenantDiskCheckIntervalMs) * time.Millisecond)
	defer tick.Stop()
	defer func() {
		l := &tm.b.ctl
		l.mu.Lock()
		for id, p := range tm.diskPeers {
			p.close()
			delete(tm.diskPeers, id)
		}
		l.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t := tm.current(); t.anyDisk {
			tm.checkDisk(ctx, t)
		}
	}
}

// checkDisk runs one disk check.
func (tm *tenantManager) checkDisk(ctx context.Context, t *tenantTable) {
	img := tm.b.quorum.Image()
	total, _ := tm.localTenantDisk(t, img)
	// The other leaders' partitions of tenants with a disk capacity, by broker.
	ask := map[int32]map[string][]int32{}
	for name, e := range t.byTopic {
		if e.plan.DiskBytes <= 0 {
			continue
		}
		for i, p := range img.Topics[name].Partitions {
			if p.Leader < 0 || p.Leader == tm.b.cfg.NodeID || !img.Live(p.Leader) {
				continue
			}
			if ask[p.Leader] == nil {
				ask[p.Leader] = map[string][]int32{}
			}
			ask[p.Leader][name] = append(ask[p.Leader][name], int32(i))
		}
	}
	complete := true
	for id, topics := range ask {
		sizes, err := tm.peerLogSizes(ctx, id, topics)
		if err != nil {
			complete = false
			tm.b.logger.Warn("tenant disk check: cannot read a broker's log sizes", "broker", id, "err", err)
			continue
		}
		for name, parts := range sizes {
			mt := img.Topics[name]
			e := t.byTopic[name]
			if mt == nil || e == nil {
				continue
			}
			for idx, size := range parts {
				if int(idx) < len(mt.Partitions) && mt.Partitions[idx].Leader == id {
					total[e.name] += size * int64(len(mt.Partitions[idx].Replicas))
				}
			}
		}
	}
	tm.disk.Store(&total)
	for _, e := range t.byName {
		if e.plan.DiskBytes <= 0 {
			e.meter.overDisk.Store(nil)
			continue
		}
		used := total[e.name]
		switch {
		case used > e.plan.DiskBytes:
			msg := fmt.Sprintf("tenant %q uses %d bytes of disk, more than the %d of its plan %q: produce is refused until it is under again",
				e.name, used, e.plan.DiskBytes, e.plan.Name)
			e.meter.overDisk.Store(&msg)
		case complete:
			// A broker that did not answer may hold the difference: a tenant over its plan stays
			// refused until a complete check says otherwise.
			e.meter.overDisk.Store(nil)
		}
	}
}

// peerLogSizes asks broker id for the sizes of the given partitions with DescribeLogDirs.
func (tm *tenantManager) peerLogSizes(ctx context.Context, id int32, topics map[string][]int32) (map[string]map[int32]int64, error) {
	p, err := tm.b.peerIn(&tm.diskPeers, id)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrDescribeLogDirsRequest()
	for name, parts := range topics {
		rt := kmsg.NewDescribeLogDirsRequestTopic()
		rt.Topic, rt.Partitions = name, parts
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kresp, err := p.request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.DescribeLogDirsResponse)
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("DescribeLogDirs: error code %d", resp.ErrorCode)
	}
	out := map[string]map[int32]int64{}
	for _, d := range resp.Dirs {
		for _, dt := range d.Topics {
			if out[dt.Topic] == nil {
				out[dt.Topic] = map[int32]int64{}
			}
			for _, dp := range dt.Partitions {
				out[dt.Topic][dp.Partition] += dp.Size
			}
		}
	}
	return out, nil
}

// tenantCollector reports the tenants' disk, partitions and plan limits at each scrape.
type tenantCollector struct{ tm *tenantManager }

var (
	descTenantDisk       = prometheus.NewDesc("sluice_tenant_disk_bytes", "Log size times replication factor of the tenant's partitions this broker leads; sum over brokers for the tenant's disk use.", []string{"tenant"}, nil)
	descTenantPartitions = prometheus.NewDesc("sluice_tenant_partitions", "The tenant's partitions this broker leads; sum over brokers for the tenant's partitions.", []string{"tenant"}, nil)
	descPlanProduce      = prometheus.NewDesc("sluice_tenant_plan_produce_bytes_per_second", "The produce bandwidth of the tenant's plan (0: unlimited); the same on every broker.", []string{"tenant", "plan"}, nil)
	descPlanFetch        = prometheus.NewDesc("sluice_tenant_plan_fetch_bytes_per_second", "The fetch bandwidth of the tenant's plan (0: unlimited); the same on every broker.", []string{"tenant", "plan"}, nil)
	descPlanDisk         = prometheus.NewDesc("sluice_tenant_plan_disk_bytes", "The disk capacity of the tenant's plan (0: unlimited); the same on every broker.", []string{"tenant", "plan"}, nil)
	descPlanPartitions   = prometheus.NewDesc("sluice_tenant_plan_partitions", "The partitions of the tenant's plan (0: unlimited); the same on every broker.", []string{"tenant", "plan"}, nil)
	descPlanConnections  = prometheus.NewDesc("sluice_tenant_plan_connections", "The connections per broker of the tenant's plan (0: unlimited); the same on every broker.", []string{"tenant", "plan"}, nil)
)

func (c *tenantCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTenantDisk, descTenantPartitions, descPlanProduce, descPlanFetch, descPlanDisk, descPlanPartitions, descPlanConnections} {
		ch <- d
	}
}

func (c *tenantCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.tm.current()
	if len(t.byName) == 0 {
		return
	}
	disk, parts := c.tm.localTenantDisk(t, c.tm.b.quorum.Image())
	for name, e := range t.byName {
		ch <- prometheus.MustNewConstMetric(descTenantDisk, prometheus.GaugeValue, float64(disk[name]), name)
		ch <- prometheus.MustNewConstMetric(descTenantPartitions, prometheus.GaugeValue, float64(parts[name]), name)
		p := e.plan
		ch <- prometheus.MustNewConstMetric(descPlanProduce, prometheus.GaugeValue, float64(p.ProduceBytesPerSecond), name, p.Name)
		ch <- prometheus.MustNewConstMetric(descPlanFetch, prometheus.GaugeValue, float64(p.FetchBytesPerSecond), name, p.Name)
		ch <- prometheus.MustNewConstMetric(descPlanDisk, prometheus.GaugeValue, float64(p.DiskBytes), name, p.Name)
		ch <- prometheus.MustNewConstMetric(descPlanPartitions, prometheus.GaugeValue, float64(p.Partitions), name, p.Name)
		ch <- prometheus.MustNewConstMetric(descPlanConnections, prometheus.GaugeValue, float64(p.Connections), name, p.Name)
	}
}
