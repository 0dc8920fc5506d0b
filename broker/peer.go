package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// peer is a connection to another broker's Kafka listener for broker-to-broker
// requests: replica fetches, forwarded admin requests, registration, heartbeats
// and ISR changes. Requests on one peer are sent one at a time; the versions used
// are fixed by the caller, since both ends are Sluice.
type peer struct {
	addr     string
	clientID string
	// dial connects and authenticates (interbroker.go); lifetime is how long the
	// authenticated session lasts (0: unlimited), so the peer redials before the
	// other broker would close it for want of re-authentication.
	dial    func(ctx context.Context, addr string) (nc net.Conn, lifetime time.Duration, err error)
	expires time.Time

	mu   sync.Mutex
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

func newPeer(addr, clientID string) *peer { return &peer{addr: addr, clientID: clientID} }

// request sends req and decodes the response. Any error closes the connection, so
// the next request dials again.
func (p *peer) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil && !p.expires.IsZero() && time.Now().After(p.expires) {
		p.nc.Close()
		p.nc = nil
	}
	if p.nc == nil {
		var nc net.Conn
		var lifetime time.Duration
		var err error
		if p.dial != nil {
			nc, lifetime, err = p.dial(ctx, p.addr)
		} else {
			d := net.Dialer{Timeout: 2 * time.Second}
			nc, err = d.DialContext(ctx, "tcp", p.addr)
		}
		if err != nil {
			return nil, err
		}
		p.nc, p.r = nc, bufio.NewReaderSize(nc, 64<<10)
		p.expires = time.Time{}
		if lifetime > 0 {
			p.expires = time.Now().Add(lifetime * 8 / 10)
		}
	}
	resp, err := p.roundTrip(ctx, req)
	if err != nil {
		p.nc.Close()
		p.nc = nil
	}
	return resp, err
}

func (p *peer) roundTrip(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	nc := p.nc // the request's error path may clear p.nc before the AfterFunc runs
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	p.corr++
	buf := make([]byte, 4, 256)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(p.corr))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(p.clientID)))
	buf = append(buf, p.clientID...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := p.nc.Write(buf); err != nil {
		return nil, err
	}

	var size [4]byte
	if _, err := io.ReadFull(p.r, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(p.r, body); err != nil {
		return nil, err
	}
	if len(body) < 4 || int32(binary.BigEndian.Uint32(body)) != p.corr {
		return nil, fmt.Errorf("peer %s: response does not match request %d", p.addr, p.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if req.IsFlexible() && req.Key() != 18 {
		if len(body) < 1 {
			return nil, fmt.Errorf("peer %s: short response", p.addr)
		}
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("peer %s: decoding %s response: %w", p.addr, kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// close ends the connection.
func (p *peer) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nc != nil {
		p.nc.Close()
		p.nc = nil
	}
}
