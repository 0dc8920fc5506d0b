package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// routes are the APIs the gateway serves and how. An API missing here is not
// offered in ApiVersions and a request for it closes the connection: SASL (the
// gateway does not authenticate clients), and broker-only APIs, which a client
// listener never serves.
var routes map[int16]handler

func init() {
	routes = map[int16]handler{
		0:  handleProduce,
		1:  handleFetch,
		2:  handleListOffsets,
		3:  handleMetadata,
		8:  groupRouted(func(r kmsg.Request) string { return r.(*kmsg.OffsetCommitRequest).Group }),
		9:  handleOffsetFetch,
		10: handleFindCoordinator,
		11: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.JoinGroupRequest).Group }),
		12: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.HeartbeatRequest).Group }),
		13: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.LeaveGroupRequest).Group }),
		14: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.SyncGroupRequest).Group }),
		15: handleDescribeGroups,
		16: handleListGroups,
		18: handleApiVersions,
		19: anyBroker,
		20: anyBroker,
		21: handleDeleteRecords,
		22: handleInitProducerID,
		23: handleOffsetForLeaderEpoch,
		24: txnRouted(func(r kmsg.Request) string { return r.(*kmsg.AddPartitionsToTxnRequest).TransactionalID }),
		25: txnRouted(func(r kmsg.Request) string { return r.(*kmsg.AddOffsetsToTxnRequest).TransactionalID }),
		26: txnRouted(func(r kmsg.Request) string { return r.(*kmsg.EndTxnRequest).TransactionalID }),
		28: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.TxnOffsetCommitRequest).Group }),
		29: anyBroker,
		30: anyBroker,
		31: anyBroker,
		32: handleDescribeConfigs,
		33: anyBroker,
		35: anyBroker,
		37: anyBroker,
		42: handleDeleteGroups,
		43: anyBroker,
		44: anyBroker,
		45: anyBroker,
		46: anyBroker,
		47: groupRouted(func(r kmsg.Request) string { return r.(*kmsg.OffsetDeleteRequest).Group }),
		48: anyBroker,
		49: anyBroker,
		50: anyBroker,
		51: anyBroker,
		55: anyBroker,
		60: handleDescribeCluster,
		61: handleDescribeProducers,
	}
}

// maxVersions caps versions the gateway cannot route as they are: batched
// AddPartitionsToTxn (v4+) is broker-to-broker only.
var maxVersions = map[int16]int16{24: 3}

// errBrokerOnly closes a connection that sends a broker's request (a replica
// fetch) to the gateway.
var errBrokerOnly = errors.New("a broker-only request on the client listener")

// versions is the range the gateway serves for key: what the brokers serve,
// for the APIs it routes; ApiVersions and FindCoordinator it answers itself.
func (g *Gateway) versions(key int16) (lo, hi int16, ok bool) {
	if lo, hi, ok := g.saslVersions(key); ok { // auth.go
		return lo, hi, true
	}
	if routes[key] == nil {
		return 0, 0, false
	}
	req := kmsg.RequestForKey(key)
	hi = req.MaxVersion()
	blo, bhi, ok := g.cluster.brokerVersions(key)
	if key == 18 || key == 10 { // answered by the gateway itself
		if ok {
			hi = min(hi, bhi)
		}
		return 0, hi, true
	}
	if !ok {
		return 0, 0, false
	}
	hi = min(hi, bhi)
	if m, ok := maxVersions[key]; ok {
		hi = min(hi, m)
	}
	return blo, hi, blo <= hi
}

// apiVersions is the gateway's ApiVersions answer.
func (g *Gateway) apiVersions() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	for key := int16(0); key < 100; key++ {
		if lo, hi, ok := g.versions(key); ok {
			resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: key, MinVersion: lo, MaxVersion: hi})
		}
	}
	return resp
}

func done(resp kmsg.Response) (func(context.Context) (kmsg.Response, error), error) {
	return func(context.Context) (kmsg.Response, error) { return resp, nil }, nil
}

func handleApiVersions(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	if req.Version >= 3 {
		cc.single = cc.g.cfg.OneBrokerView || singleBrokerClient(req.ClientSoftwareName, req.ClientSoftwareVersion)
	}
	resp := cc.g.apiVersions()
	resp.SetVersion(kreq.GetVersion())
	return done(resp)
}

// anyBroker forwards an admin request to a broker, which forwards it to the
// controller when needed. A request that cannot be sent goes to the next
// broker; one whose answer is lost closes the client's connection, as a broker
// that died would, since it may have been carried out.
func anyBroker(cc *clientConn, req kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	f, start, err := cc.sendAny(req)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (kmsg.Response, error) { return cc.await(ctx, f, start) }, nil
}

