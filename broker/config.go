package broker

import (
	"fmt"
	"math"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluicemq/sluice/internal/config"
	"github.com/sluicemq/sluice/internal/weblisten"
)

// Config is a broker's configuration. The YAML form uses Kafka's names for Kafka
// settings; fields without a Kafka counterpart are Sluice's own. Zero values are
// replaced by the defaults in DefaultConfig when a file is loaded.
type Config struct {
	// NodeID is this broker's id, like Kafka's node.id. Default 1.
	NodeID int32 `yaml:"node.id"`
	// Listen is the address the Kafka listener binds, host:port. Default 127.0.0.1:9092.
	Listen string `yaml:"listen"`
	// AdvertisedListen is the address returned to clients in Metadata, like Kafka's
	// advertised.listeners. Default: the bound listen address.
	AdvertisedListen string `yaml:"advertised.listen"`
	// DataDir holds partition logs and broker state, like Kafka's log.dir. Default
	// sluice-data/broker-<node.id> (DefaultDataDir).
	DataDir string `yaml:"log.dir"`
	// ClusterID names the cluster in Metadata and DescribeCluster. Default "sluice".
	ClusterID string `yaml:"cluster.id"`

	// ControllerListen is the address of this broker's Raft transport for the
	// metadata quorum. Default: its entry in ControllerQuorumVoters.
	ControllerListen string `yaml:"controller.listen"`
	// ControllerQuorumVoters lists the metadata quorum in Kafka's
	// controller.quorum.voters format, "1@host:port,2@host:port,3@host:port".
	// Empty makes this broker a one-voter quorum of its own.
	ControllerQuorumVoters string `yaml:"controller.quorum.voters"`
	// ProcessRoles is Kafka's process.roles: "broker,controller" (the default: a voter of
	// the metadata quorum that also hosts partitions), "broker" (hosts partitions and
	// follows the metadata log as an observer, a Raft non-voter, without voting; it needs
	// controller.listen, which the controller replicates the log to) or "controller"
	// (a voter that hosts no partitions, does not register as a broker and serves no
	// clients). See nodes.go.
	ProcessRoles string `yaml:"process.roles"`
	// ControllerQuorumBootstrapServers lists controller (Raft) addresses, host:port
	// separated by commas, like Kafka's controller.quorum.bootstrap.servers (KIP-853): a
	// node that is not one of controller.quorum.voters asks them to join the metadata
	// quorum as an observer. Default: the addresses of controller.quorum.voters.
	ControllerQuorumBootstrapServers string `yaml:"controller.quorum.bootstrap.servers"`
	// BrokerSessionTimeoutMs is how long the controller waits for a broker's
	// heartbeat before fencing it and moving its leaderships, like Kafka's
	// broker.session.timeout.ms. Default 9000, Kafka's. It applies to a broker
	// that is silent but still connected: a broker whose process ends closes its
	// controller connection and is fenced at once.
	BrokerSessionTimeoutMs int64 `yaml:"broker.session.timeout.ms"`
	// BrokerHeartbeatIntervalMs is how often a broker heartbeats to the
	// controller, like Kafka's broker.heartbeat.interval.ms; less than
	// broker.session.timeout.ms. Default (0) 2000, Kafka's, or a third of
	// broker.session.timeout.ms if that is less. A broker heartbeats at once
	// when the controller changes, and every 100ms while it is fenced.
	BrokerHeartbeatIntervalMs int64 `yaml:"broker.heartbeat.interval.ms"`
	// ReplicaLagTimeMaxMs is how long a follower may go without catching up before
	// it leaves the ISR, like Kafka's replica.lag.time.max.ms. Default 30000.
	ReplicaLagTimeMaxMs int64 `yaml:"replica.lag.time.max.ms"`
	// OffsetsTopicReplicationFactor is the replication factor of __consumer_offsets,
	// like Kafka's offsets.topic.replication.factor, capped by the quorum size.
	// Default 3.
	OffsetsTopicReplicationFactor int16 `yaml:"offsets.topic.replication.factor"`

	// Flush is when partition data is fsynced: none (left to the OS), interval (every
	// FlushIntervalMs) or always (a produce is acknowledged only after fsync, with group
	// commit). Default interval.
	Flush string `yaml:"flush"`
	// FlushIntervalMs is the flush period for Flush=interval, like Kafka's
	// log.flush.interval.ms. Default 1000.
	FlushIntervalMs int64 `yaml:"log.flush.interval.ms"`

	// NumPartitions is the partition count of auto-created topics and of CreateTopics
	// requests that leave it unset, like Kafka's num.partitions. Default 1.
	NumPartitions int32 `yaml:"num.partitions"`
	// DefaultReplicationFactor is used when a CreateTopics request leaves it unset, like
	// Kafka's default.replication.factor. Default -1: 3 when three or more brokers
	// are live, else the number of live brokers.
	DefaultReplicationFactor int16 `yaml:"default.replication.factor"`
	// AutoCreateTopics creates unknown topics on Metadata requests that allow it, like
	// Kafka's auto.create.topics.enable. Default true.
	AutoCreateTopics *bool `yaml:"auto.create.topics.enable"`
	// DeleteTopicEnable allows DeleteTopics, like Kafka's delete.topic.enable. Default true.
	DeleteTopicEnable *bool `yaml:"delete.topic.enable"`
	// MessageMaxBytes is the largest record batch accepted, like Kafka's
	// message.max.bytes. Default 1048588.
	MessageMaxBytes int32 `yaml:"message.max.bytes"`
	// SocketRequestMaxBytes is the largest request frame accepted; larger frames close
	// the connection, like Kafka's socket.request.max.bytes. Default 100 MiB.
	SocketRequestMaxBytes int32 `yaml:"socket.request.max.bytes"`

	// LogSegmentBytes is the default segment.bytes of topics, like Kafka's
	// log.segment.bytes. Default 1 GiB.
	LogSegmentBytes int64 `yaml:"log.segment.bytes"`
	// LogRollMs is the default segment.ms of topics, like Kafka's log.roll.ms. Default 7 days.
	LogRollMs int64 `yaml:"log.roll.ms"`
	// LogRetentionMs is the default retention.ms of topics, like Kafka's
	// log.retention.ms. Default 7 days; -1 keeps data forever.
	LogRetentionMs int64 `yaml:"log.retention.ms"`
	// LogRetentionBytes is the default retention.bytes of topics, like Kafka's
	// log.retention.bytes. Default -1 (unlimited).
	LogRetentionBytes int64 `yaml:"log.retention.bytes"`
	// LogCleanupPolicy is the default cleanup.policy of topics, like Kafka's
	// log.cleanup.policy. Default delete.
	LogCleanupPolicy string `yaml:"log.cleanup.policy"`
	// LogRetentionCheckIntervalMs is how often retention and compaction run, like
	// Kafka's log.retention.check.interval.ms. Default 300000.
	LogRetentionCheckIntervalMs int64 `yaml:"log.retention.check.interval.ms"`

	// OffsetsTopicNumPartitions is the partition count of __consumer_offsets, like Kafka's
	// offsets.topic.num.partitions. Default 50.
	OffsetsTopicNumPartitions int32 `yaml:"offsets.topic.num.partitions"`
	// OffsetsRetentionMinutes is how long committed offsets of empty groups are kept,
	// like Kafka's offsets.retention.minutes. Default 10080 (7 days).
	OffsetsRetentionMinutes int64 `yaml:"offsets.retention.minutes"`
	// GroupMinSessionTimeoutMs is like Kafka's group.min.session.timeout.ms. Default 6000.
	GroupMinSessionTimeoutMs int64 `yaml:"group.min.session.timeout.ms"`
	// GroupMaxSessionTimeoutMs is like Kafka's group.max.session.timeout.ms. Default 1800000.
	GroupMaxSessionTimeoutMs int64 `yaml:"group.max.session.timeout.ms"`
	// GroupInitialRebalanceDelayMs is like Kafka's group.initial.rebalance.delay.ms.
	// Default 3000.
	GroupInitialRebalanceDelayMs *int64 `yaml:"group.initial.rebalance.delay.ms"`
	// GroupMaxSize is like Kafka's group.max.size. Default 0 (unlimited).
	GroupMaxSize int `yaml:"group.max.size"`

	// TransactionPartitionVerificationEnable is like Kafka's
	// transaction.partition.verification.enable (KIP-890): before the first
	// transactional batch of a transaction on a partition, the leader asks the
	// transaction coordinator whether the partition was added to it. Default true.
	TransactionPartitionVerificationEnable *bool `yaml:"transaction.partition.verification.enable"`
	// TransactionStateLogNumPartitions is the partition count of __transaction_state, like
	// Kafka's transaction.state.log.num.partitions. Default 50.
	TransactionStateLogNumPartitions int32 `yaml:"transaction.state.log.num.partitions"`
	// TransactionStateLogReplicationFactor is the replication factor of __transaction_state,
	// like Kafka's transaction.state.log.replication.factor, capped by the quorum size. Default 3.
	TransactionStateLogReplicationFactor int16 `yaml:"transaction.state.log.replication.factor"`
	// TransactionStateLogMinISR is the min.insync.replicas of __transaction_state, like Kafka's
	// transaction.state.log.min.isr, capped by its replication factor. Default 2.
	TransactionStateLogMinISR int `yaml:"transaction.state.log.min.isr"`
	// TransactionMaxTimeoutMs is the longest transaction.timeout.ms a producer may ask for,
	// like Kafka's transaction.max.timeout.ms. Default 900000 (15 minutes).
	TransactionMaxTimeoutMs int64 `yaml:"transaction.max.timeout.ms"`
	// TransactionAbortTimedOutTransactionCleanupIntervalMs is how often transactions open
	// longer than their timeout are aborted, like Kafka's
	// transaction.abort.timed.out.transaction.cleanup.interval.ms. Default 10000.
	TransactionAbortTimedOutTransactionCleanupIntervalMs int64 `yaml:"transaction.abort.timed.out.transaction.cleanup.interval.ms"`
	// TransactionalIDExpirationMs is how long an idle transactional id is kept, like Kafka's
	// transactional.id.expiration.ms. Default 604800000 (7 days).
	TransactionalIDExpirationMs int64 `yaml:"transactional.id.expiration.ms"`
	// TransactionRemoveExpiredTransactionCleanupIntervalMs is how often expired transactional
	// ids are removed, like Kafka's transaction.remove.expired.transaction.cleanup.interval.ms.
	// Default 3600000.
	TransactionRemoveExpiredTransactionCleanupIntervalMs int64 `yaml:"transaction.remove.expired.transaction.cleanup.interval.ms"`

	// AdminListen, when set, serves the admin HTTP interface there:
	// /api/v1/cluster and /api/v1/events (cluster events from the metadata log),
	// and the tenant and plan API (writes for admins only, see tenant_http.go).
	AdminListen string `yaml:"admin.listen"`
	// MetricsListen, when set, serves Prometheus metrics at /metrics, with /healthz
	// and /readyz (and the admin interface), on that address.
	MetricsListen string `yaml:"metrics.listen"`
	// PprofListen, when set, serves net/http/pprof on that address: loopback only unless
	// WebConfigFile authenticates (basic auth or client certificates).
	PprofListen string `yaml:"pprof.listen"`
	// WebConfigFile is a web config in github.com/prometheus/exporter-toolkit's format (TLS,
	// client certificates, basic auth with bcrypt hashes, extra headers) for the metrics, admin
	// and pprof listeners, as node_exporter's --web.config.file. Default none: plain HTTP, and
	// the start message says the listeners are unauthenticated.
	WebConfigFile string `yaml:"web.config.file"`

	// AuthorizerClassName turns on authorization with ACLs when set to Kafka's
	// "org.apache.kafka.metadata.authorizer.StandardAuthorizer", like Kafka's
	// authorizer.class.name. Default empty: no authorizer, every request is allowed.
	AuthorizerClassName string `yaml:"authorizer.class.name"`
	// SuperUsers are the principals the authorizer allows everything, separated by
	// semicolons ("User:admin;User:broker"), like Kafka's super.users. Default none.
	SuperUsers string `yaml:"super.users"`
	// AllowEveryoneIfNoACLFound allows a request on a resource that no ACL names, like
	// Kafka's allow.everyone.if.no.acl.found. Default false.
	AllowEveryoneIfNoACLFound bool `yaml:"allow.everyone.if.no.acl.found"`
	// Security holds listeners, TLS and SASL (listener.go), with Kafka's names;
	// `listen` and `advertised.listen` are shorthands used when `listeners` is empty.
	Security `yaml:",inline"`
	// Limits holds the connection, request memory and topic limits (limits.go).
	Limits `yaml:",inline"`
	// Quotas holds the client quota windows (quota.go).
	Quotas QuotaConfig `yaml:",inline"`
	// Tenants holds the tenant metering and enforcement settings (tenant.go).
	Tenants TenantConfig `yaml:",inline"`

	// nodeIDDefaulted is set when node.id was not given and defaulted to 1 (nodes.go).
	nodeIDDefaulted bool
	// Balance holds broker.rack and the automatic balancing settings (balance.go).
	Balance BalanceConfig `yaml:",inline"`
}

