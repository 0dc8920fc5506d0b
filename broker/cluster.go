package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// controllerLink is how a broker talks to the active controller: directly when
// this broker is the controller (the Raft leader), else with Kafka requests to the
// controller's Kafka listener, like KRaft brokers do.
type controllerLink struct {
	b           *Broker
	incarnation [16]byte

	mu    sync.Mutex
	peers map[int32]*peer // by broker id, for replica fetches from leaders
	// ctlPeers are connections for controller requests (heartbeats, ISR
	// changes, forwarded admin requests), kept apart from replica fetches,
	// which hold a connection for up to their max wait, like Kafka's
	// broker-to-controller channel.
	ctlPeers map[int32]*peer
}

// peerFor returns the connection to another broker's Kafka listener used for
// replica fetches.
func (b *Broker) peerFor(id int32) (*peer, error) {
	return b.peerIn(&b.ctl.peers, id)
}

// peerIn returns the connection to broker id kept in peers, (re)opening it when
// the broker's address changed.
func (b *Broker) peerIn(peers *map[int32]*peer, id int32) (*peer, error) {
	br, ok := b.quorum.Image().Brokers[id]
	if !ok {
		return nil, fmt.Errorf("broker %d is not registered", id)
	}
	addr := br.Addr(b.interBrokerListener().name)
	if addr == "" {
		return nil, fmt.Errorf("broker %d has no %s listener", id, b.interBrokerListener().name)
	}
	l := &b.ctl
	l.mu.Lock()
	defer l.mu.Unlock()
	if *peers == nil {
		*peers = map[int32]*peer{}
	}
	p := (*peers)[id]
	if p == nil || p.addr != addr {
		if p != nil {
			p.close()
		}
		p = newPeer(addr, "sluice-broker-"+strconv.Itoa(int(b.cfg.NodeID)))
		p.dial = b.dialPeer
		(*peers)[id] = p
	}
	return p, nil
}

func (l *controllerLink) closePeers() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range l.peers {
		p.close()
		delete(l.peers, id)
	}
	for id, p := range l.ctlPeers {
		p.close()
		delete(l.ctlPeers, id)
	}
}

// toController sends a request to the active controller's Kafka listener.
func (b *Broker) toController(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	id := b.quorum.ControllerID()
	if id < 0 {
		return nil, kerr.NotController
	}
	if id == b.cfg.NodeID {
		return nil, errors.New("this broker is the controller")
	}
	p, err := b.peerIn(&b.ctl.ctlPeers, id)
	if err != nil {
		return nil, err
	}
	return p.request(ctx, req)
}

// register makes this broker known to the controller and returns its broker epoch.
func (b *Broker) register(ctx context.Context) (int64, error) {
	host, port := b.advertisedAddr()
	if b.quorum.IsController() {
		return b.quorum.RegisterBroker(ctx, metadata.Broker{ID: b.cfg.NodeID, Host: host, Port: port, IncarnationID: b.ctl.incarnation, Listeners: b.endpoints()})
	}
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.Version = 0
	req.BrokerID = b.cfg.NodeID
	req.ClusterID = b.cfg.ClusterID
	req.IncarnationID = b.ctl.incarnation
	for _, e := range b.endpoints() {
		l := kmsg.NewBrokerRegistrationRequestListener()
		l.Name, l.Host, l.Port, l.SecurityProtocol = e.Name, e.Host, uint16(e.Port), securityProtocolID(e.SecurityProtocol)
		req.Listeners = append(req.Listeners, l)
	}
	resp, err := b.toController(ctx, req)
	if err != nil {
		return 0, err
	}
	r := resp.(*kmsg.BrokerRegistrationResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, err
	}
	return r.BrokerEpoch, nil
}

