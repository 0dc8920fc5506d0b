package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clientConn is one client's connection. Requests are read in order; each is
// sent on to the brokers before the next is read (so a broker sees one client's
// requests in the order the client sent them, which idempotent producers rely
// on), and answered in order while later ones are already forwarded.
//
// Every client connection has backend connections of its own, one per broker it
// needs: the only state a client has at the gateway, gone with the connection.
type clientConn struct {
	g      *Gateway
	nc     net.Conn
	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *pending
	seq    int
	// single: the client is shown the cluster as one broker (view.go); set by
	// its ApiVersions request, read by the handlers, all on the read loop.
	single bool

	mu        sync.Mutex // guards backends and leftovers
	backends  map[backendKey]*backend
	leftovers map[tp]leftover // fetch answers that came after the client was answered

	auth *clientAuth // nil: clients are not authenticated (auth.go)

	produceOrder partitionOrder // order.go
}

// backendKey names one of a client's backend connections: fetches have their
// own, so that a long poll does not hold up the client's produce requests and
// heartbeats queued behind it on one connection (librdkafka sends everything
// for a broker on one connection).
type backendKey struct {
	id    int32
	fetch bool
}

// pending is a request being forwarded; done is closed when resp (nil: no
// answer, acks=0) or err (close the connection) is set. A request answered
// at once has resp and no done.
type pending struct {
	corr    int32
	key     int16
	flexHdr bool
	size    int64
	frame   []byte // the request's frame, reused once it is answered
	done    chan struct{}
	// finish, when set, is run by the writer when the request's turn comes
	// (instead of done): see start.
	finish func(context.Context) (kmsg.Response, error)
	resp   kmsg.Response
	err    error
	// closeAfter closes the connection once resp is written (a failed
	// authentication).
	closeAfter error
}

// handler starts serving a request: it sends what must be sent in request order
// and returns the rest of the work (waiting, merging, retrying), which runs
// concurrently with later requests.
type handler func(cc *clientConn, req kmsg.Request) (finish func(ctx context.Context) (kmsg.Response, error), err error)

func newClientConn(ctx context.Context, g *Gateway, nc net.Conn) *clientConn {
	ctx, cancel := context.WithCancel(ctx)
	return &clientConn{g: g, nc: nc, ctx: ctx, cancel: cancel, queue: make(chan *pending, g.cfg.MaxInflightPerConnection),
		backends: map[backendKey]*backend{}, single: g.cfg.OneBrokerView}
}

// serve reads and forwards requests until the client leaves or sends something
// the gateway must not accept; then the connection and its backend connections
// are closed.
func (cc *clientConn) serve() {
	defer func() {
		cc.cancel()
		cc.nc.Close()
		cc.mu.Lock()
		for _, b := range cc.backends {
			b.close(errors.New("client gone"))
		}
		cc.backends = nil
		cc.mu.Unlock()
		cc.releaseAuth()
	}()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		cc.writeLoop()
	}()
	err := cc.readLoop()
	// The client is gone (or sent what closes the connection): requests still
	// being forwarded end now rather than at the end of their long polls.
	cc.cancel()
	close(cc.queue)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && cc.ctx.Err() == nil {
		cc.g.logger.Info("closing client connection", "remote", cc.nc.RemoteAddr().String(), "err", err)
	}
	<-writerDone
}

func (cc *clientConn) readLoop() error {
	r := bufio.NewReaderSize(cc.nc, 64<<10)
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return err
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 8 || n > cc.frameLimit() {
			cc.g.metrics.badRequests.Inc()
			return fmt.Errorf("request frame of %d bytes (limit %d: socket.request.max.bytes, 512 KiB before authentication)", n, cc.frameLimit())
		}
		if err := cc.g.memory.Acquire(cc.ctx, int64(n)); err != nil {
			return err
		}
		frame := getBuf(int(n))[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			cc.g.memory.Release(int64(n))
			return err
		}
		p, err := cc.start(frame)
		if err != nil {
			cc.g.memory.Release(int64(n))
			cc.g.metrics.badRequests.Inc()
			return err
		}
		p.frame = frame
		select {
		case cc.queue <- p:
		case <-cc.ctx.Done():
			return cc.ctx.Err()
		}
		if p.closeAfter != nil {
			return p.closeAfter
		}
	}
}

