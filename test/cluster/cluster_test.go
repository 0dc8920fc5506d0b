package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicemq/sluice/chaos"
)

// TestLeaderFailoverAndRejoin makes the leader of a partition diverge from its followers, kills it
// with SIGKILL, sees a new leader elected and acks=all produces resume, restarts the old leader and
// sees it truncate, catch up and rejoin the ISR. To diverge, the followers are frozen with SIGSTOP
// (shorter than any timeout that would drop them from the ISR) while the leader acknowledges acks=1
// records only it has; the new leader then writes acks=all records at those offsets. With the old
// leader preferred and leading again, every acks=all record must be read back at its offset, which
// fails if the old leader kept its divergent tail.
func TestLeaderFailoverAndRejoin(t *testing.T) {
	cl := startCluster(t)
	const topic = "failover"
	createTopic(t, cl, topic, 3, 3, 2)
	v := viewOf(t, cl, topic)
	for p, st := range v.Partitions[topic] {
		require.Len(t, st.Replicas, 3, "partition %d", p)
		require.ElementsMatch(t, st.Replicas, st.ISR, "partition %d", p)
	}

	all := newProducer(t, newClient(t, cl), 0)
	for p := int32(0); p < 3; p++ {
		require.NoError(t, all.produce(testCtx(t, 30*time.Second), topic, p, 100))
	}

	old := v.Partitions[topic][0]
	followers := slices.DeleteFunc(slices.Clone(old.Replicas), func(id int32) bool { return id == old.Leader })
	one := newProducer(t, newClient(t, cl, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.RecordRetries(0), kgo.RecordDeliveryTimeout(5*time.Second)), 1)
	streamCtx, stopStream := context.WithCancel(context.Background())
	defer stopStream()
	streamFailed := make(chan int, 1)
	go func() { streamFailed <- one.stream(streamCtx, topic, 0) }()
	require.NoError(t, chaos.WaitFor(testCtx(t, 10*time.Second), 10*time.Second, "first acks=1 acknowledgements",
		func(context.Context) (bool, error) { return len(one.acked(topic)[0]) >= 100, nil }))

	for _, id := range followers {
		require.NoError(t, cl.Pause(id))
	}
	before := len(one.acked(topic)[0])
	waitErr := chaos.WaitFor(testCtx(t, time.Second), 700*time.Millisecond, "acks=1 acknowledgements with frozen followers",
		func(context.Context) (bool, error) { return len(one.acked(topic)[0]) >= before+100, nil })
	killedAt := time.Now()
	require.NoError(t, cl.Kill(old.Leader))
	for _, id := range followers {
		require.NoError(t, cl.Resume(id))
	}
	if waitErr != nil {
		t.Logf("fewer acks=1 acknowledgements than hoped while the followers were frozen: %v", waitErr)
	}
	t.Logf("froze followers %v, leader %d acknowledged %d acks=1 records alone, killed it (epoch %d)",
		followers, old.Leader, len(one.acked(topic)[0])-before, old.LeaderEpoch)

	var now chaos.PartitionState
	require.NoError(t, chaos.WaitFor(testCtx(t, 20*time.Second), 20*time.Second, "a new leader of partition 0",
		func(ctx context.Context) (bool, error) {
			v, err := cl.AnyView(ctx, topic)
			if err != nil {
				return false, err
			}
			now = v.Partitions[topic][0]
			return now.Leader >= 0 && now.Leader != old.Leader && now.LeaderEpoch > old.LeaderEpoch, nil
		}))
	t.Logf("broker %d leads %s/0 at epoch %d, %v after the kill; ISR %v", now.Leader, topic, now.LeaderEpoch,
		time.Since(killedAt).Round(time.Millisecond), now.ISR)
	require.NotContains(t, now.ISR, old.Leader)
	stopStream()
	t.Logf("acks=1 stream: %d records failed around the kill", <-streamFailed)

	require.NoError(t, all.produce(testCtx(t, 30*time.Second), topic, 0, 300), "acks=all produce after the failover")
	t.Logf("acks=all produce resumed %v after the kill", time.Since(killedAt).Round(time.Millisecond))

	require.NoError(t, cl.Restart(testCtx(t, time.Minute), old.Leader))
	require.NoError(t, cl.WaitHealthy(testCtx(t, time.Minute), time.Minute, topic), "old leader rejoins every ISR")
	v = viewOf(t, cl, topic)
	for p, st := range v.Partitions[topic] {
		require.Contains(t, st.ISR, old.Leader, "partition %d", p)
	}
	t.Logf("broker %d back in every ISR %v after the kill", old.Leader, time.Since(killedAt).Round(time.Millisecond))

	// Preferred leaders come back, so the old leader leads partition 0 again if it was preferred: the
	// read-back then comes from the replica that had to truncate.
	if old.Leader == old.Replicas[0] {
		require.NoError(t, chaos.WaitFor(testCtx(t, 20*time.Second), 20*time.Second, "preferred leader back",
			func(ctx context.Context) (bool, error) {
				v, err := cl.AnyView(ctx, topic)
				return err == nil && v.Partitions[topic][0].Leader == old.Leader, err
			}))
		t.Logf("broker %d leads %s/0 again", old.Leader, topic)
	}
	require.NoError(t, all.produce(testCtx(t, 30*time.Second), topic, 0, 50))
	requireAllAcknowledged(t, cl, topic, 3, all)

	// The acks=1 records only the old leader had are gone: that is the divergence it truncated.
	logs, err := chaos.ReadPartitions(testCtx(t, time.Minute), cl.Bootstrap(), topic, time.Minute)
	require.NoError(t, err)
	c := chaos.CheckPartition(0, one.acked(topic)[0], logs[0])
	t.Logf("acks=1 records: %d acknowledged, %d lost, %d moved (allowed for acks=1)", c.Acked, c.Lost, c.Moved)
	require.NotZero(t, c.Lost+c.Moved, "the old leader never diverged, so truncation went untested")
}

