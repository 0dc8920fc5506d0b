package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
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
	// txnPeers are connections to transaction coordinators for KIP-890's
	// verification of produce requests (txn_verify.go).
	txnPeers map[int32]*peer
}

// peerFor returns the connection to another broker's Kafka listener used for
// replica fetches.
func (b *Broker) peerFor(id int32) (*peer, error) {
	return b.peerIn(&b.ctl.peers, id)
}

// peerIn returns the connection to broker id kept in peers, (re)opening it when
// the broker's address changed.
func (b *Broker) peerIn(peers *map[int32]*peer, id int32) (*peer, error) {
	// A controller-only node is not a registered broker; its endpoints are in the image's
	// controllers.
	addr := b.quorum.Image().ControllerEndpoint(id, b.interBrokerListener().name)
	if addr == "" {
		return nil, fmt.Errorf("node %d is not registered with a %s listener", id, b.interBrokerListener().name)
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
	for id, p := range l.txnPeers {
		p.close()
		delete(l.txnPeers, id)
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

// controllerSession is this broker's own connection to the active controller,
// used only for registration and heartbeats so that nothing else (replica
// fetches, forwarded admin requests) can delay a heartbeat. It is kept open while
// the controller stays the same: the controller fences a broker at once when the
// connection carrying its heartbeats is closed from the broker's side.
type controllerSession struct {
	b     *Broker
	ctlID int32 // the controller p talks to
	p     *peer
}

// to returns the peer for controller id, dialing a new connection if the
// controller or its registered address changed (a restarted controller may
// listen elsewhere).
func (s *controllerSession) to(id int32) (*peer, error) {
	addr := s.b.quorum.Image().ControllerEndpoint(id, s.b.interBrokerListener().name)
	if addr == "" {
		return nil, fmt.Errorf("controller %d is not registered with a %s listener", id, s.b.interBrokerListener().name)
	}
	if s.p != nil && s.ctlID == id && s.p.addr == addr {
		return s.p, nil
	}
	s.close()
	s.ctlID = id
	s.p = newPeer(addr, "sluice-broker-"+strconv.Itoa(int(s.b.cfg.NodeID)))
	s.p.dial = s.b.dialPeer
	return s.p, nil
}

func (s *controllerSession) close() {
	if s.p != nil {
		s.p.close()
		s.p = nil
	}
}

// request sends req to the active controller over the session's connection. It
// waits up to a broker session for the answer, and gives up at once if another
// broker becomes the controller meanwhile: closing the connection to a controller
// that is still alive would end this broker's session there.
func (s *controllerSession) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	id := s.b.quorum.ControllerID()
	if id < 0 {
		return nil, kerr.NotController
	}
	if id == s.b.cfg.NodeID {
		return nil, errors.New("this broker is the controller")
	}
	p, err := s.to(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.b.sessionTimeout())
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if now := s.b.quorum.ControllerID(); now >= 0 && now != id {
					cancel()
					return
				}
			}
		}
	}()
	return p.request(ctx, req)
}

