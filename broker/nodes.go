package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/broker/metadata"
	"github.com/sluicemq/sluice/internal/durable"
)

// AllocateNodeID as node.id asks the controller for a node id on first start (the
// default of a broker-only node, process.roles=broker, without node.id). The id is
// kept in log.dir's meta.properties and used on every later start, like Kafka's
// generated broker ids (broker.id=-1).
const AllocateNodeID = -1

// metaPropertiesFile holds a node's identity in its log.dir, as Kafka's
// meta.properties does: node.id and cluster.id.
const metaPropertiesFile = "meta.properties"

// nodeIDAllocationTimeout bounds how long a new node waits for a controller to hand
// out its node id at start.
const nodeIDAllocationTimeout = 2 * time.Minute

// roles returns the parsed process.roles: whether this node hosts partitions
// (broker) and votes in the metadata quorum (controller).
func (c *Config) roles() (broker, controller bool, err error) {
	if strings.TrimSpace(c.ProcessRoles) == "" {
		return true, true, nil
	}
	for _, r := range strings.Split(c.ProcessRoles, ",") {
		switch strings.TrimSpace(r) {
		case "broker":
			broker = true
		case "controller":
			controller = true
		default:
			return false, false, fmt.Errorf("process.roles: %q is not broker, controller or broker,controller", c.ProcessRoles)
		}
	}
	return broker, controller, nil
}

// isBroker reports whether this node hosts partitions (process.roles has broker).
func (c *Config) isBroker() bool {
	b, _, _ := c.roles()
	return b
}

// bootstrapServers parses controller.quorum.bootstrap.servers.
func (c *Config) bootstrapServers() ([]string, error) {
	var out []string
	for _, s := range strings.Split(c.ControllerQuorumBootstrapServers, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		host, port, err := splitHostPort(s)
		if err != nil || host == "" || port == 0 {
			return nil, fmt.Errorf("controller.quorum.bootstrap.servers: %q is not host:port", s)
		}
		out = append(out, s)
	}
	return out, nil
}

func splitHostPort(s string) (string, uint16, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port")
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	return strings.Trim(s[:i], "[]"), uint16(p), err
}

// validateRoles checks process.roles, node.id and the quorum settings together.
func (c *Config) validateRoles() error {
	isBroker, isController, err := c.roles()
	if err != nil {
		return err
	}
	bootstrap, err := c.bootstrapServers()
	if err != nil {
		return err
	}
	var voters []metadata.Voter
	if c.ControllerQuorumVoters != "" {
		if voters, err = metadata.ParseVoters(c.ControllerQuorumVoters); err != nil {
			return fmt.Errorf("controller.quorum.voters: %w", err)
		}
	}
	isVoter := slices.ContainsFunc(voters, func(v metadata.Voter) bool { return v.ID == c.NodeID })
	joins := !isVoter && (len(voters) > 0 || len(bootstrap) > 0)
	switch {
	case c.NodeID == AllocateNodeID && isController:
		return fmt.Errorf("node.id: a controller needs a fixed node id; only process.roles=broker nodes may leave it to the controller")
	case c.NodeID == AllocateNodeID && c.DataDir == DefaultDataDir(AllocateNodeID):
		return fmt.Errorf("log.dir: required when node.id is allocated by the controller (it is kept in log.dir's %s)", metaPropertiesFile)
	case isBroker && !isController && isVoter:
		return fmt.Errorf("process.roles: broker-only node %d is one of controller.quorum.voters", c.NodeID)
	case isBroker && !isController && len(voters) == 0 && len(bootstrap) == 0:
		return fmt.Errorf("process.roles: a broker-only node needs controller.quorum.voters or controller.quorum.bootstrap.servers")
	case isController && !isVoter && len(voters) > 0 && len(bootstrap) == 0:
		return fmt.Errorf("controller.quorum.voters: node.id %d is not one of the voters; a new controller names the quorum with controller.quorum.bootstrap.servers and is added with `sluice cluster add-controller`", c.NodeID)
	case joins && c.ControllerListen == "" && c.ControllerListener == nil:
		return fmt.Errorf("controller.listen: required on a node that joins the metadata quorum (the controller replicates the metadata log to it)")
	case !isBroker && len(voters) == 0 && len(bootstrap) == 0:
		return fmt.Errorf("process.roles: a controller-only node needs controller.quorum.voters")
	}
	return nil
}

