package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The authorization of the group APIs, as Kafka's KafkaApis does it. Each handler
// calls one of these before or after the group coordinator.

// authorizeOffsetCommit checks READ on the group and on each topic. A denied group
// answers every partition with GROUP_AUTHORIZATION_FAILED (resp non-nil); denied
// topics are taken out of req and answered with TOPIC_AUTHORIZATION_FAILED in
// denied, to be appended to the coordinator's answer.
func (cc *conn) authorizeOffsetCommit(req *kmsg.OffsetCommitRequest) (resp *kmsg.OffsetCommitResponse, denied []kmsg.OffsetCommitResponseTopic) {
	if cc.b.authorizer() == nil {
		return nil, nil
	}
	groupOK := cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, req.Group)
	kept := req.Topics[:0]
	for _, rt := range req.Topics {
		if groupOK && cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic) {
			kept = append(kept, rt)
			continue
		}
		code := kerr.TopicAuthorizationFailed.Code
		if !groupOK {
			code = kerr.GroupAuthorizationFailed.Code
		}
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		denied = append(denied, st)
	}
	req.Topics = kept
	if !groupOK || (len(kept) == 0 && len(denied) > 0) {
		resp = req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Topics = denied
		return resp, nil
	}
	return nil, denied
}

// filterOffsetFetch applies DESCRIBE on the groups and topics to an OffsetFetch
// answer: a denied group gets GROUP_AUTHORIZATION_FAILED and no offsets; a denied
// topic is left out when all topics were asked for, else its partitions get
// TOPIC_AUTHORIZATION_FAILED.
func (cc *conn) filterOffsetFetch(req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse) {
	if cc.b.authorizer() == nil {
		return
	}
	if req.Version < 8 {
		if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, req.Group) {
			*resp = *req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			return
		}
		kept := resp.Topics[:0]
		for _, t := range resp.Topics {
			if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic) {
				if req.Topics == nil {
					continue
				}
				for i := range t.Partitions {
					p := &t.Partitions[i]
					p.Offset, p.LeaderEpoch, p.Metadata = -1, -1, nil
					p.ErrorCode = kerr.TopicAuthorizationFailed.Code
				}
			}
			kept = append(kept, t)
		}
		resp.Topics = kept
		return
	}
	for gi := range resp.Groups {
		g := &resp.Groups[gi]
		if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			g.Topics, g.ErrorCode = nil, kerr.GroupAuthorizationFailed.Code
			continue
		}
		all := true
		for _, rg := range req.Groups {
			if rg.Group == g.Group {
				all = rg.Topics == nil
			}
		}
		kept := g.Topics[:0]
		for _, t := range g.Topics {
			if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, t.Topic) {
				if all {
					continue
				}
				for i := range t.Partitions {
					p := &t.Partitions[i]
					p.Offset, p.LeaderEpoch, p.Metadata = -1, -1, nil
					p.ErrorCode = kerr.TopicAuthorizationFailed.Code
				}
			}
			kept = append(kept, t)
		}
		g.Topics = kept
	}
}

// filterDescribeGroups applies DESCRIBE on each group to a DescribeGroups answer
// and fills KIP-430's authorized operations when asked for.
func (cc *conn) filterDescribeGroups(req *kmsg.DescribeGroupsRequest, resp *kmsg.DescribeGroupsResponse) {
	for i := range resp.Groups {
		g := &resp.Groups[i]
		if !cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			name := g.Group
			*g = kmsg.NewDescribeGroupsResponseGroup()
			g.Group, g.ErrorCode = name, kerr.GroupAuthorizationFailed.Code
			continue
		}
		if req.Version >= 3 && req.IncludeAuthorizedOperations {
			g.AuthorizedOperations = cc.authorizedOperations(kmsg.ACLResourceTypeGroup, g.Group)
		}
	}
}

// filterListGroups leaves out of a ListGroups answer the groups the principal may
// not DESCRIBE, unless it may DESCRIBE the cluster.
func (cc *conn) filterListGroups(resp *kmsg.ListGroupsResponse) {
	if cc.b.authorizer() == nil || cc.authorizedCluster(kmsg.ACLOperationDescribe) {
		return
	}
	kept := resp.Groups[:0]
	for _, g := range resp.Groups {
		if cc.authorized(kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, g.Group) {
			kept = append(kept, g)
		}
	}
	resp.Groups = kept
}

// authorizeDeleteGroups takes the groups the principal may not DELETE out of req and
// answers them with GROUP_AUTHORIZATION_FAILED.
func (cc *conn) authorizeDeleteGroups(req *kmsg.DeleteGroupsRequest) []kmsg.DeleteGroupsResponseGroup {
	if cc.b.authorizer() == nil {
		return nil
	}
	var denied []kmsg.DeleteGroupsResponseGroup
	kept := req.Groups[:0]
	for _, g := range req.Groups {
		if cc.authorized(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, g) {
			kept = append(kept, g)
			continue
		}
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
		denied = append(denied, rg)
	}
	req.Groups = kept
	return denied
}

// authorizeOffsetDelete checks DELETE on the group (a denied group is answered
// whole, resp non-nil) and READ on each topic (denied topics are taken out of req
// and answered with TOPIC_AUTHORIZATION_FAILED in denied).
func (cc *conn) authorizeOffsetDelete(req *kmsg.OffsetDeleteRequest) (resp *kmsg.OffsetDeleteResponse, denied []kmsg.OffsetDeleteResponseTopic) {
	if cc.b.authorizer() == nil {
		return nil, nil
	}
	if !cc.authorized(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, req.Group) {
		resp = req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return resp, nil
	}
	kept := req.Topics[:0]
	for _, rt := range req.Topics {
		if cc.authorized(kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, rt.Topic) {
			kept = append(kept, rt)
			continue
		}
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, kerr.TopicAuthorizationFailed.Code
			st.Partitions = append(st.Partitions, sp)
		}
		denied = append(denied, st)
	}
	req.Topics = kept
	if len(kept) == 0 && len(denied) > 0 {
		resp = req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.Topics = denied
		return resp, nil
	}
	return nil, denied
}
