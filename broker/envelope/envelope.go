// Package envelope encodes and decodes the Envelope API (key 58) that carries a
// client's request with the client's principal and address: a broker forwarding
// an admin request to the controller, and `sluice gateway` forwarding the
// requests of the clients it authenticated. Both ends are Sluice, so the
// principal travels as its Kafka string ("User:alice").
package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxPrincipal bounds the principal an Envelope may carry.
const MaxPrincipal = 1024

// Wrap returns an Envelope v0 carrying req (with client id clientID and
// correlation id 0) as principal from host (an IP address; anything else is
// left out).
func Wrap(req kmsg.Request, clientID, principal, host string) *kmsg.EnvelopeRequest {
	buf := make([]byte, 0, 64+len(clientID))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(clientID)))
	buf = append(buf, clientID...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	env := kmsg.NewPtrEnvelopeRequest()
	env.RequestData = req.AppendTo(buf)
	env.RequestPrincipal = []byte(principal)
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		env.ClientHostAddress = ip
	}
	return env
}

// ErrNoResponse is Unwrap's error for an Envelope whose inner request has no
// response (a Produce with acks=0): the response data is empty.
var ErrNoResponse = errors.New("the forwarded request has no response")

// Unwrap returns the response to req inside an Envelope response: the
// Envelope's own error, or ErrNoResponse when there is no inner response.
func Unwrap(req kmsg.Request, er *kmsg.EnvelopeResponse) (kmsg.Response, error) {
	if err := kerr.ErrorForCode(er.ErrorCode); err != nil {
		return nil, err
	}
	body := er.ResponseData
	if len(body) == 0 {
		return nil, ErrNoResponse
	}
	if len(body) < 4 {
		return nil, errors.New("short envelope response")
	}
	body = body[4:]
	if req.IsFlexible() {
		if len(body) < 1 {
			return nil, errors.New("short envelope response")
		}
		body = body[1:]
	}
	inner := req.ResponseKind()
	if err := inner.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decoding forwarded %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return inner, nil
}