func (cc *clientConn) sendAny(req kmsg.Request) (*future, time.Time, error) {
	var last error
	for attempt := 0; attempt < 6; attempt++ {
		cc.seq++
		id, addr, ok := cc.g.cluster.anyBroker(cc.seq)
		if !ok {
			last = errors.New("no broker known")
			ctx, cancel := context.WithTimeout(cc.ctx, 5*time.Second)
			_ = cc.g.cluster.refresh(ctx, 0)
			cancel()
			continue
		}
		start := time.Now()
		f, err := cc.sendTo(id, addr, req)
		if err == nil {
			return f, start, nil
		}
		last = err
	}
	return nil, time.Time{}, fmt.Errorf("forwarding %s: %w", kmsg.NameForKey(req.Key()), last)
}

// handleMetadata forwards the client's Metadata request and shows the answer as
// the client must see it (view.go): the cluster's brokers at the gateway's
// address, or the gateway as the only broker. Partitions, replicas, errors,
// topic ids and authorized operations are the cluster's.
func handleMetadata(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.MetadataRequest)
	single := cc.single
	f, start, err := cc.sendAny(req)
	if err != nil {
		return nil, err
	}
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	return func(ctx context.Context) (kmsg.Response, error) {
		resp, err := cc.await(ctx, f, start)
		if err != nil {
			return nil, err
		}
		mr := resp.(*kmsg.MetadataResponse)
		cc.g.cluster.apply(mr, all && cc.auth == nil) // a client's view may be filtered by its ACLs
		cc.g.showMetadata(mr, single)
		return mr, nil
	}, nil
}

func (g *Gateway) self() kmsg.MetadataResponseBroker {
	return kmsg.MetadataResponseBroker{NodeID: g.cfg.NodeID, Host: g.host, Port: g.port}
}

// handleDescribeCluster forwards and shows the answer as handleMetadata does.
func handleDescribeCluster(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	single := cc.single
	f, start, err := cc.sendAny(kreq)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp, err := cc.await(ctx, f, start)
		if err != nil {
			return nil, err
		}
		dr := resp.(*kmsg.DescribeClusterResponse)
		cc.g.showCluster(dr, single)
		return dr, nil
	}, nil
}

// coordError is the coordinator error in a response, 0 if none.
func coordError(resp kmsg.Response) int16 {
	var codes []int16
	switch r := resp.(type) {
	case *kmsg.JoinGroupResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.SyncGroupResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.OffsetDeleteResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.AddOffsetsToTxnResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.EndTxnResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.InitProducerIDResponse:
		codes = append(codes, r.ErrorCode)
	case *kmsg.OffsetFetchResponse:
		codes = append(codes, r.ErrorCode)
		for _, g := range r.Groups {
			codes = append(codes, g.ErrorCode)
		}
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				codes = append(codes, p.ErrorCode)
			}
		}
	case *kmsg.OffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				codes = append(codes, p.ErrorCode)
			}
		}
	case *kmsg.TxnOffsetCommitResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				codes = append(codes, p.ErrorCode)
			}
		}
	case *kmsg.AddPartitionsToTxnResponse:
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				codes = append(codes, p.ErrorCode)
			}
		}
	case *kmsg.DescribeGroupsResponse:
		for _, g := range r.Groups {
			codes = append(codes, g.ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for _, g := range r.Groups {
			codes = append(codes, g.ErrorCode)
		}
	}
	for _, c := range codes {
		if c == kerr.NotCoordinator.Code || c == kerr.CoordinatorNotAvailable.Code {
			return c
		}
	}
	return 0
}

func groupRouted(group func(kmsg.Request) string) handler {
	return func(cc *clientConn, req kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
		return cc.coordinated(coordKey{0, group(req)}, req)
	}
}

func txnRouted(txn func(kmsg.Request) string) handler {
	return func(cc *clientConn, req kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
		return cc.coordinated(coordKey{1, txn(req)}, req)
	}
}

// handleInitProducerID goes to the transaction coordinator of a transactional
// id, or to any broker for an idempotent producer.
func handleInitProducerID(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	if req.TransactionalID == nil {
		return anyBroker(cc, req)
	}
	return cc.coordinated(coordKey{1, *req.TransactionalID}, req)
}

// coordinated sends req to the coordinator of k. When the coordinator moved
// (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE: the request was not carried out)
// or its connection failed, the gateway finds the new one and sends the request
// again, until the client's patience (30s) runs out; then the client gets the
// coordinator error and asks the gateway again.
func (cc *clientConn) coordinated(k coordKey, req kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	var f *future
	start := time.Now()
	ctx, cancel := context.WithTimeout(cc.ctx, 5*time.Second)
	id, addr, err := cc.g.cluster.coordinator(ctx, k)
	cancel()
	if err == nil {
		f, err = cc.sendTo(id, addr, req)
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for attempt := 0; ; attempt++ {
			var resp kmsg.Response
			if err == nil {
				resp, err = cc.await(ctx, f, start)
				if err == nil {
					code := coordError(resp)
					if code == 0 || attempt >= 20 {
						return resp, nil
					}
					err = kerr.ErrorForCode(code)
				}
			}
			if cc.ctx.Err() != nil {
				return nil, cc.ctx.Err()
			}
			if ctx.Err() != nil {
				if resp != nil {
					return resp, nil
				}
				return nil, fmt.Errorf("%s: no coordinator for %q: %w", kmsg.NameForKey(req.Key()), k.key, err)
			}
			cc.g.cluster.forgetCoordinator(k)
			cc.g.metrics.retries.WithLabelValues(kmsg.NameForKey(req.Key())).Inc()
			select {
			case <-ctx.Done():
				continue
			case <-time.After(time.Duration(min(50*(attempt+1), 500)) * time.Millisecond):
			}
			start = time.Now()
			lctx, lcancel := context.WithTimeout(ctx, 5*time.Second)
			id, addr, err = cc.g.cluster.coordinator(lctx, k)
			lcancel()
			if err == nil {
				f, err = cc.sendTo(id, addr, req)
			}
		}
	}, nil
}

