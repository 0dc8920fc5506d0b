package broker

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/xdg-go/scram"

	"github.com/sluicemq/sluice/broker/metadata"
)

// SASL mechanism names.
const (
	mechPlain       = "PLAIN"
	mechSCRAM256    = "SCRAM-SHA-256"
	mechSCRAM512    = "SCRAM-SHA-512"
	mechOAuthBearer = "OAUTHBEARER"
)

// Kafka's bounds for SCRAM iterations (ScramMechanism.minIterations, and the largest
// AlterUserScramCredentials accepts).
const (
	minSCRAMIterations     = 4096
	maxSCRAMIterations     = 16384
	defaultSCRAMIterations = 8192
)

// maxSASLMessage bounds one client SASL message; real ones are a few hundred bytes, a
// JWT a few KiB.
const maxSASLMessage = 64 << 10

// anonymous is the principal of a connection that has not authenticated.
const anonymous = "User:ANONYMOUS"

// errAuthFailed is a failed authentication: the client gets SASL_AUTHENTICATION_FAILED
// with this message and the connection is closed. It never says which part was wrong.
type errAuthFailed struct {
	msg string
}

func (e *errAuthFailed) Error() string { return e.msg }

func authFailed(mech string) error {
	return &errAuthFailed{msg: "Authentication failed during authentication due to invalid credentials with SASL mechanism " + mech}
}

// saslExchange is the server side of one SASL authentication.
type saslExchange interface {
	// step takes the client's next message and returns the server's answer; done is
	// set with the authenticated principal (and, for tokens, when it expires).
	step(in []byte) (out []byte, done bool, err error)
	principal() string
	// expires is when the credential stops being valid (zero: no limit of its own).
	expires() time.Time
}

// newSASLExchange starts an exchange for an enabled mechanism.
func (b *Broker) newSASLExchange(mech string) (saslExchange, error) {
	switch mech {
	case mechPlain:
		return &plainExchange{img: b.quorum.Image}, nil
	case mechSCRAM256, mechSCRAM512:
		return newSCRAMExchange(mech, b.quorum.Image), nil
	case mechOAuthBearer:
		return &oauthExchange{v: b.sec.oauth}, nil
	}
	return nil, fmt.Errorf("unsupported mechanism %q", mech)
}

// plainExchange checks a PLAIN (RFC 4616) message against the user's SCRAM
// credentials: there is one password store, the metadata log.
type plainExchange struct {
	img  func() *metadata.Image
	user string
}

func (p *plainExchange) step(in []byte) ([]byte, bool, error) {
	parts := bytes.Split(in, []byte{0})
	if len(parts) != 3 {
		return nil, false, &errAuthFailed{msg: "Invalid SASL/PLAIN message: expected authzid NUL user NUL password"}
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), parts[2]
	if user == "" || len(pass) == 0 {
		return nil, false, authFailed(mechPlain)
	}
	if authzid != "" && authzid != user {
		return nil, false, &errAuthFailed{msg: "Authentication failed: client requested an authorization id that is different from username"}
	}
	if !checkPassword(p.img(), user, pass) {
		return nil, false, authFailed(mechPlain)
	}
	p.user = user
	return nil, true, nil
}

func (p *plainExchange) principal() string  { return "User:" + p.user }
func (p *plainExchange) expires() time.Time { return time.Time{} }

// checkPassword reports whether pass matches any of the user's SCRAM credentials.
func checkPassword(img *metadata.Image, user string, pass []byte) bool {
	ok := false
	for mech, c := range img.ScramCredentials[user] {
		stored, _ := scramKeys(mech, pass, c.Salt, c.Iterations)
		ok = ok || hmac.Equal(stored, c.StoredKey)
	}
	return ok
}

func scramHash(mech string) func() hash.Hash {
	if mech == mechSCRAM512 {
		return sha512.New
	}
	return sha256.New
}

// scramKeys derives RFC 5802's StoredKey and ServerKey from a password.
func scramKeys(mech string, pass, salt []byte, iterations int) (stored, server []byte) {
	h := scramHash(mech)
	salted, err := pbkdf2.Key(h, string(pass), salt, iterations, h().Size())
	if err != nil { // only for FIPS-only modes with short keys
		return nil, nil
	}
	return scramKeysFromSalted(mech, salted)
}