// heartbeat renews this broker's session; fenced reports whether the controller
// still keeps it out of leadership.
func (b *Broker) heartbeat(ctx context.Context, epoch int64, wantFence bool) (fenced bool, err error) {
	applied := b.appliedIndex.Load()
	if b.quorum.IsController() {
		return b.quorum.Heartbeat(ctx, metadata.HeartbeatRequest{BrokerID: b.cfg.NodeID, BrokerEpoch: epoch, AppliedIndex: applied, WantFence: wantFence})
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.Version = 0
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, epoch
	req.CurrentMetadataOffset = int64(applied)
	req.WantFence = wantFence
	resp, err := b.toController(ctx, req)
	if err != nil {
		return true, err
	}
	r := resp.(*kmsg.BrokerHeartbeatResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return true, err
	}
	return r.IsFenced, nil
}

// runHeartbeats registers the broker and keeps its session alive until ctx ends,
// then asks to be fenced so its leaderships move at once (controlled shutdown).
func (b *Broker) runHeartbeats(ctx context.Context) {
	every := b.sessionTimeout() / 6
	t := time.NewTicker(every)
	defer t.Stop()
	var epoch int64 = -1
	lastWarn := time.Time{}
	for {
		var err error
		if epoch < 0 {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			epoch, err = b.register(rctx)
			cancel()
			if err != nil {
				epoch = -1
			}
		}
		if epoch >= 0 {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var fenced bool
			fenced, err = b.heartbeat(hctx, epoch, false)
			cancel()
			switch {
			case errors.Is(err, kerr.StaleBrokerEpoch), errors.Is(err, kerr.BrokerIDNotRegistered):
				epoch = -1
			case err == nil && !fenced:
				b.readyOnce.Do(func() { close(b.ready) })
			}
		}
		if err != nil && ctx.Err() == nil && time.Since(lastWarn) > 10*time.Second && !errors.Is(err, kerr.NotController) {
			lastWarn = time.Now()
			b.logger.Debug("controller heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			if epoch >= 0 {
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				b.heartbeat(fctx, epoch, true)
				cancel()
			}
			return
		case <-t.C:
		case <-b.heartbeatNow:
		}
	}
}

func (b *Broker) sessionTimeout() time.Duration {
	return time.Duration(b.cfg.BrokerSessionTimeoutMs) * time.Millisecond
}

func newIncarnation() [16]byte {
	var id [16]byte
	rand.Read(id[:])
	return id
}

// alterPartition asks the controller to change a partition's ISR.
func (b *Broker) alterPartition(ctx context.Context, topicID [16]byte, index, leaderEpoch, partitionEpoch int32, isr []int32) (metadata.Partition, error) {
	if b.quorum.IsController() {
		return b.quorum.AlterPartition(ctx, topicID, index, b.cfg.NodeID, leaderEpoch, partitionEpoch, isr)
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.Version = 2
	req.BrokerID = b.cfg.NodeID
	rt := kmsg.NewAlterPartitionRequestTopic()
	rt.TopicID = topicID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = index, leaderEpoch, partitionEpoch, isr
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := b.toController(ctx, req)
	if err != nil {
		return metadata.Partition{}, err
	}
	r := resp.(*kmsg.AlterPartitionResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return metadata.Partition{}, err
	}
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return metadata.Partition{}, errors.New("malformed AlterPartition response")
	}
	sp := r.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(sp.ErrorCode); err != nil {
		return metadata.Partition{}, err
	}
	return metadata.Partition{Leader: sp.LeaderID, LeaderEpoch: sp.LeaderEpoch, ISR: sp.ISR, PartitionEpoch: sp.PartitionEpoch}, nil
}

// allocateProducerIDs gets a block of producer ids from the controller.
func (b *Broker) allocateProducerIDs(ctx context.Context) (start, count int64, err error) {
	if b.quorum.IsController() {
		return b.quorum.AllocateProducerIDs(ctx)
	}
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID = b.cfg.NodeID
	resp, err := b.toController(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	r := resp.(*kmsg.AllocateProducerIDsResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, 0, err
	}
	return r.ProducerIDStart, int64(r.ProducerIDLen), nil
}
