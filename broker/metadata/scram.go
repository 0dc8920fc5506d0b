package metadata

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Endpoint is one advertised listener of a broker, Kafka's BrokerRegistration listener.
type Endpoint struct {
	// Name is the listener name, e.g. "CLIENT" or "BROKER" (Kafka's `listeners` names).
	Name string `json:"name"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	// SecurityProtocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	SecurityProtocol string `json:"security_protocol"`
}

// Endpoint returns the broker's address on the named listener. A broker registered without
// listeners answers its Host and Port for every name; otherwise ok is false when it has no such
// listener, and clients must not be told about it on that listener (Kafka leaves it out).
func (b Broker) Endpoint(listener string) (host string, port int32, ok bool) {
	if len(b.Listeners) == 0 {
		return b.Host, b.Port, true
	}
	for _, l := range b.Listeners {
		if l.Name == listener {
			return l.Host, l.Port, true
		}
	}
	return "", 0, false
}

// Addr is host:port of Endpoint(listener), or "" without such a listener.
func (b Broker) Addr(listener string) string {
	host, port, ok := b.Endpoint(listener)
	if !ok {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// ScramCredential is one user's credential for one SCRAM mechanism (RFC 5802): the salt, the
// iteration count and the two keys derived from the password. The password itself is never stored.
type ScramCredential struct {
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	Iterations int    `json:"iterations"`
}

// ScramChange upserts (Delete false) or deletes one user's credential for one mechanism.
type ScramChange struct {
	User      string
	Mechanism string
	Delete    bool
	// Credential is the new credential of an upsert.
	Credential ScramCredential
}

type scramCredentialRecord struct {
	User       string          `json:"user"`
	Mechanism  string          `json:"mechanism"`
	Credential ScramCredential `json:"credential"`
}

type removeScramCredentialRecord struct {
	User      string `json:"user"`
	Mechanism string `json:"mechanism"`
}

func (scramCredentialRecord) recordType() string       { return "scram_credential" }
func (removeScramCredentialRecord) recordType() string { return "remove_scram_credential" }

func init() {
	recordKinds["scram_credential"] = struct {
		newRec  func() record
		version int
	}{func() record { return &scramCredentialRecord{} }, 1}
	recordKinds["remove_scram_credential"] = struct {
		newRec  func() record
		version int
	}{func() record { return &removeScramCredentialRecord{} }, 1}
}

// ScramMechanisms are the mechanisms a credential may be stored for.
var ScramMechanisms = []string{"SCRAM-SHA-256", "SCRAM-SHA-512"}

func validScramMechanism(m string) bool {
	return m == ScramMechanisms[0] || m == ScramMechanisms[1]
}

// Scram returns the user's credential for mechanism and whether it exists.
func (img *Image) Scram(user, mechanism string) (ScramCredential, bool) {
	c, ok := img.ScramCredentials[user][mechanism]
	return c, ok
}

func (b *builder) applyScram(t time.Time, rec record) error {
	if !b.scramCloned {
		b.next.ScramCredentials = maps.Clone(b.next.ScramCredentials)
		if b.next.ScramCredentials == nil {
			b.next.ScramCredentials = map[string]map[string]ScramCredential{}
		}
		b.scramCloned = true
	}
	switch r := rec.(type) {
	case scramCredentialRecord:
		if r.User == "" || !validScramMechanism(r.Mechanism) || r.Credential.Iterations <= 0 || len(r.Credential.Salt) == 0 {
			return fmt.Errorf("invalid %s credential for user %q", r.Mechanism, r.User)
		}
		m := maps.Clone(b.next.ScramCredentials[r.User])
		if m == nil {
			m = map[string]ScramCredential{}
		}
		m[r.Mechanism] = r.Credential
		b.next.ScramCredentials[r.User] = m
		b.event(t, EventScramChanged, -1, "", -1, fmt.Sprintf("user %q: %s set (%d iterations)", r.User, r.Mechanism, r.Credential.Iterations))
	case removeScramCredentialRecord:
		if _, ok := b.next.ScramCredentials[r.User][r.Mechanism]; !ok {
			return fmt.Errorf("user %q has no %s credential", r.User, r.Mechanism)
		}
		m := maps.Clone(b.next.ScramCredentials[r.User])
		delete(m, r.Mechanism)
		if len(m) == 0 {
			delete(b.next.ScramCredentials, r.User)
		} else {
			b.next.ScramCredentials[r.User] = m
		}
		b.event(t, EventScramChanged, -1, "", -1, fmt.Sprintf("user %q: %s deleted", r.User, r.Mechanism))
	}
	return nil
}

// AlterScramCredentials applies changes as one metadata entry (Kafka's AlterUserScramCredentials) and
// returns one error per change, nil where it applied. A change that fails its checks (a deletion of a
// credential that does not exist: RESOURCE_NOT_FOUND; an unknown mechanism: UNSUPPORTED_SASL_MECHANISM;
// a malformed credential: UNACCEPTABLE_CREDENTIAL) is left out and the others still apply. The error
// is non-nil only when nothing could be proposed (not the controller, the proposal failed).
func (q *Quorum) AlterScramCredentials(ctx context.Context, changes []ScramChange) ([]error, error) {
	if _, err := q.lockController(); err != nil {
		return nil, err
	}
	defer q.ctlMu.Unlock()
	img := q.Image()
	errs := make([]error, len(changes))
	var recs []record
	for i, c := range changes {
		switch {
		case c.User == "":
			errs[i] = kafkaErrf(kerr.UnacceptableCredential, "Username must not be empty.")
		case !validScramMechanism(c.Mechanism):
			errs[i] = kafkaErrf(kerr.UnsupportedSaslMechanism, "Unknown SCRAM mechanism %q.", c.Mechanism)
		case c.Delete:
			if _, ok := img.Scram(c.User, c.Mechanism); !ok {
				errs[i] = kafkaErrf(kerr.ResourceNotFound, "Attempt to delete a user credential that does not exist.")
				continue
			}
			recs = append(recs, removeScramCredentialRecord{User: c.User, Mechanism: c.Mechanism})
		case c.Credential.Iterations <= 0 || len(c.Credential.Salt) == 0 || len(c.Credential.StoredKey) == 0 || len(c.Credential.ServerKey) == 0:
			errs[i] = kafkaErrf(kerr.UnacceptableCredential, "Malformed SCRAM credential.")
		default:
			recs = append(recs, scramCredentialRecord{User: c.User, Mechanism: c.Mechanism, Credential: c.Credential})
		}
	}
	if len(recs) == 0 {
		return errs, nil
	}
	if _, err := q.proposeLocked(ctx, recs); err != nil {
		return nil, err
	}
	return errs, nil
}

// bootstrapScram writes the configured initial SCRAM credentials when the log has none at all, so a
// deleted administrator is not brought back by a restart of a cluster that had credentials.
func (q *Quorum) bootstrapScram(ctx context.Context) {
	if len(q.cfg.InitialScramCredentials) == 0 || len(q.Image().ScramCredentials) > 0 {
		return
	}
	errs, err := q.AlterScramCredentials(ctx, q.cfg.InitialScramCredentials)
	if err == nil {
		for _, e := range errs {
			if e != nil {
				err = e
				break
			}
		}
	}
	if err != nil {
		q.log.Error("writing the initial SCRAM credentials", "err", err)
		return
	}
	for _, c := range q.cfg.InitialScramCredentials {
		q.log.Info("initial SCRAM credential written", "user", c.User, "mechanism", c.Mechanism)
	}
}