// TestNotEnoughReplicas sees acks=all produces refused with NOT_ENOUGH_REPLICAS once the ISR is smaller
// than min.insync.replicas, and accepted again once enough replicas are back. With two of three brokers
// down the metadata quorum has lost its majority too, so no ISR can shrink (as in Kafka): then the
// produce must still not be acknowledged, whatever the error.
func TestNotEnoughReplicas(t *testing.T) {
	cl := startCluster(t)
	createTopic(t, cl, "minisr2", 1, 3, 2)
	createTopic(t, cl, "minisr3", 1, 3, 3)
	createTopic(t, cl, "rf2", 1, 2, 2)
	p := newProducer(t, newClient(t, cl), 0)
	// refused sends the records expected to fail, with few retries so that the error shows. Not being
	// idempotent, its retries may append a record more than once; the read-back ignores its records.
	refused := newProducer(t, newClient(t, cl, kgo.DisableIdempotentWrite(), kgo.RecordRetries(3),
		kgo.RecordDeliveryTimeout(10*time.Second), kgo.ProduceRequestTimeout(3*time.Second)), 1)
	refusedValue := []byte(chaos.Value{Producer: 1, Partition: 0, Seq: 1 << 40}.String())
	for _, topic := range []string{"minisr2", "minisr3", "rf2"} {
		require.NoError(t, p.produce(testCtx(t, 20*time.Second), topic, 0, 10))
	}

	// Kill a replica of rf2 that is not the controller: ISR 2 of 3 for minisr2 and minisr3, 1 of 2
	// for rf2.
	ctl, err := cl.Controller(testCtx(t, 10*time.Second))
	require.NoError(t, err)
	rf2 := viewOf(t, cl, "rf2").Partitions["rf2"][0]
	first := rf2.Replicas[0]
	if first == ctl {
		first = rf2.Replicas[1]
	}
	require.NoError(t, cl.Kill(first))
	require.NoError(t, chaos.WaitFor(testCtx(t, 20*time.Second), 20*time.Second, "ISRs without the killed broker",
		func(ctx context.Context) (bool, error) {
			v, err := cl.AnyView(ctx, "minisr2", "minisr3", "rf2")
			if err != nil {
				return false, err
			}
			for _, topic := range []string{"minisr2", "minisr3", "rf2"} {
				st := v.Partitions[topic][0]
				if slices.Contains(st.ISR, first) || st.Leader == first || st.Leader < 0 {
					return false, fmt.Errorf("%s: leader %d ISR %v", topic, st.Leader, st.ISR)
				}
			}
			return true, nil
		}))
	for _, topic := range []string{"minisr3", "rf2"} {
		err = refused.produce(testCtx(t, 30*time.Second), topic, 0, 1)
		// franz-go retries NOT_ENOUGH_REPLICAS; when its retries run out before it sends again it
		// fails with ErrRecordRetries alone. The raw produce below checks the broker's own answer.
		if !errors.Is(err, kgo.ErrRecordRetries) {
			require.ErrorIs(t, err, kerr.NotEnoughReplicas, "%s: ISR below min.insync.replicas", topic)
		}
		leader := viewOf(t, cl, topic).Partitions[topic][0].Leader
		code := rawProduce(t, cl, leader, topic, 0, refusedValue, 3*time.Second)
		require.Equal(t, kerr.NotEnoughReplicas.Code, code, "%s: raw produce to leader %d: %v", topic, leader, kerr.ErrorForCode(code))
	}
	require.NoError(t, p.produce(testCtx(t, 30*time.Second), "minisr2", 0, 10), "ISR 2 >= min.insync.replicas 2")

	// Two brokers down: one replica left, below min.insync.replicas=2, and no controller.
	second := slices.DeleteFunc(cl.Running(), func(id int32) bool { return id == ctl })[0]
	require.NoError(t, cl.Kill(second))
	err = refused.produce(testCtx(t, 30*time.Second), "minisr2", 0, 1)
	require.Error(t, err, "acks=all acknowledged with one of three replicas alive")
	code := rawProduce(t, cl, ctl, "minisr2", 0, refusedValue, 3*time.Second)
	require.NotZero(t, code, "raw acks=all produce acknowledged with one of three replicas alive")
	st := "no metadata"
	if v, verr := cl.View(testCtx(t, 5*time.Second), ctl, "minisr2"); verr == nil {
		p := v.Partitions["minisr2"][0]
		st = fmt.Sprintf("leader %d epoch %d ISR %v, controller %d", p.Leader, p.LeaderEpoch, p.ISR, v.Controller)
	} else {
		st = verr.Error()
	}
	t.Logf("with one broker of three alive, kgo failed with %q; broker %d (%s) answers a raw acks=all produce with %v",
		err, ctl, st, kerr.ErrorForCode(code))

	for _, id := range []int32{first, second} {
		require.NoError(t, cl.Restart(testCtx(t, time.Minute), id))
	}
	require.NoError(t, cl.WaitHealthy(testCtx(t, time.Minute), time.Minute, "minisr2", "minisr3", "rf2"))
	for _, topic := range []string{"minisr2", "minisr3", "rf2"} {
		require.NoError(t, p.produce(testCtx(t, 30*time.Second), topic, 0, 10))
		requireAllAcknowledged(t, cl, topic, 1, p)
	}
}

