package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/group"
)

// conn is one client connection. Requests are read and handled in order, as Kafka
// does; encoded responses go to a writer goroutine so the next request is read while
// the previous response is being written.
type conn struct {
	b      *Broker
	nc     net.Conn
	ctx    context.Context
	remote string

	clientID string
	id       uint64 // unique among this broker's connections

	// heartbeats is set once a BrokerHeartbeat of broker heartbeatOf
	// succeeded on this connection (see connEnded).
	heartbeats  bool
	heartbeatOf int32

	// listener is the listener the connection came in on; principal is who it
	// authenticated as, in Kafka's form: "User:alice", the mapped certificate subject
	// for mTLS, "User:ANONYMOUS" before or without authentication.
	listener  *listener
	principal string
	connAuth  // SASL state (auth.go)
	// host is the client's IP address, which ACL hosts match; filled on first use.
	host string

	swMu            sync.Mutex // the software fields are read by metrics scrapes
	softwareName    string
	softwareVersion string

	timing *requestTiming // of the request being handled

	out chan outFrame

	// fetchBuf holds the record bytes of the fetch being answered; reqBuf
	// the frame of a small Produce or Fetch request. Both are reused because a
	// connection handles one request at a time and nothing keeps them past
	// the encoding of its response.
	fetchBuf []byte
	reqBuf   []byte

	r *bufio.Reader // requests; only readLoop and watchPeer read it
	// muteUntil is when a throttled connection may read its next request.
	muteUntil time.Time
	// mutationThrottle is the controller mutation quota's throttle time for
	// the request being handled.
	mutationThrottle time.Duration
	quotaCache       quotaCache
	tenantCache      tenantCache // tenant.go
	// gatewayInner is the client a gateway's Envelopes on this connection
	// come from (gateway_envelope.go).
	gatewayInner *conn
}

// serve starts the goroutines of a new connection.
func (b *Broker) serve(ctx context.Context, nc net.Conn, l *listener) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	cc := &conn{b: b, nc: nc, ctx: ctx, remote: nc.RemoteAddr().String(), out: make(chan outFrame, 64),
		listener: l, principal: anonymous, id: b.connSeq.Add(1)}
	b.connMu.Lock()
	b.conns[cc] = struct{}{}
	b.connMu.Unlock()
	b.connWG.Add(2)
	var writerDone sync.WaitGroup
	writerDone.Add(1)
	started := make(chan struct{}) // the TLS handshake is over
	go func() {
		defer b.connWG.Done()
		defer writerDone.Done()
		<-started
		cc.writeLoop()
	}()
	go func() {
		defer b.connWG.Done()
		err := cc.start()
		close(started)
		if err == nil {
			err = cc.readLoop()
		}
		b.connEnded(cc, err)
		close(cc.out)
		writerDone.Wait()
		nc.Close()
		b.connMu.Lock()
		delete(b.conns, cc)
		b.connMu.Unlock()
		b.connLimit.release(nc, l.brokerOnly())
		cc.releaseTenantConn()
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
			b.logger.Info("closing connection", "remote", cc.remote, "client_id", cc.clientID, "err", err)
		}
	}()
}

// closeConns closes every open connection; their goroutines then end.
func (b *Broker) closeConns() {
	b.connMu.Lock()
	defer b.connMu.Unlock()
	for cc := range b.conns {
		cc.nc.Close()
	}
}

// outFrame is an encoded response on its way to the socket.
type outFrame struct {
	buf    []byte
	timing *requestTiming
}

func (cc *conn) writeLoop() {
	w := bufio.NewWriterSize(cc.nc, 64<<10)
	failed := false
	for f := range cc.out {
		if failed {
			continue
		}
		_, err := w.Write(f.buf)
		putRespBuf(f.buf)
		if err == nil && len(cc.out) == 0 {
			err = w.Flush()
		}
		if err != nil {
			failed = true
			cc.nc.Close()
			continue
		}
		if f.timing != nil {
			cc.b.metrics.observeSent(f.timing, time.Now())
		}
	}
}

// software is the client software name and version from ApiVersions v3+.
func (cc *conn) software() (name, version string) {
	cc.swMu.Lock()
	defer cc.swMu.Unlock()
	return cc.softwareName, cc.softwareVersion
}

// readLoop reads and handles requests until the connection fails or a request
// cannot be answered; it always returns the reason.
func (cc *conn) readLoop() (err error) {
	defer func() {
		// Handlers recover in handle; this is for the reading itself.
		if p := recover(); p != nil {
			err = cc.b.handlerPanicked(cc, -1, -1, p)
		}
	}()
	cc.r = bufio.NewReaderSize(cc.nc, 64<<10)
	r := cc.r
	var sizeBuf [4]byte
	for {
		if err := cc.mute(); err != nil {
			return err
		}
		cc.nc.SetReadDeadline(time.Now().Add(time.Duration(cc.b.cfg.ConnectionsMaxIdleMs) * time.Millisecond))
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no request for connections.max.idle.ms=%d", cc.b.cfg.ConnectionsMaxIdleMs)
			}
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if (size < 8 && cc.sasl != saslRaw) || size < 0 || size > cc.b.cfg.SocketRequestMaxBytes {
			return fmt.Errorf("request size %d outside [8, socket.request.max.bytes=%d]", size, cc.b.cfg.SocketRequestMaxBytes)
		}
		fr, err := cc.readFrame(r, int(size))
		if err != nil {
			return err
		}
		err = cc.handle(fr.body, time.Now())
		fr.done(cc)
		if err != nil {
			return err
		}
	}
}

