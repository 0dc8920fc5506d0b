package broker

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/broker/saslprincipal"
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
	user, pass, err := saslprincipal.Plain(in)
	if errors.Is(err, saslprincipal.ErrEmptyCredential) {
		return nil, false, authFailed(mechPlain)
	}
	if err != nil {
		return nil, false, &errAuthFailed{msg: err.Error()}
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

// scramExchange is the server side of SCRAM-SHA-256/512 (RFC 5802/7677) with the
// credentials from the metadata log. It is written here rather than taken from a
// library because Kafka's server accepts a client-final nonce that only ends with the
// server-first nonce, and librdkafka depends on that (it sends its own nonce twice);
// xdg-go/scram's server insists on equality.
type scramExchange struct {
	mech string
	img  func() *metadata.Image

	state       int // 0: client-first expected, 1: client-final expected
	user        string
	gs2Header   string
	clientFirst string // client-first-message-bare
	serverFirst string
	nonce       string
	cred        metadata.ScramCredential
}

func newSCRAMExchange(mech string, img func() *metadata.Image) *scramExchange {
	return &scramExchange{mech: mech, img: img}
}

func (s *scramExchange) step(in []byte) ([]byte, bool, error) {
	msg := string(in)
	switch s.state {
	case 0:
		first, err := saslprincipal.ParseSCRAMClientFirst(msg)
		if err != nil {
			return nil, false, &errAuthFailed{msg: err.Error()}
		}
		user := first.User
		s.gs2Header, s.clientFirst = first.GS2Header, first.Bare
		cred, ok := s.img().Scram(user, s.mech)
		if !ok {
			return nil, false, authFailed(s.mech)
		}
		snonce := make([]byte, 24)
		rand.Read(snonce)
		s.user, s.cred = user, cred
		s.nonce = first.Nonce + base64.RawStdEncoding.EncodeToString(snonce)
		s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) + ",i=" + strconv.Itoa(cred.Iterations)
		s.state = 1
		return []byte(s.serverFirst), false, nil

	case 1:
		i := strings.LastIndex(msg, ",p=")
		if i < 0 {
			return nil, false, &errAuthFailed{msg: "Invalid SCRAM client-final message"}
		}
		withoutProof, proofB64 := msg[:i], msg[i+3:]
		attrs, ok := saslprincipal.SCRAMAttrs(withoutProof)
		if !ok || len(attrs) < 2 || attrs[0][0] != "c" || attrs[1][0] != "r" {
			return nil, false, &errAuthFailed{msg: "Invalid SCRAM client-final message"}
		}
		if attrs[0][1] != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
			return nil, false, &errAuthFailed{msg: "Invalid SCRAM channel binding"}
		}
		// Kafka's ScramSaslServer checks endsWith, which librdkafka relies on.
		if !strings.HasSuffix(attrs[1][1], s.nonce) {
			return nil, false, &errAuthFailed{msg: "Invalid client nonce in the final client message."}
		}
		proof, err := base64.StdEncoding.DecodeString(proofB64)
		h := scramHash(s.mech)
		if err != nil || len(proof) != h().Size() {
			return nil, false, authFailed(s.mech)
		}
		authMessage := []byte(s.clientFirst + "," + s.serverFirst + "," + withoutProof)
		mac := hmac.New(h, s.cred.StoredKey)
		mac.Write(authMessage)
		clientSig := mac.Sum(nil)
		clientKey := make([]byte, len(proof))
		for k := range proof {
			clientKey[k] = proof[k] ^ clientSig[k]
		}
		sum := h()
		sum.Write(clientKey)
		if !hmac.Equal(sum.Sum(nil), s.cred.StoredKey) {
			return nil, false, authFailed(s.mech)
		}
		mac = hmac.New(h, s.cred.ServerKey)
		mac.Write(authMessage)
		s.state = 2
		return []byte("v=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))), true, nil
	}
	return nil, false, &errAuthFailed{msg: "SCRAM exchange already complete"}
}

func (s *scramExchange) principal() string  { return "User:" + s.user }
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
