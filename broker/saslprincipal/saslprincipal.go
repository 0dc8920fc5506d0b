// Package saslprincipal reads who a SASL client claims to be from its messages,
// the same way for the broker, which verifies the claim, and for `sluice
// gateway`, which relays the exchange to a broker and must then name the
// principal the broker authenticated: PLAIN's authcid, SCRAM's n= with its
// =2C/=3D escapes. The errors are the messages a failed authentication
// answers with; none says which part of a credential was wrong.
package saslprincipal

import (
	"bytes"
	"strings"
)

// Error is a failed authentication's message.
type Error string

func (e Error) Error() string { return string(e) }

// Plain splits a PLAIN (RFC 4616) message, authzid NUL user NUL password, and
// returns the user and password. An empty user or password, or an authzid
// other than the user, is an error.
func Plain(msg []byte) (user string, pass []byte, err error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", nil, Error("Invalid SASL/PLAIN message: expected authzid NUL user NUL password")
	}
	authzid, user, pass := string(parts[0]), string(parts[1]), parts[2]
	if user == "" || len(pass) == 0 {
		return "", nil, ErrEmptyCredential
	}
	if authzid != "" && authzid != user {
		return "", nil, Error("Authentication failed: client requested an authorization id that is different from username")
	}
	return user, pass, nil
}

// ErrEmptyCredential is Plain's error for an empty user or password, which the
// broker answers as invalid credentials.
const ErrEmptyCredential = Error("empty user or password")

// SCRAMClientFirst is a parsed SCRAM client-first message (RFC 5802).
type SCRAMClientFirst struct {
	GS2Header string // "n,," or "y,," with an optional a=authzid
	Bare      string // client-first-message-bare
	User      string // n=, unescaped
	Nonce     string // r=
}

// ParseSCRAMClientFirst parses a client-first message: gs2-header, n=user,
// r=nonce, no mandatory extension, and an authzid, if any, equal to the user.
func ParseSCRAMClientFirst(msg string) (SCRAMClientFirst, error) {
	const bad = Error("Invalid SCRAM client-first message")
	// gs2-header: "n,," or "y,," (no channel binding), optionally "a=authzid".
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 || (parts[0] != "n" && parts[0] != "y") {
		return SCRAMClientFirst{}, bad
	}
	attrs, ok := SCRAMAttrs(parts[2])
	if !ok || len(attrs) < 2 || attrs[0][0] != "n" || attrs[1][0] != "r" || attrs[1][1] == "" {
		return SCRAMClientFirst{}, bad
	}
	for _, a := range attrs[2:] {
		if a[0] == "m" {
			return SCRAMClientFirst{}, Error("Unsupported mandatory SCRAM extension")
		}
	}
	user, ok := SCRAMName(attrs[0][1])
	if !ok || user == "" {
		return SCRAMClientFirst{}, Error("Invalid SCRAM username")
	}
	if strings.HasPrefix(parts[1], "a=") {
		if authz, _ := SCRAMName(parts[1][2:]); authz != user {
			return SCRAMClientFirst{}, Error("Authentication failed: Client requested an authorization id that is different from username")
		}
	}
	return SCRAMClientFirst{GS2Header: parts[0] + "," + parts[1] + ",", Bare: parts[2], User: user, Nonce: attrs[1][1]}, nil
}

// SCRAMAttrs splits "k=v,k=v" keeping order; values may contain '='.
func SCRAMAttrs(s string) ([][2]string, bool) {
	var out [][2]string
	for _, f := range strings.Split(s, ",") {
		if len(f) < 2 || f[1] != '=' {
			return nil, false
		}
		out = append(out, [2]string{f[:1], f[2:]})
	}
	return out, true
}

// SCRAMName decodes a saslname ("=2C" is ',', "=3D" is '='); ok is false for any
// other '=' escape.
func SCRAMName(s string) (string, bool) {
	r := strings.NewReplacer("=2C", ",", "=3D", "=")
	out := r.Replace(s)
	return out, !strings.Contains(strings.NewReplacer("=2C", "", "=3D", "").Replace(s), "=")
}
