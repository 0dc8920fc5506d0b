package gateway

import (
	"context"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// What a client is shown of the cluster (Metadata, DescribeCluster,
// FindCoordinator).
//
// By default every broker of the cluster is shown under its own node id, all
// at the gateway's advertised address, with the cluster's leaders, controller
// and coordinators. Clients key their connections by node id, so a client opens one
// connection to the gateway per broker and keeps its per-broker concurrency
// (produce requests in flight, a fetch per broker); each request it sends then
// usually holds partitions of one leader, which the gateway forwards without a
// split. Which connection a request arrives on does not matter: the gateway
// routes every request by its partitions, group or transactional id, so a
// request sent to "broker 2" for a partition that moved to broker 3 still goes
// to broker 3. Every instance shows the same ids, the cluster's.
//
// librdkafka before 2.10 cannot tell brokers apart that share an address (it
// takes a broker it does not know by id for the one at the same host:port and
// renumbers it, so only one of them ever exists; "Identify brokers only by
// broker id", librdkafka #4557, released in 2.10.0), so a client that says in its
// ApiVersions request that it is built on such a librdkafka (kcat,
// confluent-kafka-python and -go) is shown the cluster as one broker, the
// gateway itself (Config.NodeID), leading every partition and coordinating
// everything; so is every client with Config.OneBrokerView.

// singleBrokerClient reports whether a client that named itself so in
// ApiVersions v3+ (client.software.name and .version, KIP-511) must be shown
// the cluster as one broker: librdkafka before 2.10, or a client built on a
// librdkafka whose version it does not tell.
func singleBrokerClient(name, version string) bool {
	name, version = strings.ToLower(name), strings.ToLower(version)
	var rdkafka string // librdkafka's version, "" if not told
	switch {
	case name == "librdkafka":
		rdkafka = version
	case strings.Contains(version, "rdkafka-"):
		rdkafka = version[strings.LastIndex(version, "rdkafka-")+len("rdkafka-"):]
	case strings.Contains(name, "rdkafka") || strings.HasPrefix(name, "confluent-kafka-"):
	default:
		return false
	}
	major, minor, ok := majorMinor(rdkafka)
	return !ok || major < 2 || (major == 2 && minor < 10)
}

// majorMinor parses the start of a version such as "2.10.1-RC1".
func majorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}

// showMetadata rewrites a broker's Metadata answer for a client: every broker
// at the gateway's address, or (single) the gateway as the one broker.
func (g *Gateway) showMetadata(mr *kmsg.MetadataResponse, single bool) {
	if !single {
		for i := range mr.Brokers {
			mr.Brokers[i].Host, mr.Brokers[i].Port = g.host, g.port
		}
		return
	}
	mr.Brokers = []kmsg.MetadataResponseBroker{g.self()}
	mr.ControllerID = g.cfg.NodeID
	for ti := range mr.Topics {
		for pi := range mr.Topics[ti].Partitions {
			p := &mr.Topics[ti].Partitions[pi]
			if p.Leader >= 0 {
				p.Leader = g.cfg.NodeID
			}
		}
	}
}

// showCluster rewrites a DescribeCluster answer the same way.
func (g *Gateway) showCluster(dr *kmsg.DescribeClusterResponse, single bool) {
	if dr.ErrorCode != 0 {
		return
	}
	if !single {
		for i := range dr.Brokers {
			dr.Brokers[i].Host, dr.Brokers[i].Port = g.host, g.port
		}
		return
	}
	dr.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: g.cfg.NodeID, Host: g.host, Port: g.port}}
	dr.ControllerID = g.cfg.NodeID
}

// coordinatorAnswer is what FindCoordinator says about one key: the real
// coordinator's id at the gateway's address, or (single) the gateway. Either
// way the group's or transaction's requests are routed by the gateway, so the
// id only spreads a client's coordinator traffic over its connections.
//
// A request naming more keys than maxCoordinatorLookups that the gateway
// has not looked up yet gets, for the rest, a live broker chosen by the key's
// hash: still served, since the gateway routes by key, without one client
// sending the cluster a lookup per key.
func (cc *clientConn) coordinatorAnswer(ctx context.Context, typ int8, key string, single bool, lookups *int) (id int32, code int16) {
	if single {
		return cc.g.cfg.NodeID, 0
	}
	if id, ok := cc.g.cluster.cachedCoordinator(coordKey{typ, key}); ok {
		return id, 0
	}
	if *lookups >= maxCoordinatorLookups {
		if id, _, ok := cc.g.cluster.anyBroker(int(crc32.ChecksumIEEE([]byte(key)) >> 1)); ok {
			return id, 0
		}
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	*lookups++
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	id, _, err := cc.g.cluster.coordinator(ctx, coordKey{typ, key})
	if err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return -1, ke.Code
		}
		return -1, kerr.CoordinatorNotAvailable.Code
	}
	return id, 0
}

// maxCoordinatorLookups bounds the coordinators one FindCoordinator request
// makes the gateway look up.
const maxCoordinatorLookups = 100

// handleFindCoordinator answers FindCoordinator from the gateway's cache of
// coordinators (asking the cluster for the ones it does not know).
func handleFindCoordinator(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	single := cc.single
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	return func(ctx context.Context) (kmsg.Response, error) {
		resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
		lookups := 0
		for _, k := range keys {
			c := kmsg.FindCoordinatorResponseCoordinator{Key: k, NodeID: -1, Port: -1}
			if req.CoordinatorType != 0 && req.CoordinatorType != 1 {
				c.ErrorCode = kerr.InvalidRequest.Code
			} else if c.NodeID, c.ErrorCode = cc.coordinatorAnswer(ctx, req.CoordinatorType, k, single, &lookups); c.ErrorCode == 0 {
				c.Host, c.Port = cc.g.host, cc.g.port
			}
			if req.Version >= 4 {
				resp.Coordinators = append(resp.Coordinators, c)
			} else {
				resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
			}
		}
		return resp, nil
	}, nil
}

// handleDescribeConfigs sends a request about a broker's configs to that
// broker, as a client connected to it directly would (a broker answers only
// for itself, INVALID_REQUEST for another's id); topic configs and cluster
// defaults (an empty broker name) go to any broker. A request naming several
// brokers goes to the first one named, which answers for the others as Kafka
// does.
func handleDescribeConfigs(cc *clientConn, kreq kmsg.Request) (func(context.Context) (kmsg.Response, error), error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	for _, r := range req.Resources {
		if r.ResourceType != kmsg.ConfigResourceTypeBroker && r.ResourceType != kmsg.ConfigResourceTypeBrokerLogger {
			continue
		}
		id, err := strconv.ParseInt(r.ResourceName, 10, 32)
		if err != nil {
			continue
		}
		addr, ok := cc.g.cluster.brokerAddr(int32(id))
		if !ok {
			continue
		}
		start := time.Now()
		f, err := cc.sendTo(int32(id), addr, req)
		if err != nil {
			break // the broker cannot be reached: any other answers
		}
		return func(ctx context.Context) (kmsg.Response, error) { return cc.await(ctx, f, start) }, nil
	}
	return anyBroker(cc, req)
}
