package broker

import (
	"path/filepath"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeLogDirs: v0-4
//
// Behavior:
//   - One log dir (log.dir) with the size of each requested partition (all when the
//     topic list is null); v4+ the file system's total and usable bytes.
//   - Authorization: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED (v3+;
//     older versions get no log dirs).

func init() { register(35, 0, 4, (*Broker).handleDescribeLogDirs) }

func (b *Broker) handleDescribeLogDirs(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir, _ = filepath.Abs(b.cfg.DataDir)
	dir.TotalBytes, dir.UsableBytes = diskSpace(b.cfg.DataDir)

	addTopic := func(t *topic, indexes []int32) {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.name
		parts := b.partitionsOf(t)
		for _, p := range parts {
			if p == nil {
				continue
			}
			if indexes != nil && !slices.Contains(indexes, p.index) {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition, dp.Size = p.index, p.log.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		dir.Topics = append(dir.Topics, dt)
	}
	if req.Topics == nil {
		for _, t := range b.sortedTopics() {
			addTopic(t, nil)
		}
	} else {
		for _, rt := range req.Topics {
			if t := b.topicByName(rt.Topic); t != nil {
				addTopic(t, rt.Partitions)
			}
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp, nil
}
