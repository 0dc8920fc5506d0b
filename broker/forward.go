package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// forwardToController sends an admin request that only the controller can carry
// out to the controller, unchanged and at the client's version, in an Envelope with
// the client's principal and address so the controller authorizes it as the client,
// and returns its response, as KRaft brokers do. It waits briefly for a controller
// to exist; without one the connection is closed and the client retries elsewhere.
// An Envelope the controller refuses (this broker lacks CLUSTER_ACTION) closes the
// connection at once.
func (b *Broker) forwardToController(cc *conn, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(cc.ctx, 10*time.Second)
	defer cancel()
	for {
		if b.quorum.ControllerID() >= 0 && !b.quorum.IsController() {
			resp, err := b.toController(ctx, envelope(cc, req))
			if err == nil {
				if resp, err = unwrapEnvelope(req, resp); err == nil {
					return resp, nil
				}
				if !errors.Is(err, kerr.NotController) {
					return nil, fmt.Errorf("forwarding %s to the controller: %w", kmsg.NameForKey(req.Key()), err)
				}
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("forwarding %s to the controller: %w", kmsg.NameForKey(req.Key()), err)
			}
		}
		if b.quorum.IsController() {
			return nil, errRetryLocally
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("forwarding %s: no controller", kmsg.NameForKey(req.Key()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errRetryLocally tells a handler that this broker became the controller while
// it was forwarding.
var errRetryLocally = fmt.Errorf("this broker is the controller now")

// waitForImage waits until cond holds for this broker's metadata image, so a client
// that created or deleted a topic through this broker sees the change in its next
// Metadata request. It gives up quietly after a few seconds.
func (b *Broker) waitForImage(ctx context.Context, cond func() bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for !cond() {
		changed := b.imageApplied()
		if cond() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// clientControllerID is the controller id told to clients (Metadata,
// DescribeCluster). Every broker forwards controller requests, so like a KRaft
// broker it names a live broker: the active controller when it is live and
// known, else this broker, never -1 or a broker missing from the response's
// broker list (librdkafka's admin client would wait for it until it times out).
func (b *Broker) clientControllerID(img *metadata.Image) int32 {
	if id := b.quorum.ControllerID(); id >= 0 && img.Live(id) {
		return id
	}
	if img.Live(b.cfg.NodeID) {
		return b.cfg.NodeID
	}
	if live := img.LiveBrokers(); len(live) > 0 {
		return live[0].ID
	}
	return -1
}

// leadersReadyTimeout bounds how long CreateTopics and CreatePartitions wait for
// the leaders of new partitions to apply them.
const leadersReadyTimeout = 5 * time.Second

// waitLeadersReady waits, until readyBy at the latest, for the leaders of the
// topic's partitions to report that they applied the current metadata: then a
// client that learns of the leaders (from this answer or a Metadata request) is
// served by them, instead of getting UNKNOWN_TOPIC_OR_PARTITION, which
// librdkafka treats as permanent. On timeout (a leader that stopped
// heartbeating is fenced within broker.session.timeout.ms and its partitions
// move) the answer is sent anyway: the topic exists.
func (b *Broker) waitLeadersReady(ctx context.Context, topicID [16]byte, readyBy time.Time) {
	ctx, cancel := context.WithDeadline(ctx, readyBy)
	defer cancel()
	if err := b.quorum.WaitLeadersApplied(ctx, topicID, b.quorum.Image().Index); err != nil {
		b.logger.Info("new partitions' leaders did not report the topic in time", "err", err)
	}
}