// handleOffsetFetch routes by group; v8+ may name several groups, each asked of
// its own coordinator.
func handleOffsetFetch(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	if req.Version < 8 {
		return cc.coordinated(coordKey{0, req.Group}, req)
	}
	finishes := make([]func(context.Context) (kmsg.Response, error), len(req.Groups))
	for i, g := range req.Groups {
		sub := kmsg.NewPtrOffsetFetchRequest()
		sub.Version, sub.RequireStable, sub.Groups = req.Version, req.RequireStable, []kmsg.OffsetFetchRequestGroup{g}
		f, err := cc.coordinated(coordKey{0, g.Group}, sub)
		if err != nil {
			return nil, err
		}
		finishes[i] = f
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		for _, fin := range finishes {
			r, err := fin(ctx)
			if err != nil {
				return nil, err
			}
			or := r.(*kmsg.OffsetFetchResponse)
			resp.ThrottleMillis = max(resp.ThrottleMillis, or.ThrottleMillis)
			resp.Groups = append(resp.Groups, or.Groups...)
		}
		return resp, nil
	}, nil
}

// handleDescribeGroups asks each group's coordinator about it.
func handleDescribeGroups(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	finishes := make([]func(context.Context) (kmsg.Response, error), len(req.Groups))
	for i, g := range req.Groups {
		sub := kmsg.NewPtrDescribeGroupsRequest()
		sub.Version, sub.IncludeAuthorizedOperations, sub.Groups = req.Version, req.IncludeAuthorizedOperations, []string{g}
		f, err := cc.coordinated(coordKey{0, g}, sub)
		if err != nil {
			return nil, err
		}
		finishes[i] = f
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, fin := range finishes {
			r, err := fin(ctx)
			if err != nil {
				return nil, err
			}
			dr := r.(*kmsg.DescribeGroupsResponse)
			resp.ThrottleMillis = max(resp.ThrottleMillis, dr.ThrottleMillis)
			resp.Groups = append(resp.Groups, dr.Groups...)
		}
		return resp, nil
	}, nil
}

// handleDeleteGroups asks each group's coordinator to delete it.
func handleDeleteGroups(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	finishes := make([]func(context.Context) (kmsg.Response, error), len(req.Groups))
	for i, g := range req.Groups {
		sub := kmsg.NewPtrDeleteGroupsRequest()
		sub.Version, sub.Groups = req.Version, []string{g}
		f, err := cc.coordinated(coordKey{0, g}, sub)
		if err != nil {
			return nil, err
		}
		finishes[i] = f
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, fin := range finishes {
			r, err := fin(ctx)
			if err != nil {
				return nil, err
			}
			dr := r.(*kmsg.DeleteGroupsResponse)
			resp.ThrottleMillis = max(resp.ThrottleMillis, dr.ThrottleMillis)
			resp.Groups = append(resp.Groups, dr.Groups...)
		}
		return resp, nil
	}, nil
}

// handleListGroups asks every broker (each lists the groups it coordinates)
// and merges the lists. A broker that cannot be reached makes the answer
// COORDINATOR_NOT_AVAILABLE, as Kafka's admin client reports a broker that
// failed.
func handleListGroups(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	type sub struct {
		f     *future
		err   error
		start time.Time
	}
	var subs []sub
	for _, id := range cc.g.cluster.brokerIDs() {
		addr, ok := cc.g.cluster.brokerAddr(id)
		if !ok {
			continue
		}
		s := sub{start: time.Now()}
		s.f, s.err = cc.sendTo(id, addr, req)
		subs = append(subs, s)
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		seen := map[string]bool{}
		for _, s := range subs {
			err := s.err
			var r kmsg.Response
			if err == nil {
				r, err = cc.await(ctx, s.f, s.start)
			}
			if err != nil {
				if resp.ErrorCode == 0 {
					resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
				}
				continue
			}
			lr := r.(*kmsg.ListGroupsResponse)
			resp.ThrottleMillis = max(resp.ThrottleMillis, lr.ThrottleMillis)
			if lr.ErrorCode != 0 && resp.ErrorCode == 0 {
				resp.ErrorCode = lr.ErrorCode
			}
			for _, g := range lr.Groups {
				if !seen[g.Group] {
					seen[g.Group] = true
					resp.Groups = append(resp.Groups, g)
				}
			}
		}
		return resp, nil
	}, nil
}
