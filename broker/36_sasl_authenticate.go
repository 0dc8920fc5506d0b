package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate: v0-2
//
// Behavior:
//   - Carries the SASL exchange after SaslHandshake v1: PLAIN (checked against the
//     user's SCRAM credentials), SCRAM-SHA-256/512 (credentials in the metadata log)
//     and OAUTHBEARER (JWT against the JWKS, issuer, audience and expiry).
//   - A failure answers SASL_AUTHENTICATION_FAILED with a message that never says
//     which part was wrong, logs the remote address (rate-limited), counts
//     sluice_broker_authentication_failures_total, and closes the connection.
//   - v1+: SessionLifetimeMs is the time left before the client must re-authenticate
//     (connections.max.reauth.ms, or an OAUTHBEARER token's expiry if sooner; KIP-368).

func init() { register(36, 0, 2, (*Broker).handleSaslAuthenticate) }

func (b *Broker) handleSaslAuthenticate(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if cc.listener == nil || !cc.listener.sasl() || cc.saslEx == nil || cc.sasl == saslRaw {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake v1 naming the mechanism"
		resp.ErrorMessage = &msg
		cc.closeAfterSend = errors.New(msg)
		return resp, nil
	}
	out, _, lifetime, err := cc.saslStep(req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		cc.closeAfterSend = err
		return resp, nil
	}
	resp.SASLAuthBytes = out
	if req.Version >= 1 {
		resp.SessionLifetimeMillis = lifetime.Milliseconds()
	}
	return resp, nil
}
