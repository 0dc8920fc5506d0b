package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sync"
	"time"
)

// requestPool is the broker-wide budget of request frame memory, Kafka's
// queued.max.request.bytes. A connection takes memory as a frame's bytes arrive
// and returns it once the request is handled; when the pool is empty it waits,
// and since it reads nothing meanwhile, TCP slows its client down.
//
// Frames larger than smallFrameBytes may only use three quarters of the pool, so
// that many large frames sent slowly (or never finished) cannot stop ordinary
// requests.
type requestPool struct {
	mu      sync.Mutex
	changed *sync.Cond
	size    int64 // the whole pool
	large   int64 // what frames larger than smallFrameBytes may hold together
	used    int64
	usedBig int64 // held by frames larger than smallFrameBytes
	waiting int   // connections waiting for memory
}

func newRequestPool(size int64) *requestPool {
	p := &requestPool{size: size, large: size / 4 * 3}
	p.changed = sync.NewCond(&p.mu)
	return p
}

// acquire takes n bytes for a frame (big: larger than smallFrameBytes), waiting
// until they are free or ctx is done.
func (p *requestPool) acquire(ctx context.Context, n int64, big bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fits(n, big) {
		p.take(n, big)
		return nil
	}
	// sync.Cond has no context; a done context broadcasts so the waiter sees it.
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.changed.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.waiting++
	defer func() { p.waiting-- }()
	for !p.fits(n, big) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.changed.Wait()
	}
	p.take(n, big)
	return nil
}

func (p *requestPool) fits(n int64, big bool) bool {
	if big && p.usedBig+n > p.large {
		return false
	}
	return p.used+n <= p.size
}

func (p *requestPool) take(n int64, big bool) {
	p.used += n
	if big {
		p.usedBig += n
	}
}

// release returns n bytes taken with the same big.
func (p *requestPool) release(n int64, big bool) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.used -= n
	if big {
		p.usedBig -= n
	}
	p.changed.Broadcast()
	p.mu.Unlock()
}

// stats returns the bytes in use and the connections waiting, for metrics.
func (p *requestPool) stats() (used int64, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.waiting
}

// reqFrame is a request frame read under the request pool.
type reqFrame struct {
	body []byte
	held int64 // pool bytes taken for body
	big  bool
	// pooled bodies go back to frameBufs once handled; small frames use the
	// connection's own buffer instead.
	pooled bool
}

// initialFrameChunk is the first allocation for a frame larger than the
// connection's own buffer; the buffer doubles as data arrives.
const initialFrameChunk = 64 << 10

// frameBufs recycle frame buffers by power-of-two capacity from 64 KiB to
// 1 MiB: the buffers a frame outgrew, and the frames of Produce and Fetch
// requests, whose handlers keep no reference into them. Larger buffers are
// left to the garbage collector, so the pool bounds what frames hold.
var frameBufs [21]sync.Pool

// readFrame reads a frame of size bytes after its size prefix. Memory is taken
// from the request pool as the frame grows, never up front; while the pool is
// empty nothing is read. The frame must arrive within request.read.timeout.ms,
// time spent waiting for the pool excluded.
func (cc *conn) readFrame(r *bufio.Reader, size int) (reqFrame, error) {
	timeout := time.Duration(cc.b.cfg.RequestReadTimeoutMs) * time.Millisecond
	deadline := time.Now().Add(timeout)
	cc.nc.SetReadDeadline(deadline)
	if size <= initialFrameChunk {
		if cap(cc.reqBuf) < size {
			cc.reqBuf = make([]byte, size) // at most 64 KiB per connection, outside the pool
		}
		body := cc.reqBuf[:size]
		if _, err := io.ReadFull(r, body); err != nil {
			return reqFrame{}, frameReadErr(err, cc.b.cfg.RequestReadTimeoutMs)
		}
		// Only Produce and Fetch are known to keep no reference into their
		// frame after the response is encoded (group requests keep member
		// metadata, for one); every other request gets a frame of its own.
		// (A raw SASL token may be shorter than an API key.)
		if len(body) < 2 || cc.sasl == saslRaw {
			body = append([]byte(nil), body...)
		} else if key := int16(binary.BigEndian.Uint16(body)); key != 0 && key != 1 {
			body = append([]byte(nil), body...)
		}
		return reqFrame{body: body}, nil
	}

	f := reqFrame{big: size > smallFrameBytes}
	var buf []byte
	for len(buf) < size {
		if len(buf) == cap(buf) {
			grow := max(2*cap(buf), initialFrameChunk)
			if grow > size && f.big {
				grow = size // a large frame's last step takes no more than it needs
			}
			if err := cc.growFrame(&f, int64(grow-cap(buf)), &deadline); err != nil {
				f.pooled = buf != nil
				f.done(cc)
				return reqFrame{}, err
			}
			nb := append(getFrameBuf(grow), buf...)
			putFrameBuf(buf)
			buf = nb
			f.body = buf // so that done releases the newest buffer
		}
		n, err := io.ReadFull(r, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+n]
		if err != nil {
			f.pooled = true // nothing refers to it
			f.done(cc)
			return reqFrame{}, frameReadErr(err, cc.b.cfg.RequestReadTimeoutMs)
		}
	}
	f.body = buf
	key := int16(binary.BigEndian.Uint16(buf))
	f.pooled = (key == 0 || key == 1) && cc.sasl != saslRaw
	return f, nil
}

// growFrame takes n more bytes for a frame from the request pool. Waiting for
// its first bytes does not count against the frame's read deadline, so a
// connection is slowed down, not dropped, while the pool is empty; a frame that
// already holds memory must get the rest before its deadline, so frames waiting
// on each other's memory cannot wait forever.
func (cc *conn) growFrame(f *reqFrame, n int64, deadline *time.Time) error {
	if f.held == 0 {
		start := time.Now()
		if err := cc.b.reqPool.acquire(cc.ctx, n, f.big); err != nil {
			return err
		}
		if waited := time.Since(start); waited > time.Millisecond {
			*deadline = deadline.Add(waited)
			cc.nc.SetReadDeadline(*deadline)
		}
	} else {
		ctx, cancel := context.WithDeadline(cc.ctx, *deadline)
		err := cc.b.reqPool.acquire(ctx, n, f.big)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("request frame not received within request.read.timeout.ms=%d while waiting for queued.max.request.bytes", cc.b.cfg.RequestReadTimeoutMs)
		}
		if err != nil {
			return err
		}
	}
	f.held += n
	return nil
}

// frameClass is the frameBufs index of capacity n, or -1 if n is not pooled.
func frameClass(n int) int {
	c := bits.Len(uint(n)) - 1
	if n <= 0 || 1<<c != n || c < 16 || c >= len(frameBufs) {
		return -1
	}
	return c
}

// getFrameBuf returns an empty buffer of capacity n, recycled when one is free.
func getFrameBuf(n int) []byte {
	if c := frameClass(n); c >= 0 {
		if p, ok := frameBufs[c].Get().(*[]byte); ok {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, n)
}

func putFrameBuf(b []byte) {
	if c := frameClass(cap(b)); c >= 0 {
		b = b[:0]
		frameBufs[c].Put(&b)
	}
}

// done returns the frame's memory to the request pool once it is handled.
func (f *reqFrame) done(cc *conn) {
	cc.b.reqPool.release(f.held, f.big)
	if f.pooled {
		putFrameBuf(f.body)
	}
	*f = reqFrame{}
}

func frameReadErr(err error, timeoutMs int64) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("request frame not received within request.read.timeout.ms=%d", timeoutMs)
	}
	return err
}