// handle decodes one request frame, runs its handler and queues the response.
// A panic while handling is recovered: it is logged and counted, and only this
// connection is closed.
func (cc *conn) handle(frame []byte, read time.Time) (err error) {
	if cc.sasl == saslRaw {
		return cc.handleRawSASL(frame)
	}
	rd := kbin.Reader{Src: frame}
	key := rd.Int16()
	version := rd.Int16()
	correlationID := rd.Int32()
	clientID := rd.NullableString()
	if err := rd.Complete(); err != nil {
		return fmt.Errorf("malformed request header: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = cc.b.handlerPanicked(cc, key, version, p)
		}
	}()
	if clientID != nil {
		cc.clientID = *clientID
	}
	if key < 0 || int(key) >= len(apis) || apis[key] == nil {
		return fmt.Errorf("unsupported api key %d", key)
	}
	api := apis[key]
	if err := cc.gate(key); err != nil {
		return err
	}
	if version < api.min || version > api.max {
		if key == 18 {
			return cc.send(correlationID, unsupportedApiVersions(), false, nil)
		}
		return fmt.Errorf("unsupported version %d of %s", version, kmsg.NameForKey(key))
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&rd)
		if err := rd.Complete(); err != nil {
			return fmt.Errorf("malformed request header tags: %w", err)
		}
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return fmt.Errorf("malformed %s v%d request: %w", kmsg.NameForKey(key), version, err)
	}
	t := &requestTiming{api: kmsg.NameForKey(key), read: read, started: time.Now()}
	cc.timing = t
	if cc.b.beforeHandle != nil {
		cc.b.beforeHandle(cc, req)
	}
	resp, err := cc.b.brokerOnlyGuard(cc, req)
	if resp == nil && err == nil {
		resp, err = cc.handleWithMutationQuota(api, req)
	}
	cc.timing = nil
	t.handled = time.Now()
	if err != nil {
		return err
	}
	cc.throttleResponse(req, resp, len(frame), t)
	cc.afterTenantRequest(req, resp, len(frame)) // tenant.go
	cc.b.metrics.observeHandled(t, version, resp)
	if resp == nil {
		return nil
	}
	if err := cc.send(correlationID, resp, req.IsFlexible() && key != 18, t); err != nil {
		return err
	}
	return cc.closeAfterSend
}

// watchPeer reports, while a request waits (a fetch held for MinBytes), that
// the client sent its next request or closed the connection: the channel is
// closed then. Requests of a connection are answered in order, so a LeaveGroup
// or OffsetCommit sent behind a long-poll fetch (clients that share one
// connection for both) would otherwise wait for the fetch's max wait, and a
// closed connection would keep its fetch parked. stop must be called before the
// handler returns; readLoop then reads on as before.
func (cc *conn) watchPeer() (peer <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := cc.r.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			close(ch)
		}
	}()
	return ch, func() {
		cc.nc.SetReadDeadline(time.Unix(1, 0))
		<-done
		cc.nc.SetReadDeadline(time.Time{})
		if cc.r.Buffered() == 0 {
			// Drop the error Peek left in the reader (the deadline, or an
			// EOF the next read sees again from the socket).
			cc.r.Read(nil)
		}
	}
}

// waited adds time spent waiting (for replicas or data) to the request being
// handled, Kafka's remote time.
func (cc *conn) waited(d time.Duration) {
	if cc.timing != nil {
		cc.timing.remote += d
	}
}

// send encodes a response with its header and queues it for the writer.
func (cc *conn) send(correlationID int32, resp kmsg.Response, flexibleHeader bool, t *requestTiming) error {
	buf := getRespBuf(256 + responseSizeHint(resp))[:8]
	binary.BigEndian.PutUint32(buf[4:], uint32(correlationID))
	if flexibleHeader {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	select {
	case cc.out <- outFrame{buf, t}:
		return nil
	case <-cc.ctx.Done():
		return cc.ctx.Err()
	}
}

// responseSizeHint is the record bytes a response carries, so its buffer is sized
// once instead of growing (and copying) while the batches are appended.
func responseSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 0
	for i := range fr.Topics {
		for j := range fr.Topics[i].Partitions {
			n += len(fr.Topics[i].Partitions[j].RecordBatches) + 64
		}
	}
	return n
}

// groupCtx is the connection's context carrying what the group coordinator
// reports about members: the client id and host.
func (cc *conn) groupCtx() context.Context {
	host, _, _ := net.SplitHostPort(cc.remote)
	return group.WithClientInfo(cc.ctx, cc.clientID, "/"+host)
}

// respBufs recycles large response buffers (fetch responses): allocating them
// anew cost more in zeroing and garbage collection than the copy they hold.
var respBufs sync.Pool

const minPooledResp = 64 << 10

func getRespBuf(size int) []byte {
	if size >= minPooledResp {
		if p, ok := respBufs.Get().(*[]byte); ok && cap(*p) >= size {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, size)
}

func putRespBuf(b []byte) {
	if cap(b) >= minPooledResp && cap(b) <= 64<<20 {
		b = b[:0]
		respBufs.Put(&b)
	}
}
