package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupType is what ListGroups v5 reports for every group of this
// coordinator: only the classic protocol is implemented.
const groupType = "classic"

// authorizedGroupOperations is the KIP-430 bitfield of READ, DELETE and
// DESCRIBE, what a broker without an authorizer allows on a group.
const authorizedGroupOperations = 1<<3 | 1<<6 | 1<<8

// DescribeGroups serves DescribeGroups v0-v6. A group this coordinator does
// not know is reported as Dead, or GROUP_ID_NOT_FOUND from v6 (KIP-1043).
// Member metadata and assignments are only reported for a Stable group, as in
// Kafka. v3+ reports the authorized operations when asked, v4+ instance ids.
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDescribeGroupsResponseGroup()
		dg.Group = name
		if req.IncludeAuthorizedOperations {
			dg.AuthorizedOperations = authorizedGroupOperations
		}
		g, code := c.lockGroup(name, false)
		switch {
		case code != 0:
			dg.ErrorCode = code
		case g == nil:
			dg.State = stateDead.String()
			if req.Version >= 6 {
				dg.ErrorCode = kerr.GroupIDNotFound.Code
				dg.ErrorMessage = kmsg.StringPtr("group " + name + " not found")
			}
		default:
			g.describe(&dg)
			g.mu.Unlock()
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (g *group) describe(dg *kmsg.DescribeGroupsResponseGroup) {
	dg.State = g.state.String()
	dg.ProtocolType = g.protocolType
	stable := g.state == stateStable
	if stable {
		dg.Protocol = g.protocol
	}
	for _, m := range g.orderedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.ClientID, dm.ClientHost = m.id, m.clientID, m.clientHost
		if m.static() {
			dm.InstanceID = kmsg.StringPtr(m.instanceID)
		}
		if stable {
			dm.ProtocolMetadata = nonNil(m.metadataFor(g.protocol))
			dm.MemberAssignment = nonNil(m.assignment)
		} else {
			dm.ProtocolMetadata, dm.MemberAssignment = []byte{}, []byte{}
		}
		dg.Members = append(dg.Members, dm)
	}
}

// ListGroups serves ListGroups v0-v5 over every partition this coordinator
// owns. v4+ filters by state (case-insensitive, KIP-518) and v5+ by group
// type (KIP-848; every group here is "classic"). While a partition is still
// loading the answer is COORDINATOR_LOAD_IN_PROGRESS with the groups known so
// far, as in Kafka.
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	groups, loading := c.snapshotGroups()
	if loading {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	matches := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	var states, types []string
	if req.Version >= 4 {
		states = req.StatesFilter
	}
	if req.Version >= 5 {
		types = req.TypesFilter
	}
	if !matches(types, groupType) {
		return resp
	}
	for _, g := range groups {
		g.mu.Lock()
		st, ptype := g.state, g.protocolType
		g.mu.Unlock()
		if st == stateDead || !matches(states, st.String()) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = g.id, ptype, st.String(), groupType
		resp.Groups = append(resp.Groups, lg)
	}
	slices.SortFunc(resp.Groups, func(a, b kmsg.ListGroupsResponseGroup) int { return strings.Compare(a.Group, b.Group) })
	return resp
}

// DeleteGroups serves DeleteGroups v0-v2 (and v3's error messages). Only
// empty groups can be deleted (NON_EMPTY_GROUP otherwise); deleting one
// writes tombstones for its offsets and metadata before it is answered.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = name
		dg.ErrorCode = c.deleteGroup(ctx, name)
		if dg.ErrorCode != 0 && req.Version >= 3 {
			dg.ErrorMessage = kmsg.StringPtr(kerr.ErrorForCode(dg.ErrorCode).Error())
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

func (c *Coordinator) deleteGroup(ctx context.Context, name string) int16 {
	g, code := c.lockGroup(name, false)
	if code != 0 {
		return code
	}
	if g == nil {
		return kerr.GroupIDNotFound.Code
	}
	if g.state != stateEmpty {
		g.mu.Unlock()
		return kerr.NonEmptyGroup.Code
	}
	var recs []Record
	for topic, ps := range g.offsets {
		for p := range ps {
			recs = append(recs, Record{Key: offsetKey(g.id, topic, p)})
		}
	}
	if g.generation > 0 {
		recs = append(recs, Record{Key: groupKey(g.id)})
	}
	if len(recs) > 0 {
		if err := c.store.Append(ctx, g.partition, recs); err != nil {
			g.logWarn("failed to store group tombstones", "err", err)
			g.mu.Unlock()
			return appendCode(err, false)
		}
	}
	g.offsets = make(map[string]map[int32]offsetCommit)
	g.transition(stateDead)
	g.logInfo("group deleted")
	g.mu.Unlock()
	c.forget(g)
	return 0
}