// scramKeysFromSalted derives the keys from a SaltedPassword, which is what
// AlterUserScramCredentials carries.
func scramKeysFromSalted(mech string, salted []byte) (stored, server []byte) {
	h := scramHash(mech)
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	clientKey := mac.Sum(nil)
	sum := h()
	sum.Write(clientKey)
	stored = sum.Sum(nil)
	mac = hmac.New(h, salted)
	mac.Write([]byte("Server Key"))
	return stored, mac.Sum(nil)
}

// newSCRAMCredential makes a credential from a password with a fresh salt.
func newSCRAMCredential(mech string, pass []byte, iterations int) metadata.ScramCredential {
	salt := make([]byte, 32)
	rand.Read(salt)
	stored, server := scramKeys(mech, pass, salt, iterations)
	return metadata.ScramCredential{Salt: salt, StoredKey: stored, ServerKey: server, Iterations: iterations}
}

// scramExchange is SCRAM-SHA-256/512 (RFC 5802/7677) by xdg-go/scram, with the
// credentials from the metadata log.
type scramExchange struct {
	mech string
	conv *scram.ServerConversation
}

func newSCRAMExchange(mech string, img func() *metadata.Image) *scramExchange {
	gen := scram.SHA256
	if mech == mechSCRAM512 {
		gen = scram.SHA512
	}
	lookup := func(user string) (scram.StoredCredentials, error) {
		c, ok := img().Scram(user, mech)
		if !ok {
			return scram.StoredCredentials{}, errors.New("unknown user")
		}
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey:  c.StoredKey, ServerKey: c.ServerKey,
		}, nil
	}
	srv, _ := gen.NewServer(lookup) // only fails for a nil lookup
	return &scramExchange{mech: mech, conv: srv.NewConversation()}
}

func (s *scramExchange) step(in []byte) ([]byte, bool, error) {
	out, err := s.conv.Step(string(in))
	if err != nil {
		// The server-final message of a wrong proof carries e=invalid-proof, but
		// Kafka fails the exchange instead of sending it; so do we.
		return nil, false, authFailed(s.mech)
	}
	if s.conv.Done() {
		if !s.conv.Valid() {
			return nil, false, authFailed(s.mech)
		}
		return []byte(out), true, nil
	}
	return []byte(out), false, nil
}

func (s *scramExchange) principal() string  { return "User:" + s.conv.Username() }
func (s *scramExchange) expires() time.Time { return time.Time{} }

// oauthExchange is OAUTHBEARER (RFC 7628): the client's first message carries a JWT.
// A rejected token gets the RFC's JSON error as a challenge; the client answers %x01
// and the exchange then fails with that error in the message, as Kafka does.
type oauthExchange struct {
	v        *oauthValidator
	failed   string
	subject  string
	tokenExp time.Time
}

func (o *oauthExchange) step(in []byte) ([]byte, bool, error) {
	if o.failed != "" {
		return nil, false, &errAuthFailed{msg: "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER: " + o.failed}
	}
	token, err := parseOAuthBearerMessage(in)
	if err != nil {
		return nil, false, &errAuthFailed{msg: "Invalid OAUTHBEARER message: " + err.Error()}
	}
	if o.v == nil {
		return nil, false, authFailed(mechOAuthBearer)
	}
	sub, exp, err := o.v.validate(token, time.Now())
	if err != nil {
		o.failed = `{"status":"invalid_token"}`
		return []byte(o.failed), false, nil
	}
	o.subject, o.tokenExp = sub, exp
	return nil, true, nil
}

func (o *oauthExchange) principal() string  { return "User:" + o.subject }
func (o *oauthExchange) expires() time.Time { return o.tokenExp }

// parseOAuthBearerMessage returns the bearer token of an RFC 7628 client first message:
// gs2-header %x01 "auth=Bearer " token %x01 (key=value %x01)* %x01.
func parseOAuthBearerMessage(in []byte) (string, error) {
	s := string(in)
	header, rest, ok := strings.Cut(s, "\x01")
	if !ok || !strings.HasPrefix(header, "n,") && !strings.HasPrefix(header, "y,") {
		return "", errors.New("bad GS2 header")
	}
	if !strings.HasSuffix(rest, "\x01\x01") && rest != "\x01" {
		return "", errors.New("message is not terminated")
	}
	var token string
	for _, kv := range strings.Split(strings.TrimSuffix(rest, "\x01\x01"), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", errors.New("malformed key=value pair")
		}
		if k == "auth" {
			scheme, t, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || t == "" {
				return "", errors.New("auth is not a Bearer token")
			}
			token = t
		}
	}
	if token == "" {
		return "", errors.New("no auth=Bearer token")
	}
	return token, nil
}