// parseRequest decodes a request frame (after its size): the header and the
// body, at the version the client chose.
func parseRequest(frame []byte) (req kmsg.Request, corr int32, err error) {
	rd := kbin.Reader{Src: frame}
	key, version := rd.Int16(), rd.Int16()
	corr = rd.Int32()
	rd.NullableString() // client id: the gateway's backend requests carry their own
	if err := rd.Complete(); err != nil {
		return nil, 0, fmt.Errorf("request header: %w", err)
	}
	req = kmsg.RequestForKey(key)
	if req == nil {
		return nil, corr, fmt.Errorf("unknown API key %d", key)
	}
	req.SetVersion(version)
	if version < 0 || version > req.MaxVersion() {
		return req, corr, errUnsupportedVersion
	}
	if req.IsFlexible() {
		kmsg.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return nil, 0, fmt.Errorf("request header tags: %w", err)
		}
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return nil, 0, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	return req, corr, nil
}

var errUnsupportedVersion = errors.New("unsupported version")

// start decodes a frame and starts forwarding it.
func (cc *clientConn) start(frame []byte) (*pending, error) {
	req, corr, err := parseRequest(frame)
	if req != nil && req.Key() == 18 {
		if _, hi, _ := cc.g.versions(18); req.GetVersion() > hi {
			err = errUnsupportedVersion
		}
	}
	if errors.Is(err, errUnsupportedVersion) && req.Key() == 18 {
		// Kafka answers an ApiVersions it cannot parse with UNSUPPORTED_VERSION
		// and its versions, at v0, so the client can pick one.
		resp := cc.g.apiVersions()
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		return &pending{corr: corr, key: 18, size: int64(len(frame)), resp: resp}, nil
	}
	if err != nil {
		return nil, err
	}
	if cc.auth != nil {
		if p, handled, err := cc.authGate(req, corr, frame); handled {
			return p, err
		}
	}
	key := req.Key()
	r := routes[key]
	lo, hi, ok := cc.g.versions(key)
	if r == nil || !ok || req.GetVersion() < lo || req.GetVersion() > hi {
		return nil, fmt.Errorf("%s v%d is not served by the gateway", kmsg.NameForKey(key), req.GetVersion())
	}
	finish, err := r(cc, req)
	if err != nil {
		return nil, err
	}
	p := &pending{corr: corr, key: key, flexHdr: req.IsFlexible() && key != 18, size: int64(len(frame))}
	if key == 0 {
		// A produce request's answer is awaited by the writer itself when
		// its turn comes: one goroutine and one handover less per request,
		// which is what an acks=1 producer's rate is made of (its window
		// over the round trip). Nothing is lost by waiting in order, since
		// the answers are written in order anyway, and a produce request
		// does no work of its own while it waits (retries aside).
		p.finish = finish
		return p, nil
	}
	// The rest (waiting, merging, retrying) of other requests runs
	// concurrently with later requests: a fetch's merge running on the
	// writer instead consumed slower in two sessions of bench/gateway.sh.
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		p.resp, p.err = finish(cc.ctx)
		cc.g.metrics.requests.WithLabelValues(kmsg.NameForKey(key), result(p.err)).Inc()
	}()
	return p, nil
}

