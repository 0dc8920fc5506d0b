package broker

import (
	"bytes"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// AlterUserScramCredentials: v0
//
// Behavior:
//   - Carried out by the controller, which records the credentials in the metadata
//     log; other brokers forward the request to it and answer once their own
//     metadata shows the change. Upsertions carry Kafka's salt and salted password;
//     only the derived StoredKey and ServerKey are kept.
//   - Per user, as in Kafka: UNSUPPORTED_SASL_MECHANISM for an unknown mechanism,
//     UNACCEPTABLE_CREDENTIAL for an empty name, an empty salt or salted password,
//     or iterations outside [4096, 16384], DUPLICATE_RESOURCE for a user with more
//     than one change of the same mechanism, RESOURCE_NOT_FOUND for deleting a
//     credential that does not exist. A user's changes apply together or not at all.
//   - Authorization: ALTER on the cluster, else every user gets
//     CLUSTER_AUTHORIZATION_FAILED.

func init() { register(51, 0, 0, (*Broker).handleAlterUserScramCredentials) }

func (b *Broker) handleAlterUserScramCredentials(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.AlterUserSCRAMCredentialsRequest)
	if !b.quorum.IsController() {
		resp, err := b.forwardToController(cc, req)
		if !errors.Is(err, errRetryLocally) {
			if err == nil {
				// Answer once this broker's own metadata shows the change, so the
				// client's next authentication here sees it.
				b.waitForImage(cc.ctx, func() bool {
					return scramApplied(b.quorum.Image(), req, resp.(*kmsg.AlterUserSCRAMCredentialsResponse))
				})
			}
			return resp, err
		}
	}
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationAlter) {
		return scramAlterDenied(req, resp), nil
	}

	// Users in request order, each with its changes and the first error found.
	type userChanges struct {
		changes []metadata.ScramChange
		err     error
	}
	var order []string
	byUser := map[string]*userChanges{}
	seen := map[[2]string]bool{}
	add := func(user, mech string, c metadata.ScramChange, err error) {
		u := byUser[user]
		if u == nil {
			u = &userChanges{}
			byUser[user] = u
			order = append(order, user)
		}
		if u.err != nil {
			return
		}
		if err == nil && seen[[2]string{user, mech}] {
			err = kafkaErr(kerr.DuplicateResource, "A user credential cannot be altered twice in the same request")
		}
		seen[[2]string{user, mech}] = true
		if err != nil {
			u.err, u.changes = err, nil
			return
		}
		u.changes = append(u.changes, c)
	}
	for _, d := range req.Deletions {
		mech := scramMechanismName(d.Mechanism)
		var err error
		switch {
		case d.Name == "":
			err = kafkaErr(kerr.UnacceptableCredential, "Username must not be empty")
		case mech == "":
			err = kafkaErr(kerr.UnsupportedSaslMechanism, "Unknown SCRAM mechanism")
		}
		add(d.Name, mech, metadata.ScramChange{User: d.Name, Mechanism: mech, Delete: true}, err)
	}
	for _, u := range req.Upsertions {
		mech := scramMechanismName(u.Mechanism)
		var err error
		var c metadata.ScramChange
		switch {
		case u.Name == "":
			err = kafkaErr(kerr.UnacceptableCredential, "Username must not be empty")
		case mech == "":
			err = kafkaErr(kerr.UnsupportedSaslMechanism, "Unknown SCRAM mechanism")
		case u.Iterations < minSCRAMIterations:
			err = kafkaErr(kerr.UnacceptableCredential, "Too few iterations")
		case u.Iterations > maxSCRAMIterations:
			err = kafkaErr(kerr.UnacceptableCredential, "Too many iterations")
		case len(u.Salt) == 0 || len(u.SaltedPassword) == 0 || len(u.Salt) > 1024 || len(u.SaltedPassword) > 1024:
			err = kafkaErr(kerr.UnacceptableCredential, "Salt and salted password must be non-empty and at most 1 KiB")
		default:
			stored, server := scramKeysFromSalted(mech, u.SaltedPassword)
			c = metadata.ScramChange{User: u.Name, Mechanism: mech, Credential: metadata.ScramCredential{
				Salt: u.Salt, StoredKey: stored, ServerKey: server, Iterations: int(u.Iterations)}}
		}
		add(u.Name, mech, c, err)
	}
	// Changes of users without errors go to the controller in one entry; the
	// controller may still refuse single ones (a deletion of a missing credential),
	// and then that user's other changes must not apply either: so each user's
	// changes are checked first.
	img := b.quorum.Image()
	var all []metadata.ScramChange
	owner := []string{}
	for _, user := range order {
		u := byUser[user]
		if u.err != nil {
			continue
		}
		for _, c := range u.changes {
			if _, ok := img.Scram(c.User, c.Mechanism); c.Delete && !ok {
				u.err = kafkaErr(kerr.ResourceNotFound, "Attempt to delete a user credential that does not exist")
				break
			}
		}
		if u.err != nil {
			continue
		}
		all = append(all, u.changes...)
		for range u.changes {
			owner = append(owner, user)
		}
	}
	if len(all) > 0 {
		errs, err := b.quorum.AlterScramCredentials(cc.ctx, all)
		if err != nil {
			errs = make([]error, len(all))
			for i := range errs {
				errs[i] = err
			}
		}
		for i, e := range errs {
			if e != nil && byUser[owner[i]].err == nil {
				byUser[owner[i]].err = e
			}
		}
	}
	for _, user := range order {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User = user
		if err := byUser[user].err; err != nil {
			r.ErrorCode, r.ErrorMessage = errCode(err), errMessage(err)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// scramApplied reports whether img shows the successful changes of a request.
func scramApplied(img *metadata.Image, req *kmsg.AlterUserSCRAMCredentialsRequest, resp *kmsg.AlterUserSCRAMCredentialsResponse) bool {
	failed := map[string]bool{}
	for _, r := range resp.Results {
		failed[r.User] = r.ErrorCode != 0
	}
	for _, d := range req.Deletions {
		if _, ok := img.Scram(d.Name, scramMechanismName(d.Mechanism)); ok && !failed[d.Name] {
			return false
		}
	}
	for _, u := range req.Upsertions {
		c, ok := img.Scram(u.Name, scramMechanismName(u.Mechanism))
		if !failed[u.Name] && (!ok || !bytes.Equal(c.Salt, u.Salt)) {
			return false
		}
	}
	return true
}
