package broker

import (
	"context"
	"time"

	"github.com/sluicemq/sluice/broker/metadata"
)

// maybeCreateOffsetsTopic creates __consumer_offsets once enough brokers are live
// for its replication factor: offsets.topic.replication.factor, capped by the
// size of the quorum so a single broker has one. Only the controller acts.
func (b *Broker) maybeCreateOffsetsTopic(ctx context.Context) {
	if !b.quorum.IsController() {
		return
	}
	img := b.quorum.Image()
	if img.Topic(offsetsTopic) != nil {
		return
	}
	voters := 1
	if b.cfg.ControllerQuorumVoters != "" {
		vs, _ := metadata.ParseVoters(b.cfg.ControllerQuorumVoters)
		voters = len(vs)
	}
	rf := min(int(b.cfg.OffsetsTopicReplicationFactor), voters)
	if len(img.LiveBrokers()) < rf {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := b.quorum.CreateTopic(cctx, offsetsTopic, b.cfg.OffsetsTopicNumPartitions, int16(rf), nil,
		map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"})
	if err != nil && ctx.Err() == nil {
		b.logger.Debug("creating the offsets topic", "err", err)
	}
}