// writeLoop answers requests in the order they came.
func (cc *clientConn) writeLoop() {
	w := bufio.NewWriterSize(cc.nc, 64<<10)
	failed := false
	// flushed sends the answers written so far before the writer waits for
	// the next one: an answer must not sit in the buffer until the answers
	// after it are ready, or a client that pipelines (5 produce requests per
	// broker) gets them in bursts and its window stalls.
	flushed := func() {
		if !failed && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				failed = true
				cc.nc.Close()
			}
		}
	}
	for p := range cc.queue {
		if p.finish != nil {
			flushed()
			p.resp, p.err = p.finish(cc.ctx)
			cc.g.metrics.requests.WithLabelValues(kmsg.NameForKey(p.key), result(p.err)).Inc()
		} else if p.done != nil {
			select {
			case <-p.done:
			default:
				flushed()
				<-p.done
			}
		}
		cc.g.memory.Release(p.size)
		putBuf(p.frame) // the request (whose records alias it) is done with
		if failed {
			continue
		}
		if p.err != nil {
			if cc.ctx.Err() == nil {
				cc.g.logger.Info("closing client connection", "remote", cc.nc.RemoteAddr().String(), "api", kmsg.NameForKey(p.key), "err", p.err)
			}
			failed = true
			cc.nc.Close()
			continue
		}
		if p.resp == nil {
			continue // acks=0
		}
		var buf, raw []byte
		if r, ok := p.resp.(rawResponse); ok {
			raw = r.encoded // written as it is, after the header: no copy
		}
		buf = getBuf(256 + sizeHint(p.resp))[:4]
		buf = binary.BigEndian.AppendUint32(buf, uint32(p.corr))
		if p.flexHdr {
			buf = append(buf, 0)
		}
		if raw == nil {
			buf = p.resp.AppendTo(buf)
		}
		binary.BigEndian.PutUint32(buf, uint32(len(buf)+len(raw)-4))
		_ = cc.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := w.Write(buf)
		if err == nil && raw != nil {
			_, err = w.Write(raw)
		}
		putBuf(buf) // written through, or copied into w
		if err == nil && (len(cc.queue) == 0 || p.closeAfter != nil) {
			err = w.Flush()
		}
		if err != nil || p.closeAfter != nil {
			failed = true
			cc.nc.Close()
		}
	}
	if !failed {
		_ = w.Flush()
	}
}

// backend returns this client's connection to broker id at addr, dialing it if
// there is none or the one there is has failed or moved.
func (cc *clientConn) backend(ctx context.Context, k backendKey, addr string) (*backend, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.backends == nil {
		return nil, net.ErrClosed
	}
	if b := cc.backends[k]; b != nil {
		if b.addr == addr && b.usable() {
			return b, nil
		}
		b.retire()
		delete(cc.backends, k)
	}
	b, err := cc.g.dialer.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	b.as = cc.forwardedAs()
	cc.backends[k] = b
	return b, nil
}

// sendTo sends req to broker id, returning the future of its response (nil for
// acks=0).
func (cc *clientConn) sendTo(id int32, addr string, req kmsg.Request) (*future, error) {
	ctx, cancel := context.WithTimeout(cc.ctx, 10*time.Second)
	defer cancel()
	b, err := cc.backend(ctx, backendKey{id, req.Key() == 1}, addr)
	if err != nil {
		return nil, err
	}
	return b.send(req)
}

// await waits for a future sent at start, recording the backend latency.
func (cc *clientConn) await(ctx context.Context, f *future, start time.Time) (kmsg.Response, error) {
	resp, err := f.wait(ctx)
	cc.g.metrics.backend.WithLabelValues(kmsg.NameForKey(f.req.Key())).Observe(time.Since(start).Seconds())
	return resp, err
}

// bufPools recycle request frames and encoding buffers, which at full speed
// are allocated (and zeroed) for every request otherwise. Pool i holds buffers
// of capacity at least 1<<i, so a 1 MiB produce frame is not handed a 4 KiB
// buffer (and a new one allocated) because the last one put back was small.
var bufPools [maxPooledShift + 1]sync.Pool

// minPooledShift and maxPooledShift bound the pooled sizes: 4 KiB to 8 MiB (a
// rare huge buffer is not held by a pool).
const minPooledShift, maxPooledShift = 12, 23

// getBuf returns an empty buffer of capacity at least n.
func getBuf(n int) []byte {
	shift := max(bits.Len(uint(max(n, 1)-1)), minPooledShift)
	if shift > maxPooledShift {
		return make([]byte, 0, n)
	}
	if v, ok := bufPools[shift].Get().(*[]byte); ok {
		return (*v)[:0]
	}
	return make([]byte, 0, 1<<shift)
}

// putBuf returns a buffer nothing refers to any more.
func putBuf(b []byte) {
	shift := bits.Len(uint(cap(b))) - 1 // cap >= 1<<shift
	if b == nil || shift < minPooledShift || shift > maxPooledShift {
		return
	}
	b = b[:0]
	bufPools[shift].Put(&b)
}
