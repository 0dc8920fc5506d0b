package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// probeTimeout bounds one Metadata request to one node.
const probeTimeout = 2 * time.Second

// View is what one node's Metadata response says about the cluster.
type View struct {
	// Node is the node that answered.
	Node int32
	// Controller is Metadata's ControllerID (-1 when the node knows none).
	Controller int32
	// Brokers are the broker IDs listed, sorted.
	Brokers []int32
	// Partitions holds, per topic, the state of each partition by index.
	Partitions map[string]map[int32]PartitionState
}

// PartitionState is a partition as Metadata describes it.
type PartitionState struct {
	// Leader is the leader's broker ID, -1 when there is none.
	Leader int32
	// LeaderEpoch is the leader epoch.
	LeaderEpoch int32
	// Replicas are the replica broker IDs in assignment order, the first being the preferred leader.
	Replicas []int32
	// ISR are the in-sync replicas, sorted.
	ISR []int32
	// Err is the partition's error code (0 for none).
	Err int16
}

// FullISR reports whether the partition has a leader and every replica is in sync.
func (p PartitionState) FullISR() bool {
	return p.Err == 0 && p.Leader >= 0 && slices.Equal(slices.Sorted(slices.Values(p.Replicas)), p.ISR)
}

// LeaderOf returns the partitions of topic that broker leads, sorted.
func (v View) LeaderOf(topic string, broker int32) []int32 {
	var ps []int32
	for p, st := range v.Partitions[topic] {
		if st.Leader == broker {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// View asks node id directly for Metadata about topics (no topics: brokers only).
func (c *Cluster) View(ctx context.Context, id int32, topics ...string) (View, error) {
	n := c.Node(id)
	if n == nil {
		return View{}, fmt.Errorf("no node %d", id)
	}
	n.probeOnce.Do(func() {
		n.probe, n.probeErr = kgo.NewClient(kgo.SeedBrokers(n.Addr), kgo.DialTimeout(time.Second),
			kgo.RequestRetries(0))
	})
	if n.probeErr != nil {
		return View{}, n.probeErr
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	kresp, err := n.probe.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return View{}, fmt.Errorf("metadata from node %d: %w", id, err)
	}
	resp := kresp.(*kmsg.MetadataResponse)
	v := View{Node: id, Controller: resp.ControllerID, Partitions: map[string]map[int32]PartitionState{}}
	for _, b := range resp.Brokers {
		v.Brokers = append(v.Brokers, b.NodeID)
	}
	slices.Sort(v.Brokers)
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return v, fmt.Errorf("metadata from node %d: topic %s: %w", id, *t.Topic, err)
		}
		ps := map[int32]PartitionState{}
		for _, p := range t.Partitions {
			st := PartitionState{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Err: p.ErrorCode,
				Replicas: p.Replicas, ISR: slices.Sorted(slices.Values(p.ISR))}
			ps[p.Partition] = st
		}
		v.Partitions[*t.Topic] = ps
	}
	return v, nil
}

// AnyView returns the View of the first running node that answers.
func (c *Cluster) AnyView(ctx context.Context, topics ...string) (View, error) {
	var errs []error
	for _, id := range c.Running() {
		v, err := c.View(ctx, id, topics...)
		if err == nil {
			return v, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return View{}, errors.New("no node is running")
	}
	return View{}, errors.Join(errs...)
}

// Permanent wraps an error that WaitFor's condition returns to stop waiting at once.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// WaitFor polls cond every 50ms until it returns true, ctx ends, timeout passes or cond returns a
// Permanent error; the error names what was awaited and the last error cond returned.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		var perm Permanent
		if errors.As(err, &perm) {
			return fmt.Errorf("%s: %w", what, perm.Err)
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not after %v; last error: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not after %v", what, timeout)
		case <-tick.C:
		}
	}
}

// unexpected returns a Permanent error naming the first node that exited without being signalled.
func (c *Cluster) unexpected() error {
	for _, n := range c.nodes {
		if err := n.Unexpected(); err != nil {
			return Permanent{err}
		}
	}
	return nil
}

// WaitBrokers waits until every running node lists exactly the running brokers in Metadata.
func (c *Cluster) WaitBrokers(ctx context.Context, timeout time.Duration) error {
	return WaitFor(ctx, timeout, "every running node to list the running brokers", func(ctx context.Context) (bool, error) {
		if err := c.unexpected(); err != nil {
			return false, err
		}
		running := c.Running()
		for _, id := range running {
			v, err := c.View(ctx, id)
			if err != nil {
				return false, err
			}
			if !slices.Equal(v.Brokers, running) {
				return false, fmt.Errorf("node %d lists brokers %v, running are %v", id, v.Brokers, running)
			}
		}
		return true, nil
	})
}

// WaitHealthy waits until every running node lists the running brokers and, for every partition of
// topics, a running leader and a full ISR, and all running nodes agree on the leaders. This is the
// state after a restarted broker has caught up and rejoined every ISR.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration, topics ...string) error {
	return WaitFor(ctx, timeout, fmt.Sprintf("full ISRs of %v on every running node", topics), func(ctx context.Context) (bool, error) {
		_, err := c.healthy(ctx, topics)
		return err == nil, err
	})
}

func (c *Cluster) healthy(ctx context.Context, topics []string) (View, error) {
	if err := c.unexpected(); err != nil {
		return View{}, err
	}
	running := c.Running()
	var first View
	for i, id := range running {
		v, err := c.View(ctx, id, topics...)
		if err != nil {
			return v, err
		}
		if !slices.Equal(v.Brokers, running) {
			return v, fmt.Errorf("node %d lists brokers %v, running are %v", id, v.Brokers, running)
		}
		for _, t := range topics {
			if len(v.Partitions[t]) == 0 {
				return v, fmt.Errorf("node %d: topic %s has no partitions", id, t)
			}
			for p, st := range v.Partitions[t] {
				if !st.FullISR() || !slices.Contains(running, st.Leader) {
					return v, fmt.Errorf("node %d: %s/%d leader %d replicas %v isr %v err %d", id, t, p,
						st.Leader, st.Replicas, st.ISR, st.Err)
				}
				if i > 0 && first.Partitions[t][p].Leader != st.Leader {
					return v, fmt.Errorf("nodes %d and %d disagree on the leader of %s/%d", first.Node, id, t, p)
				}
			}
		}
		if i == 0 {
			first = v
		}
	}
	return first, nil
}

// Controller returns the controller ID that the running nodes agree on.
func (c *Cluster) Controller(ctx context.Context) (int32, error) {
	ctl := int32(-1)
	for _, id := range c.Running() {
		v, err := c.View(ctx, id)
		if err != nil {
			return -1, err
		}
		if v.Controller < 0 {
			return -1, fmt.Errorf("node %d knows no controller", id)
		}
		if ctl >= 0 && v.Controller != ctl {
			return -1, fmt.Errorf("nodes disagree on the controller: %d and %d", ctl, v.Controller)
		}
		ctl = v.Controller
	}
	if ctl < 0 {
		return -1, errors.New("no node is running")
	}
	return ctl, nil
}
