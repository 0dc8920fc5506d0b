package broker

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeUserScramCredentials: v0
//
// Behavior:
//   - Lists the SCRAM mechanisms and iteration counts of the named users (a null
//     list: every user), from this broker's copy of the metadata log. Never a salt
//     or key.
//   - A user without credentials gets RESOURCE_NOT_FOUND; a user named twice gets
//     DUPLICATE_RESOURCE, as in Kafka.
//   - Authorization: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED.

func init() { register(50, 0, 0, (*Broker).handleDescribeUserScramCredentials) }

// scramMechanismIDs are Kafka's ScramMechanism ids.
var scramMechanismIDs = map[string]int8{mechSCRAM256: 1, mechSCRAM512: 2}

func scramMechanismName(id int8) string {
	for name, i := range scramMechanismIDs {
		if i == id {
			return name
		}
	}
	return ""
}

func (b *Broker) handleDescribeUserScramCredentials(cc *conn, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !cc.authorizedCluster(kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	img := b.quorum.Image()
	var users []string
	if req.Users == nil {
		for u := range img.ScramCredentials {
			users = append(users, u)
		}
		sort.Strings(users)
	} else {
		for _, u := range req.Users {
			users = append(users, u.Name)
		}
	}
	count := map[string]int{}
	for _, u := range users {
		count[u]++
	}
	for _, u := range users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u
		creds, ok := img.ScramCredentials[u]
		switch {
		case count[u] > 1:
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = ptr("Cannot describe SCRAM credentials for the same user twice in a single request: " + u)
		case !ok:
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = ptr("Attempt to describe a user credential that does not exist: " + u)
		default:
			for _, mech := range []string{mechSCRAM256, mechSCRAM512} {
				if c, ok := creds[mech]; ok {
					ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
					ci.Mechanism, ci.Iterations = scramMechanismIDs[mech], int32(c.Iterations)
					r.CredentialInfos = append(r.CredentialInfos, ci)
				}
			}
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}
