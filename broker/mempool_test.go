package broker

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/internal/testutil"
)

// liveHeap is the heap in use after two collections (the second empties the
// sync.Pool victim caches).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHalfSentFramesBoundedByPool repeats the attack of issue 11: many
// connections each announce a 100 MiB frame and send all of it but the last
// byte. The broker's heap must stay within queued.max.request.bytes plus a
// fixed margin while a well-behaved producer keeps producing, and the memory
// must come back when the attackers go. Not parallel: it measures the
// process's heap.
func TestHalfSentFramesBoundedByPool(t *testing.T) {
	const (
		pool     = 140 << 20
		frameLen = 100 << 20
		attack   = 100
		margin   = 64 << 20 // goroutines, bufio readers, the producer, the test's own buffers
	)
	tb := startTestBroker(t, t.TempDir(), func(c *Config) {
		c.QueuedMaxRequestBytes = pool
		c.SocketRequestMaxBytes = frameLen
		// Connections waiting for the pool read nothing, so they see their
		// client go only when a frame holding memory passes this deadline.
		c.RequestReadTimeoutMs = 15000
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	good := newClient(t, tb.Addr(), kgo.DefaultProduceTopic("steady"), kgo.AllowAutoTopicCreation())
	require.NoError(t, good.ProduceSync(ctx, kgo.StringRecord("warm up")).FirstErr())
	base := liveHeap()

	start := time.Now()
	chunk := make([]byte, 1<<20)
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for range attack {
		c, err := net.DialTimeout("tcp", tb.Addr(), 10*time.Second)
		require.NoError(t, err)
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetWriteDeadline(time.Now().Add(100 * time.Second))
			hdr := binary.BigEndian.AppendUint32(nil, frameLen)
			hdr = binary.BigEndian.AppendUint16(hdr, 0) // Produce v9
			hdr = binary.BigEndian.AppendUint16(hdr, 9)
			if _, err := c.Write(hdr); err != nil {
				return
			}
			left := frameLen - 4 - 1 // all but the last byte
			for left > 0 {
				n, err := c.Write(chunk[:min(left, len(chunk))])
				left -= n
				if err != nil {
					return
				}
			}
		}()
	}

	// The pool fills up and connections wait for it.
	testutil.WaitFor(t, 60*time.Second, "the request pool's large-frame share to fill", func() bool {
		used, waiting := tb.reqPool.stats()
		return used >= pool/4*3-(4<<20) && waiting >= attack/2
	})
	t.Logf("pool full after %s", time.Since(start))
	// A well-behaved producer keeps producing meanwhile.
	for i := range 50 {
		rec := kgo.SliceRecord(make([]byte, 10<<10))
		require.NoError(t, good.ProduceSync(ctx, rec).FirstErr(), "record %d while under attack", i)
	}
	t.Logf("produced under attack after %s", time.Since(start))
	heap := liveHeap()
	used, waiting := tb.reqPool.stats()
	t.Logf("under attack: heap %d MiB above baseline (pool %d MiB, margin %d MiB); pool used %d MiB, %d connections waiting",
		(int64(heap)-int64(base))>>20, pool>>20, margin>>20, used>>20, waiting)
	require.Less(t, int64(heap)-int64(base), int64(pool+margin), "heap beyond queued.max.request.bytes plus the margin")

	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	testutil.WaitFor(t, 60*time.Second, "the pool emptied", func() bool {
		used, _ := tb.reqPool.stats()
		return used == 0
	})
	after := liveHeap()
	t.Logf("after the attack: heap %d MiB above baseline", (int64(after)-int64(base))>>20)
	require.Less(t, int64(after)-int64(base), int64(margin), "memory back to the baseline")
	require.NoError(t, good.ProduceSync(ctx, kgo.StringRecord("after")).FirstErr())
}

// TestTinyRawSASLTokens: after a v0 SaslHandshake, frames are raw SASL tokens,
// which may be shorter than an API key; reading them must not panic the broker.
func TestTinyRawSASLTokens(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	b, _ := startSecure(t, saslSSLConfig(pki, "PLAIN"))
	for _, token := range [][]byte{{}, {0}} {
		c, err := tls.Dial("tcp", b.Addr(), pki.clientTLS(t, ""))
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = 0, "PLAIN"
		_, err = c.Write(frame(17, 0, 1, hs.AppendTo(nil)))
		require.NoError(t, err)
		var size [4]byte
		_, err = io.ReadFull(c, size[:])
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(size[:])))
		require.NoError(t, err)
		_, err = c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(token))))
		require.NoError(t, err)
		_, err = c.Write(token)
		require.NoError(t, err)
		io.Copy(io.Discard, c) // refused: the connection is closed
	}
	// The broker is still there.
	c, err := tls.Dial("tcp", b.Addr(), pki.clientTLS(t, ""))
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = c.Write(frame(18, 0, 2, nil))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 8))
	require.NoError(t, err)
}