// register makes this broker known to the controller and returns its broker epoch.
func (b *Broker) register(ctx context.Context, s *controllerSession) (int64, error) {
	host, port := b.advertisedAddr()
	if b.quorum.IsController() {
		return b.quorum.RegisterBroker(ctx, metadata.Broker{ID: b.cfg.NodeID, Host: host, Port: port, Rack: b.cfg.Balance.BrokerRack, IncarnationID: b.ctl.incarnation, Listeners: b.endpoints()})
	}
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.Version = 0
	req.BrokerID = b.cfg.NodeID
	req.ClusterID = b.cfg.ClusterID
	req.IncarnationID = b.ctl.incarnation
	if rack := b.cfg.Balance.BrokerRack; rack != "" {
		req.Rack = &rack
	}
	for _, e := range b.endpoints() {
		l := kmsg.NewBrokerRegistrationRequestListener()
		l.Name, l.Host, l.Port, l.SecurityProtocol = e.Name, e.Host, uint16(e.Port), securityProtocolID(e.SecurityProtocol)
		req.Listeners = append(req.Listeners, l)
	}
	resp, err := s.request(ctx, req)
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
func (b *Broker) heartbeat(ctx context.Context, s *controllerSession, epoch int64, wantFence bool) (fenced bool, err error) {
	applied := b.appliedIndex.Load()
	if b.quorum.IsController() {
		return b.quorum.Heartbeat(ctx, metadata.HeartbeatRequest{BrokerID: b.cfg.NodeID, BrokerEpoch: epoch, AppliedIndex: applied, WantFence: wantFence})
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.Version = 0
	req.BrokerID, req.BrokerEpoch = b.cfg.NodeID, epoch
	req.CurrentMetadataOffset = int64(applied)
	req.WantFence = wantFence
	resp, err := s.request(ctx, req)
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
// It heartbeats every broker.heartbeat.interval.ms, at once when the controller
// changes, and every 100ms while it is not registered or fenced. This goroutine
// does nothing else, and its connection carries nothing else.
func (b *Broker) runHeartbeats(ctx context.Context) {
	every := time.Duration(b.cfg.BrokerHeartbeatIntervalMs) * time.Millisecond
	if every == 0 {
		every = min(2*time.Second, b.sessionTimeout()/3)
	}
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	s := &controllerSession{b: b, ctlID: -1}
	defer s.close()
	var epoch int64 = -1
	var due time.Time // of the next heartbeat while unfenced
	unfenced := false // the last heartbeat said so
	lastCtl := int32(-1)
	lastWarn := time.Time{}
	for {
		if unfenced {
			b.markReady(epoch) // once this broker's own image has caught up
		}
		ctlID := b.quorum.ControllerID()
		if epoch < 0 || ctlID != lastCtl || !time.Now().Before(due) {
			lastCtl = ctlID
			var err error
			if epoch < 0 {
				if epoch, err = b.register(ctx, s); err != nil {
					epoch = -1
				}
			}
			if epoch >= 0 {
				var fenced bool
				fenced, err = b.heartbeat(ctx, s, epoch, false)
				unfenced = err == nil && !fenced
				switch {
				case errors.Is(err, kerr.StaleBrokerEpoch), errors.Is(err, kerr.BrokerIDNotRegistered):
					epoch = -1
				case unfenced:
					due = time.Now().Add(every)
					b.markReady(epoch)
				}
			}
			if err != nil && ctx.Err() == nil && time.Since(lastWarn) > 10*time.Second && !errors.Is(err, kerr.NotController) {
				lastWarn = time.Now()
				b.logger.Debug("controller heartbeat failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if epoch >= 0 {
				fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				b.heartbeat(fctx, s, epoch, true)
				cancel()
			}
			return
		case <-poll.C:
		case <-b.heartbeatNow:
			// New leaderships: tell the controller at once what this broker has applied, so
			// that CreateTopics answers as soon as the leaders can serve (WaitLeadersApplied).
			due = time.Time{}
		}
	}
}

// markReady closes Ready once this broker's own metadata image shows it
// registered with epoch and unfenced: from then on the Metadata answers it gives
// list itself, and its client listener accepts connections.
func (b *Broker) markReady(epoch int64) {
	if br, ok := b.quorum.Image().Brokers[b.cfg.NodeID]; ok && br.Epoch == epoch && !br.Fenced {
		b.readyOnce.Do(func() { close(b.ready) })
	}
}

// waitReady waits until the broker is ready (see Ready) or ctx is done, and
// reports whether it is ready. Run binds the client listener early, so its port
// is known, but accepts nothing before this returns: a client that connects the
// moment the port opens waits in the listen backlog and then gets a Metadata
// answer listing this broker, as with Kafka.
func (b *Broker) waitReady(ctx context.Context) bool {
	select {
	case <-b.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// brokerGone reports whether nothing accepts connections at br's inter-broker
// listener any more (connection refused): its process has exited. Nothing is
// sent on the probe's connection.
func (b *Broker) brokerGone(ctx context.Context, br metadata.Broker) bool {
	addr := br.Addr(b.interBrokerListener().name)
	if addr == "" {
		return false
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		nc.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// connEnded tells the controller that a connection carrying heartbeats was
// closed by the other side (EOF or reset), so a killed broker is fenced at once.
func (b *Broker) connEnded(cc *conn, err error) {
	if !cc.heartbeats {
		return
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		b.quorum.ConnectionClosed(cc.heartbeatOf, cc.id)
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