// resolveNodeID returns the node id of a node started with node.id -1: the one in
// log.dir's meta.properties, or a new one from the controller, which is then written
// there before anything else happens (a crash in between wastes an id, never reuses
// one). A configured node.id is checked against meta.properties when there is one.
func resolveNodeID(cfg *Config, jc metadata.JoinClient) (int32, error) {
	path := filepath.Join(cfg.DataDir, metaPropertiesFile)
	props, err := readMetaProperties(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return -1, fmt.Errorf("log.dir: %w", err)
	}
	if err == nil {
		id, perr := strconv.ParseInt(props["node.id"], 10, 32)
		if perr != nil || id < 0 {
			return -1, fmt.Errorf("log.dir: %s: node.id %q is not a node id", path, props["node.id"])
		}
		if cid := props["cluster.id"]; cid != "" && cid != cfg.ClusterID {
			return -1, fmt.Errorf("log.dir: %s belongs to cluster %q, not cluster.id %q", path, cid, cfg.ClusterID)
		}
		if cfg.NodeID != AllocateNodeID && int32(id) != cfg.NodeID {
			return -1, fmt.Errorf("node.id: %d, but log.dir %s belongs to node %d", cfg.NodeID, path, id)
		}
		return int32(id), nil
	}
	if cfg.NodeID != AllocateNodeID {
		return cfg.NodeID, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeIDAllocationTimeout)
	defer cancel()
	id, err := jc.AllocateNodeID(ctx)
	if err != nil {
		return -1, fmt.Errorf("node.id: allocating one from the controller: %w", err)
	}
	data := fmt.Sprintf("#\n# written by sluice when the controller allocated this node id\nversion=1\nnode.id=%d\ncluster.id=%s\n", id, cfg.ClusterID)
	if err := durable.WriteFile(path, []byte(data), 0o644); err != nil {
		return -1, fmt.Errorf("log.dir: writing %s: %w", path, err)
	}
	return id, nil
}

// readMetaProperties reads a Java properties file of key=value lines.
func readMetaProperties(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %q is not key=value", path, line)
		}
		props[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return props, sc.Err()
}

// isBrokerPrincipal reports whether p is one of broker.principals.
func (b *Broker) isBrokerPrincipal(p string) bool {
	for _, bp := range b.sec.brokers {
		if bp == p {
			return true
		}
	}
	return false
}

// joinClient talks to the controllers a node joins the quorum through:
// controller.quorum.bootstrap.servers, else the voters.
func (b *Broker) joinClient(voters []metadata.Voter, bootstrap []string, dialTLS *tls.Config) metadata.JoinClient {
	jc := metadata.JoinClient{Bootstrap: bootstrap, TLS: dialTLS}
	if len(jc.Bootstrap) == 0 {
		for _, v := range voters {
			jc.Bootstrap = append(jc.Bootstrap, v.Addr)
		}
	}
	return jc
}

// raftPeerPrincipal is the principal of a peer on the mTLS Raft transport, mapped
// like a client certificate (ssl.principal.mapping.rules).
func (b *Broker) raftPeerPrincipal(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	name, err := mapPrincipal(b.sec.rules, cs.PeerCertificates[0].Subject.String())
	if err != nil {
		return ""
	}
	return "User:" + name
}

// brokerOnlyNodeID makes a broker-only node (process.roles=broker) whose node.id was
// not given ask the controller for one.
func (c *Config) brokerOnlyNodeID() {
	if isBroker, isController, err := c.roles(); err == nil && isBroker && !isController && c.nodeIDDefaulted && c.NodeID == 1 {
		c.NodeID = AllocateNodeID
		if c.DataDir == DefaultDataDir(1) {
			c.DataDir = DefaultDataDir(AllocateNodeID)
		}
	}
}

// SetProcessRoles sets process.roles after the file was read (the --process-roles
// flag); a broker-only node whose node.id was not given then asks the controller for
// one.
func (c *Config) SetProcessRoles(roles string) {
	c.ProcessRoles = roles
	c.brokerOnlyNodeID()
}

// controllerOnlyEndpoints are the endpoints a controller-only node records in the
// metadata log (nil for a node that registers as a broker).
func (b *Broker) controllerOnlyEndpoints() []metadata.Endpoint {
	if b.cfg.isBroker() {
		return nil
	}
	return b.endpoints()
}

// quorumCollector exports this node's roles and the metadata quorum's size as this
// node's copy of the Raft configuration has it.
type quorumCollector struct{ b *Broker }

var (
	descNodeRole  = prometheus.NewDesc("sluice_node_role", "1 for each role of this node (process.roles): broker, controller.", []string{"role"}, nil)
	descVoters    = prometheus.NewDesc("sluice_metadata_quorum_voters", "Voters (controllers) of the metadata quorum in this node's Raft configuration.", nil, nil)
	descObservers = prometheus.NewDesc("sluice_metadata_quorum_observers", "Observers (Raft non-voters: broker-only nodes, controllers being added or removed) in this node's Raft configuration.", nil, nil)
)

func (c *quorumCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descNodeRole
	ch <- descVoters
	ch <- descObservers
}

func (c *quorumCollector) Collect(ch chan<- prometheus.Metric) {
	isBroker, isController, _ := c.b.cfg.roles()
	for role, on := range map[string]bool{"broker": isBroker, "controller": isController} {
		if on {
			ch <- prometheus.MustNewConstMetric(descNodeRole, prometheus.GaugeValue, 1, role)
		}
	}
	voters, observers, err := c.b.quorum.Members()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descVoters, prometheus.GaugeValue, float64(len(voters)))
	ch <- prometheus.MustNewConstMetric(descObservers, prometheus.GaugeValue, float64(len(observers)))
}

// isController reports whether this node has the controller role (process.roles).
func (c *Config) isController() bool {
	_, ctl, _ := c.roles()
	return ctl
}