// TestControllerFailover kills the active controller and sees another broker take over, fence the
// dead broker, and serve topic creation.
func TestControllerFailover(t *testing.T) {
	cl := startCluster(t)
	createTopic(t, cl, "before", 2, 3, 2)
	old, err := cl.Controller(testCtx(t, 10*time.Second))
	require.NoError(t, err)

	killedAt := time.Now()
	require.NoError(t, cl.Kill(old))
	var ctl int32
	require.NoError(t, chaos.WaitFor(testCtx(t, 20*time.Second), 20*time.Second, "a new controller",
		func(ctx context.Context) (bool, error) {
			ctl, err = cl.Controller(ctx)
			return err == nil && ctl != old, err
		}))
	t.Logf("controller %d killed; broker %d is controller %v later", old, ctl, time.Since(killedAt).Round(time.Millisecond))
	require.NoError(t, cl.WaitBrokers(testCtx(t, 20*time.Second), 20*time.Second), "dead controller fenced")

	adm := kadm.NewClient(newClient(t, cl))
	resp, err := adm.CreateTopic(testCtx(t, 20*time.Second), 1, 3, nil, "three-of-two")
	if err == nil {
		err = resp.Err
	}
	require.ErrorIs(t, err, kerr.InvalidReplicationFactor, "RF 3 with two live brokers")
	createTopic(t, cl, "after", 2, 2, 1)
	p := newProducer(t, newClient(t, cl), 0)
	require.NoError(t, p.produce(testCtx(t, 20*time.Second), "after", 0, 10))
	require.NoError(t, p.produce(testCtx(t, 20*time.Second), "before", 1, 10))

	require.NoError(t, cl.Restart(testCtx(t, time.Minute), old))
	require.NoError(t, cl.WaitHealthy(testCtx(t, time.Minute), time.Minute, "before", "after"))
	createTopic(t, cl, "rejoined", 2, 3, 2)
	require.NoError(t, p.produce(testCtx(t, 20*time.Second), "rejoined", 0, 10))
	requireAllAcknowledged(t, cl, "before", 2, p)
}

// TestRestartAllKeepsAcknowledged writes with acks=all, then takes the whole cluster down twice -
// SIGKILL on all three brokers, then SIGTERM - and finds every acknowledged record after each restart.
func TestRestartAllKeepsAcknowledged(t *testing.T) {
	cl := startCluster(t)
	const topic = "durable"
	createTopic(t, cl, topic, 3, 3, 2)
	p := newProducer(t, newClient(t, cl), 0)
	for part := int32(0); part < 3; part++ {
		require.NoError(t, p.produce(testCtx(t, 30*time.Second), topic, part, 300))
	}

	for _, how := range []string{"SIGKILL", "SIGTERM"} {
		for _, id := range cl.Running() {
			if how == "SIGKILL" {
				require.NoError(t, cl.Kill(id))
			} else {
				require.NoError(t, cl.Stop(id, 30*time.Second), "SIGTERM exits 0")
			}
		}
		for _, n := range cl.Nodes() {
			require.NoError(t, cl.Start(n.ID))
		}
		for _, n := range cl.Nodes() {
			require.NoError(t, cl.WaitReady(testCtx(t, time.Minute), n.ID))
		}
		require.NoError(t, cl.WaitHealthy(testCtx(t, time.Minute), time.Minute, topic), "after %s of all brokers", how)
		requireAllAcknowledged(t, cl, topic, 3, p)
		require.NoError(t, p.produce(testCtx(t, 30*time.Second), topic, 1, 50), "produce after %s of all brokers", how)
	}
	requireAllAcknowledged(t, cl, topic, 3, p)
}
