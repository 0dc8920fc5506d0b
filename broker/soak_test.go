package broker

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

var soakDuration = flag.Duration("soak", 5*time.Second, "how long TestSoakMutatedFrames sends mutated frames (make fuzz runs it longer)")

// clusterInternalAPIs are sent well-formed only, naming a broker that does not
// exist: a mutated heartbeat could otherwise name this broker and fence it,
// which is a question of authorization, not of surviving bad input.
var clusterInternalAPIs = map[int16]bool{56: true, 62: true, 63: true, 67: true}

// TestSoakMutatedFrames sends random and mutated frames of every API key at a
// broker while a producer writes acknowledged records beside them. Afterwards
// every acknowledged record must be readable and the heap back at its baseline.
// Not parallel: it measures the process's heap.
func TestSoakMutatedFrames(t *testing.T) {
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.SocketRequestMaxBytes = 8 << 20
		c.QueuedMaxRequestBytes = 64 << 20
		c.RequestReadTimeoutMs = 2000
	})
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+2*time.Minute)
	defer cancel()
	const topic = "soak-acked"
	producer := newClient(t, tb.Addr(), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation())
	require.NoError(t, producer.ProduceSync(ctx, kgo.StringRecord("first")).FirstErr())
	base := liveHeap()

	type ack struct {
		partition int32
		offset    int64
	}
	acked := map[ack]string{}
	var ackMu sync.Mutex
	soakCtx, stopSoak := context.WithTimeout(ctx, *soakDuration)
	defer stopSoak()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; soakCtx.Err() == nil; i++ {
			v := fmt.Sprintf("record-%d", i)
			res := producer.ProduceSync(ctx, kgo.StringRecord(v))
			if r, err := res.First(); err == nil {
				ackMu.Lock()
				acked[ack{r.Partition, r.Offset}] = v
				ackMu.Unlock()
			}
		}
	}()

	var tried, answered, closed atomic.Int64
	apiKeys := []int16{-1, 99, 1000} // unknown keys too
	for _, a := range registeredAPIs() {
		apiKeys = append(apiKeys, a.key)
	}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for soakCtx.Err() == nil {
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", tb.Addr(), 5*time.Second); err != nil {
						continue
					}
				}
				key := apiKeys[rng.IntN(len(apiKeys))]
				data := mutatedFrame(rng, key)
				tried.Add(1)
				c.SetDeadline(time.Now().Add(250 * time.Millisecond))
				if _, err := c.Write(data); err != nil {
					closed.Add(1)
					c.Close()
					c = nil
					continue
				}
				var size [4]byte
				if _, err := io.ReadFull(c, size[:]); err != nil {
					// Closed by the broker, or no answer in time (acks=0,
					// a half frame, a long poll): start afresh either way.
					closed.Add(1)
					c.Close()
					c = nil
					continue
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
					closed.Add(1)
					c.Close()
					c = nil
					continue
				}
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d frames tried over %s: %d answered, %d closed the connection or went unanswered; %d records acknowledged",
		tried.Load(), *soakDuration, answered.Load(), closed.Load(), len(acked))
	require.Positive(t, answered.Load())
	require.NotEmpty(t, acked)

	// Every acknowledged record is readable.
	consumer := newClient(t, tb.Addr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	missing := len(acked)
	for missing > 0 {
		fs := consumer.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "%d acknowledged records not read", missing)
		for _, err := range fs.Errors() {
			require.NoError(t, err.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := acked[ack{r.Partition, r.Offset}]; ok {
				require.Equal(t, v, string(r.Value), "record at %d/%d", r.Partition, r.Offset)
				delete(acked, ack{r.Partition, r.Offset})
				missing--
			}
		})
	}
	consumer.Close()

	// Memory is back at the baseline once the connections are gone.
	testutil.WaitFor(t, 30*time.Second, "the request pool emptied", func() bool {
		used, _ := tb.reqPool.stats()
		return used == 0
	})
	after := liveHeap()
	t.Logf("heap %d KiB above the baseline afterwards", (int64(after)-int64(base))>>10)
	require.Less(t, int64(after)-int64(base), int64(32<<20), "memory back to the baseline")
}

// mutatedFrame is a request frame of key: a well-formed request at a random
// version (sometimes one not served), then, most of the time, mutated: bytes
// flipped, cut short, extended with garbage, or a size prefix that lies.
func mutatedFrame(rng *rand.Rand, key int16) []byte {
	var body []byte
	version := int16(rng.IntN(20))
	if req := kmsg.RequestForKey(key); req != nil {
		version = int16(rng.IntN(int(req.MaxVersion()) + 2))
		req.SetVersion(version)
		if clusterInternalAPIs[key] {
			switch r := req.(type) {
			case *kmsg.BrokerHeartbeatRequest:
				r.BrokerID = 999
			case *kmsg.BrokerRegistrationRequest:
				r.BrokerID = 999
			case *kmsg.AllocateProducerIDsRequest:
				r.BrokerID = 999
			case *kmsg.AlterPartitionRequest:
				r.BrokerID = 999
			}
		}
		if req.IsFlexible() {
			body = append(body, 0)
		}
		body = req.AppendTo(body)
	} else {
		body = make([]byte, rng.IntN(64))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
	}
	f := frame(key, version, rng.Int32(), body)
	if clusterInternalAPIs[key] {
		return f
	}
	switch rng.IntN(6) {
	case 0: // as is
	case 1: // flip bytes after the size prefix
		for range 1 + rng.IntN(8) {
			i := 4 + rng.IntN(len(f)-4)
			f[i] ^= byte(1 + rng.IntN(255))
		}
	case 2: // cut short, keeping the size prefix consistent
		n := 4 + rng.IntN(len(f)-4)
		f = f[:n]
		binary.BigEndian.PutUint32(f, uint32(n-4))
	case 3: // garbage appended
		for range rng.IntN(256) {
			f = append(f, byte(rng.Uint32()))
		}
		binary.BigEndian.PutUint32(f, uint32(len(f)-4))
	case 4: // a size prefix that lies (larger: the broker waits for bytes that never come)
		binary.BigEndian.PutUint32(f, uint32(len(f)-4+rng.IntN(1<<16)))
	case 5: // random arrays sizes: overwrite a 4-byte field with a huge count
		if len(f) > 16 {
			i := 12 + rng.IntN(len(f)-15)
			binary.BigEndian.PutUint32(f[i:], uint32(rng.Int32()))
		}
	}
	return f
}