// DefaultDataDir is log.dir when none is given: sluice-data/broker-<node.id>
// under the working directory, which neither `make run` (./data) nor a broker
// with another node id uses.
func DefaultDataDir(nodeID int32) string {
	return filepath.Join("sluice-data", "broker-"+strconv.Itoa(int(nodeID)))
}

// DefaultConfig returns the configuration `sluice broker` runs with when nothing
// else is given.
func DefaultConfig() Config {
	var c Config
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.NodeID == 0 {
		c.NodeID, c.nodeIDDefaulted = 1, true
	}
	c.brokerOnlyNodeID()
	setDefault(&c.Listen, "127.0.0.1:9092")
	setDefault(&c.DataDir, DefaultDataDir(c.NodeID))
	setDefault(&c.ClusterID, "sluice")
	setDefault(&c.Flush, "interval")
	setDefault(&c.FlushIntervalMs, 1000)
	setDefault(&c.NumPartitions, 1)
	setDefault(&c.DefaultReplicationFactor, -1)
	setDefault(&c.BrokerSessionTimeoutMs, 9000)
	setDefault(&c.ReplicaLagTimeMaxMs, 30000)
	setDefault(&c.OffsetsTopicReplicationFactor, 3)
	if c.AutoCreateTopics == nil {
		c.AutoCreateTopics = ptr(true)
	}
	if c.DeleteTopicEnable == nil {
		c.DeleteTopicEnable = ptr(true)
	}
	setDefault(&c.MessageMaxBytes, 1048588)
	setDefault(&c.SocketRequestMaxBytes, 100<<20)
	setDefault(&c.LogSegmentBytes, 1<<30)
	setDefault(&c.LogRollMs, int64(7*24*time.Hour/time.Millisecond))
	setDefault(&c.LogRetentionMs, int64(7*24*time.Hour/time.Millisecond))
	setDefault(&c.LogRetentionBytes, -1)
	setDefault(&c.LogCleanupPolicy, "delete")
	setDefault(&c.LogRetentionCheckIntervalMs, 300000)
	setDefault(&c.OffsetsTopicNumPartitions, 50)
	setDefault(&c.OffsetsRetentionMinutes, 10080)
	setDefault(&c.GroupMinSessionTimeoutMs, 6000)
	setDefault(&c.GroupMaxSessionTimeoutMs, 1800000)
	if c.GroupInitialRebalanceDelayMs == nil {
		c.GroupInitialRebalanceDelayMs = ptr[int64](3000)
	}
	if c.TransactionPartitionVerificationEnable == nil {
		c.TransactionPartitionVerificationEnable = ptr(true)
	}
	setDefault(&c.TransactionStateLogNumPartitions, 50)
	setDefault(&c.TransactionStateLogReplicationFactor, 3)
	setDefault(&c.TransactionStateLogMinISR, 2)
	setDefault(&c.TransactionMaxTimeoutMs, 900000)
	setDefault(&c.TransactionAbortTimedOutTransactionCleanupIntervalMs, 10000)
	setDefault(&c.TransactionalIDExpirationMs, 604800000)
	setDefault(&c.TransactionRemoveExpiredTransactionCleanupIntervalMs, 3600000)
	c.Limits.applyDefaults()
	c.Quotas.applyDefaults()
	c.Tenants.applyDefaults()
	c.Balance.applyDefaults()
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func ptr[T any](v T) *T { return &v }

// Validate reports the first invalid setting, naming it by its YAML name.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err)
	}
	if c.PprofListen != "" && c.WebConfigFile == "" {
		if err := weblisten.CheckAddress(c.PprofListen, "pprof.listen"); err != nil {
			return err
		}
	}
	if c.AdvertisedListen != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedListen); err != nil {
			return fmt.Errorf("advertised.listen: %q is not host:port: %w", c.AdvertisedListen, err)
		}
	}
	if err := c.validateRoles(); err != nil {
		return err
	}
	if _, err := c.listenerSpecs(); err != nil {
		return err
	}
	if c.ControllerListen != "" {
		if _, _, err := net.SplitHostPort(c.ControllerListen); err != nil {
			return fmt.Errorf("controller.listen: %q is not host:port: %w", c.ControllerListen, err)
		}
	}
	switch c.Flush {
	case "none", "interval", "always":
	default:
		return fmt.Errorf("flush: %q is not one of none, interval, always", c.Flush)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"node.id", c.NodeID >= 0 || c.NodeID == AllocateNodeID},
		{"log.flush.interval.ms", c.FlushIntervalMs > 0},
		{"num.partitions", c.NumPartitions > 0},
		{"default.replication.factor", c.DefaultReplicationFactor > 0 || c.DefaultReplicationFactor == -1},
		{"broker.session.timeout.ms", c.BrokerSessionTimeoutMs >= 100},
		{"broker.heartbeat.interval.ms", c.BrokerHeartbeatIntervalMs >= 0 && c.BrokerHeartbeatIntervalMs < c.BrokerSessionTimeoutMs},
		{"replica.lag.time.max.ms", c.ReplicaLagTimeMaxMs >= 100},
		{"offsets.topic.replication.factor", c.OffsetsTopicReplicationFactor > 0},
		{"message.max.bytes", c.MessageMaxBytes > 0},
		{"socket.request.max.bytes", c.SocketRequestMaxBytes > 0},
		{"log.segment.bytes", c.LogSegmentBytes >= 14},
		{"log.roll.ms", c.LogRollMs > 0},
		{"log.retention.ms", c.LogRetentionMs >= -1},
		{"log.retention.bytes", c.LogRetentionBytes >= -1},
		{"log.retention.check.interval.ms", c.LogRetentionCheckIntervalMs > 0},
		{"offsets.topic.num.partitions", c.OffsetsTopicNumPartitions > 0},
		{"offsets.retention.minutes", c.OffsetsRetentionMinutes > 0},
		{"group.min.session.timeout.ms", c.GroupMinSessionTimeoutMs > 0},
		{"group.max.session.timeout.ms", c.GroupMaxSessionTimeoutMs >= c.GroupMinSessionTimeoutMs},
		{"group.initial.rebalance.delay.ms", *c.GroupInitialRebalanceDelayMs >= 0},
		{"group.max.size", c.GroupMaxSize >= 0},
		{"transaction.state.log.num.partitions", c.TransactionStateLogNumPartitions > 0},
		{"transaction.state.log.replication.factor", c.TransactionStateLogReplicationFactor > 0},
		{"transaction.state.log.min.isr", c.TransactionStateLogMinISR > 0},
		{"transaction.max.timeout.ms", c.TransactionMaxTimeoutMs > 0 && c.TransactionMaxTimeoutMs <= math.MaxInt32},
		{"transaction.abort.timed.out.transaction.cleanup.interval.ms", c.TransactionAbortTimedOutTransactionCleanupIntervalMs > 0},
		{"transactional.id.expiration.ms", c.TransactionalIDExpirationMs > 0},
		{"transaction.remove.expired.transaction.cleanup.interval.ms", c.TransactionRemoveExpiredTransactionCleanupIntervalMs > 0},
	}
	for _, chk := range checks {
		if !chk.ok {
			return fmt.Errorf("%s: value out of range", chk.name)
		}
	}
	if err := validCleanupPolicy(c.LogCleanupPolicy); err != nil {
		return fmt.Errorf("log.cleanup.policy: %w", err)
	}
	if err := c.validateAuthorizer(); err != nil {
		return err
	}
	if err := c.Limits.validate(c.SocketRequestMaxBytes); err != nil {
		return err
	}
	if err := c.Balance.validate(); err != nil {
		return err
	}
	if err := c.Quotas.validate(); err != nil {
		return err
	}
	return c.Tenants.validate()
}

// LoadConfig reads a broker YAML file strictly: unknown fields are errors that name
// the field and line. Defaults fill what the file leaves out.
func LoadConfig(path string) (Config, error) {
	c, err := DecodeConfig(path)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// DecodeConfig is LoadConfig without Validate, for callers that complete the
// file with flags (a broker's own listeners) and validate the result.
func DecodeConfig(path string) (Config, error) {
	var c Config
	dir, err := config.Decode(path, &c)
	if err != nil {
		return Config{}, err
	}
	c.resolvePaths(dir)
	c.applyDefaults()
	return c, nil
}

// resolvePaths makes the file paths of a configuration file relative to its directory, dir.
func (c *Config) resolvePaths(dir string) {
	for _, p := range []*string{&c.WebConfigFile, &c.SSLKeystoreLocation, &c.SSLTruststoreLocation, &c.SASLInterBrokerPasswordFile} {
		*p = config.Path(dir, *p)
	}
	for i := range c.InitialSCRAMUsers {
		c.InitialSCRAMUsers[i].PasswordFile = config.Path(dir, c.InitialSCRAMUsers[i].PasswordFile)
	}
}
