package broker

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake: v0-1
//
// Behavior:
//   - Served on SASL_PLAINTEXT and SASL_SSL listeners; elsewhere ILLEGAL_SASL_STATE.
//   - Names the mechanism of the exchange that follows and lists the listener's
//     enabled mechanisms (sasl.enabled.mechanisms); an unknown one gets
//     UNSUPPORTED_SASL_MECHANISM.
//   - v0: the exchange continues in raw SASL frames (no Kafka header); v1: in
//     SaslAuthenticate requests.
//   - On an authenticated connection, starts re-authentication (KIP-368, v1 only)
//     with the same mechanism.

func init() { register(17, 0, 1, (*Broker).handleSaslHandshake) }

func (b *Broker) handleSaslHandshake(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	l := cc.listener
	if l == nil || !l.sasl() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	resp.SupportedMechanisms = slices.Clone(l.mechanisms)
	if !slices.Contains(l.mechanisms, req.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, nil
	}
	switch cc.sasl {
	case saslNeedHandshake:
	case saslDone:
		// Re-authentication needs SaslAuthenticate v1+, so handshake v1, and keeps
		// the mechanism.
		if req.Version < 1 || req.Mechanism != cc.saslMech {
			resp.ErrorCode = kerr.IllegalSaslState.Code
			return resp, nil
		}
		cc.reauthenticating = true
	default:
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	ex, err := b.newSASLExchange(req.Mechanism)
	if err != nil {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		return resp, nil
	}
	cc.saslMech, cc.saslEx = req.Mechanism, ex
	if req.Version == 0 {
		cc.sasl = saslRaw
	} else if cc.sasl != saslDone {
		cc.sasl = saslNeedAuthenticate
	}
	return resp, nil
}
