package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// errBackendClosed is the error of requests that were in flight on a backend
// connection that failed or was closed.
var errBackendClosed = errors.New("backend connection closed")

// dialer opens authenticated connections to brokers as the gateway's own
// principal (clientsec: TLS, SASL PLAIN or SCRAM).
type dialer struct {
	tls      *tls.Config
	mech     sasl.Mechanism
	clientID string
	timeout  time.Duration
	maxFrame int32
}

// backend is one pipelined connection to a broker: requests are written in the
// order send is called and their responses, which a Kafka broker returns in
// request order, resolve the futures in the same order.
type backend struct {
	addr     string
	nc       net.Conn
	maxFrame int32
	expires  time.Time    // zero: never; else the session's re-authentication deadline
	as       *forwardedAs // non-nil: requests go in Envelopes as this client (auth.go)

	mu       sync.Mutex // guards everything below; held while writing a frame
	corr     int32
	inflight []*future
	err      error // set once the connection failed; sends fail fast
	w        *bufio.Writer
}

// future is a response a backend connection has yet to deliver.
type future struct {
	req   kmsg.Request
	inner kmsg.Request // the request inside req, an Envelope (auth.go)
	corr  int32
	done  chan struct{}
	resp  kmsg.Response
	err   error
	raw   []byte // resp's encoding (after the response header), which resp aliases; nil for an Envelope's
}

// wait returns the response or the connection's error, or ctx's error.
func (f *future) wait(ctx context.Context) (kmsg.Response, error) {
	select {
	case <-f.done:
		return f.resp, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dial connects to addr, performs TLS and SASL as configured, and starts the
// connection's reader.
func (d *dialer) dial(ctx context.Context, addr string) (*backend, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	nd := net.Dialer{}
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if d.tls != nil {
		cfg := d.tls.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS with %s: %w", addr, err)
		}
		nc = tc
	}
	b := &backend{addr: addr, nc: nc, maxFrame: d.maxFrame, w: bufio.NewWriterSize(nc, 64<<10)}
	r := bufio.NewReaderSize(nc, 64<<10)
	go b.readLoop(r)
	if d.mech != nil {
		lifetime, err := b.authenticate(ctx, d.mech)
		if err != nil {
			b.close(err)
			return nil, fmt.Errorf("SASL %s with %s: %w", d.mech.Name(), addr, err)
		}
		if lifetime > 0 {
			b.expires = time.Now().Add(lifetime * 8 / 10)
		}
	}
	return b, nil
}

// authenticate runs a SASL exchange (SaslHandshake v1, SaslAuthenticate v1) and
// returns the session lifetime the broker granted (0: unlimited).
func (b *backend) authenticate(ctx context.Context, mech sasl.Mechanism) (time.Duration, error) {
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = mech.Name()
	resp, err := b.roundTrip(ctx, hs)
	if err != nil {
		return 0, err
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.SASLHandshakeResponse).ErrorCode); err != nil {
		return 0, err
	}
	host, _, _ := net.SplitHostPort(b.addr)
	sess, msg, err := mech.Authenticate(ctx, host)
	if err != nil {
		return 0, err
	}
	for {
		auth := kmsg.NewPtrSASLAuthenticateRequest()
		auth.SetVersion(1)
		auth.SASLAuthBytes = msg
		resp, err := b.roundTrip(ctx, auth)
		if err != nil {
			return 0, err
		}
		ar := resp.(*kmsg.SASLAuthenticateResponse)
		if err := kerr.ErrorForCode(ar.ErrorCode); err != nil {
			return 0, err // the broker's message may name the user; the code is enough
		}
		done, next, err := sess.Challenge(ar.SASLAuthBytes)
		if err != nil {
			return 0, err
		}
		if done {
			return time.Duration(ar.SessionLifetimeMillis) * time.Millisecond, nil
		}
		msg = next
	}
}

// roundTrip sends req and waits for its response.
func (b *backend) roundTrip(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	f, err := b.send(req)
	if err != nil {
		return nil, err
	}
	return f.wait(ctx)
}

// usable reports whether new requests may be sent on the connection.
func (b *backend) usable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err == nil && (b.expires.IsZero() || time.Now().Before(b.expires))
}

// send writes req, at the version it carries, and returns the future of its
// response; nil for a Produce with acks=0, which has none.
func (b *backend) send(req kmsg.Request) (*future, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return nil, b.err
	}
	var inner kmsg.Request
	if b.as != nil {
		inner, req = req, b.as.wrap(req)
	}
	b.corr++
	buf := getBuf(256 + sizeHint(req))[:4]
	defer func() { putBuf(buf) }() // written through, or copied into b.w
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(b.corr))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(gatewayClientID)))
	buf = append(buf, gatewayClientID...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	var f *future
	if p, ok := req.(*kmsg.ProduceRequest); !ok || p.Acks != 0 {
		f = &future{req: req, inner: inner, corr: b.corr, done: make(chan struct{})}
		b.inflight = append(b.inflight, f)
	}
	ret := f
	if p, ok := inner.(*kmsg.ProduceRequest); ok && p.Acks == 0 {
		ret = nil // the Envelope is answered, the client is not
	}
	_ = b.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := b.w.Write(buf); err != nil {
		b.failLocked(err)
		return nil, err
	}
	if err := b.w.Flush(); err != nil {
		b.failLocked(err)
		return nil, err
	}
	return ret, nil
}

// gatewayClientID is the client id of the gateway's backend requests.
const gatewayClientID = "sluice-gateway"

func (b *backend) readLoop(r *bufio.Reader) {
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			b.close(err)
			return
		}
		n := int32(binary.BigEndian.Uint32(size[:]))
		if n < 4 || n > b.maxFrame {
			b.close(fmt.Errorf("backend %s: response of %d bytes", b.addr, n))
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			b.close(err)
			return
		}
		b.mu.Lock()
		if len(b.inflight) == 0 {
			b.mu.Unlock()
			b.close(fmt.Errorf("backend %s: response without a request", b.addr))
			return
		}
		f := b.inflight[0]
		b.inflight[0] = nil
		b.inflight = b.inflight[1:]
		b.mu.Unlock()
		if corr := int32(binary.BigEndian.Uint32(body)); corr != f.corr {
			f.err = fmt.Errorf("backend %s: response %d to request %d", b.addr, corr, f.corr)
			close(f.done)
			b.close(f.err)
			return
		}
		body = body[4:]
		if f.req.IsFlexible() && f.req.Key() != 18 {
			if len(body) < 1 {
				f.err = fmt.Errorf("backend %s: short response", b.addr)
				close(f.done)
				b.close(f.err)
				return
			}
			body = body[1:] // header tags, always empty from Sluice
		}
		resp := f.req.ResponseKind()
		if err := resp.ReadFrom(body); err != nil {
			f.err = fmt.Errorf("backend %s: decoding %s response: %w", b.addr, kmsg.NameForKey(f.req.Key()), err)
			close(f.done)
			b.close(f.err)
			return
		}
		f.resp, f.raw = resp, body
		if f.inner != nil {
			f.resp, f.err = unwrapResponse(f.inner, resp)
			f.raw = nil
		}
		close(f.done)
	}
}

// failed is the connection's error, nil while it works.
func (b *backend) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// close ends the connection, failing every request in flight with err.
func (b *backend) close(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failLocked(err)
}

func (b *backend) failLocked(err error) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %s: %v", errBackendClosed, b.addr, err)
		b.nc.Close()
	}
	for _, f := range b.inflight {
		f.err = b.err
		close(f.done)
	}
	b.inflight = nil
}

// retire closes the connection once the requests in flight on it are answered
// (a connection whose SASL session is about to expire is replaced, not cut).
func (b *backend) retire() {
	b.mu.Lock()
	var last *future
	if n := len(b.inflight); n > 0 {
		last = b.inflight[n-1]
	}
	b.mu.Unlock()
	if last == nil {
		b.close(errors.New("retired"))
		return
	}
	go func() {
		select {
		case <-last.done:
		case <-time.After(time.Minute):
		}
		b.close(errors.New("retired"))
	}()
}

// sizeHint is the bulk of a message's encoding (its record batches), so that
// the buffer it is encoded into is allocated once.
func sizeHint(m any) int {
	n := 0
	switch m := m.(type) {
	case *kmsg.ProduceRequest:
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				n += len(p.Records) + 32
			}
		}
	case *kmsg.FetchResponse:
		for _, t := range m.Topics {
			for _, p := range t.Partitions {
				n += len(p.RecordBatches) + 64
			}
		}
	}
	return n
}
