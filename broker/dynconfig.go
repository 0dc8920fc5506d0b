package broker

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/metadata"
)

// Dynamic broker configs, Kafka's DynamicBrokerConfig: AlterConfigs and
// IncrementalAlterConfigs on a BROKER resource change broker settings at run
// time, for one broker (the resource name is its node id) or as the cluster-wide
// default (the empty name). The controller records them in the metadata log, so
// every broker applies them from there, also after a restart. The effective value
// of a setting is, like Kafka's, the first of: this broker's dynamic value
// (DYNAMIC_BROKER_CONFIG), the cluster default (DYNAMIC_DEFAULT_BROKER_CONFIG),
// broker.yaml or flags (STATIC_BROKER_CONFIG), the built-in default
// (DEFAULT_CONFIG).
//
// Each setting is described once, in brokerConfigDefs: its scope says whether
// Kafka lets it change at run time. Parts of the broker that act on a dynamic
// setting subscribe with onBrokerConfigChange; the topic config defaults
// (log.retention.ms and the other synonyms of topic configs) are read through
// brokerConfigValue whenever a topic's effective configs are computed, and
// applyImage re-applies every partition's log config when they change.

// configScope is where a broker setting may be changed.
type configScope int

const (
	// scopeReadOnly settings come from broker.yaml and flags and need a restart.
	scopeReadOnly configScope = iota
	// scopeCluster settings may be set per broker and as the cluster default.
	scopeCluster
	// scopePerBroker settings may be set per broker only (Kafka: listener
	// settings such as keystores).
	scopePerBroker
)

// brokerConfigDef describes one broker setting by its Kafka name.
type brokerConfigDef struct {
	name  string
	typ   kmsg.ConfigType
	scope configScope
	// static is the value from broker.yaml, flags or the built-in default.
	static func(c *Config) string
	// validate checks a dynamic value; nil for read-only settings.
	validate func(string) error
	// sensitive values are never returned (DescribeConfigs answers null), as
	// Kafka does for passwords and keys.
	sensitive bool
	// ignored, when set, says why Sluice accepts the setting but does not act
	// on it (reported as its documentation and in docs/compatibility.md).
	ignored string
}

var (
	brokerConfigDefs  []brokerConfigDef
	brokerConfigIndex = map[string]int{}
)

// registerBrokerConfig adds a broker setting. Files that act on a dynamic
// setting register it from init, as API files register their API, and
// subscribe to its changes with onBrokerConfigChange when the broker starts.
func registerBrokerConfig(d brokerConfigDef) {
	if _, dup := brokerConfigIndex[d.name]; dup {
		panic("broker config registered twice: " + d.name)
	}
	if d.scope != scopeReadOnly && d.validate == nil {
		panic("dynamic broker config without validation: " + d.name)
	}
	brokerConfigIndex[d.name] = len(brokerConfigDefs)
	brokerConfigDefs = append(brokerConfigDefs, d)
}

func brokerConfigDefByName(name string) *brokerConfigDef {
	i, ok := brokerConfigIndex[name]
	if !ok {
		return nil
	}
	return &brokerConfigDefs[i]
}

// defaultBrokerConfig tells built-in defaults (DEFAULT_CONFIG) from settings
// of broker.yaml or flags (STATIC_BROKER_CONFIG).
var defaultBrokerConfig = DefaultConfig()

func init() {
	ro := func(name string, f func(c *Config) string) {
		registerBrokerConfig(brokerConfigDef{name: name, typ: kmsg.ConfigTypeString, scope: scopeReadOnly, static: f})
	}
	// Dynamic settings Sluice acts on beyond the topic defaults.
	registerBrokerConfig(brokerConfigDef{name: "log.flush.interval.ms", typ: kmsg.ConfigTypeLong, scope: scopeCluster,
		static: func(c *Config) string { return i64(c.FlushIntervalMs) }, validate: intRange(1, maxInt64)})

	// Read-only settings: Kafka does not change them at run time either.
	ro("node.id", func(c *Config) string { return i64(int64(c.NodeID)) })
	ro("broker.id", func(c *Config) string { return i64(int64(c.NodeID)) })
	ro("log.dir", func(c *Config) string { return c.DataDir })
	ro("log.dirs", func(c *Config) string { return c.DataDir })
	ro("listeners", func(c *Config) string {
		if c.Security.Listeners != "" {
			return c.Security.Listeners
		}
		return "PLAINTEXT://" + c.Listen
	})
	ro("advertised.listeners", func(c *Config) string {
		if c.Security.AdvertisedListeners != "" {
			return c.Security.AdvertisedListeners
		}
		if c.AdvertisedListen == "" {
			return ""
		}
		return "PLAINTEXT://" + c.AdvertisedListen
	})
	ro("controller.quorum.voters", func(c *Config) string { return c.ControllerQuorumVoters })
	ro("process.roles", func(c *Config) string {
		voters, _ := metadata.ParseVoters(c.ControllerQuorumVoters)
		for _, v := range voters {
			if v.ID == c.NodeID {
				return "broker,controller"
			}
		}
		if len(voters) == 0 {
			return "broker,controller"
		}
		return "broker"
	})
	ro("sluice.flush.policy", func(c *Config) string { return c.Flush })
	ro("num.partitions", func(c *Config) string { return i64(int64(c.NumPartitions)) })
	ro("default.replication.factor", func(c *Config) string { return i64(int64(c.DefaultReplicationFactor)) })
	ro("auto.create.topics.enable", func(c *Config) string { return strconv.FormatBool(*c.AutoCreateTopics) })
	ro("delete.topic.enable", func(c *Config) string { return strconv.FormatBool(*c.DeleteTopicEnable) })
	ro("socket.request.max.bytes", func(c *Config) string { return i64(int64(c.SocketRequestMaxBytes)) })
	ro("log.retention.check.interval.ms", func(c *Config) string { return i64(c.LogRetentionCheckIntervalMs) })
	ro("broker.session.timeout.ms", func(c *Config) string { return i64(c.BrokerSessionTimeoutMs) })
	ro("replica.lag.time.max.ms", func(c *Config) string { return i64(c.ReplicaLagTimeMaxMs) })
	ro("offsets.topic.replication.factor", func(c *Config) string { return i64(int64(c.OffsetsTopicReplicationFactor)) })
	ro("offsets.topic.num.partitions", func(c *Config) string { return i64(int64(c.OffsetsTopicNumPartitions)) })
	ro("offsets.retention.minutes", func(c *Config) string { return i64(c.OffsetsRetentionMinutes) })
	ro("group.min.session.timeout.ms", func(c *Config) string { return i64(c.GroupMinSessionTimeoutMs) })
	ro("group.max.session.timeout.ms", func(c *Config) string { return i64(c.GroupMaxSessionTimeoutMs) })
	ro("group.initial.rebalance.delay.ms", func(c *Config) string { return i64(*c.GroupInitialRebalanceDelayMs) })
	ro("group.max.size", func(c *Config) string { return i64(int64(c.GroupMaxSize)) })
	// The connection, request memory and topic limits (limits.go).
	ro("queued.max.request.bytes", func(c *Config) string { return i64(c.QueuedMaxRequestBytes) })
	ro("request.read.timeout.ms", func(c *Config) string { return i64(c.RequestReadTimeoutMs) })
	ro("connections.max.idle.ms", func(c *Config) string { return i64(c.ConnectionsMaxIdleMs) })
	ro("max.connections", func(c *Config) string { return i64(int64(c.MaxConnections)) })
	ro("max.connections.per.ip", func(c *Config) string { return i64(int64(c.MaxConnectionsPerIP)) })
	ro("max.connections.per.ip.overrides", func(c *Config) string { return c.MaxConnectionsPerIPOverrides })
	ro("max.connection.creation.rate", func(c *Config) string { return i64(int64(c.MaxConnectionCreationRate)) })
	ro("max.partitions.per.request", func(c *Config) string { return i64(int64(c.MaxPartitionsPerRequest)) })
	ro("max.partitions.per.topic", func(c *Config) string { return i64(int64(c.MaxPartitionsPerTopic)) })
	ro("max.partitions.per.broker", func(c *Config) string { return i64(int64(c.MaxPartitionsPerBroker)) })

	// The broker-wide defaults of topic configs (Kafka's DynamicLogConfig):
	// dynamic, acting wherever the topic config acts.
	for _, d := range topicConfigDefs {
		if d.synonym == "" || brokerConfigDefByName(d.synonym) != nil {
			continue
		}
		bd := brokerConfigDef{name: d.synonym, typ: d.typ, scope: scopeCluster, static: d.def, validate: d.validate, ignored: ignoredTopicConfigs[d.name]}
		if d.name == "unclean.leader.election.enable" {
			bd.ignored = "the controller elects by the topic's own unclean.leader.election.enable only"
		}
		registerBrokerConfig(bd)
	}

	// Kafka's other dynamic settings: log cleaner and thread pools. Sluice has
	// no such pools; the values are validated, stored and reported.
	cleaner := "compaction runs in the broker's maintenance loop every log.retention.check.interval.ms, without a thread pool or I/O budget"
	pools := "Sluice has no such thread pool: each connection, replica fetcher and log task is its own goroutine"
	for _, c := range []struct {
		name, def, why string
		typ            kmsg.ConfigType
		validate       func(string) error
	}{
		{"log.cleaner.threads", "1", cleaner, kmsg.ConfigTypeInt, intRange(0, 1<<31-1)},
		{"log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308", cleaner, kmsg.ConfigTypeDouble, positiveFloat},
		{"log.cleaner.dedupe.buffer.size", "134217728", cleaner, kmsg.ConfigTypeLong, intRange(0, maxInt64)},
		{"log.cleaner.io.buffer.size", "524288", cleaner, kmsg.ConfigTypeInt, intRange(0, 1<<31-1)},
		{"log.cleaner.io.buffer.load.factor", "0.9", cleaner, kmsg.ConfigTypeDouble, positiveFloat},
		{"log.cleaner.backoff.ms", "15000", cleaner, kmsg.ConfigTypeLong, intRange(0, maxInt64)},
		{"num.io.threads", "8", pools, kmsg.ConfigTypeInt, intRange(1, 1<<31-1)},
		{"num.network.threads", "3", pools, kmsg.ConfigTypeInt, intRange(1, 1<<31-1)},
		{"num.replica.fetchers", "1", pools, kmsg.ConfigTypeInt, intRange(1, 1<<31-1)},
		{"num.recovery.threads.per.data.dir", "1", pools, kmsg.ConfigTypeInt, intRange(1, 1<<31-1)},
		{"background.threads", "10", pools, kmsg.ConfigTypeInt, intRange(1, 1<<31-1)},
	} {
		def := c.def
		registerBrokerConfig(brokerConfigDef{name: c.name, typ: c.typ, scope: scopeCluster,
			static: func(*Config) string { return def }, validate: c.validate, ignored: c.why})
	}
}

func positiveFloat(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive number", s)
	}
	return nil
}

// dynamicConfigs is what the metadata log holds for this broker: its own
// dynamic settings and the cluster defaults. Immutable once stored.
type dynamicConfigs struct {
	perBroker map[string]string
	defaults  map[string]string
}

// brokerConfigListener is a subscription of onBrokerConfigChange.
type brokerConfigListener struct {
	names []string
	fn    func(values map[string]string)
}

// dynamicConfigState is the Broker's dynamic config state.
type dynamicConfigState struct {
	mu        sync.Mutex // guards listeners and serializes applying
	listeners []brokerConfigListener
	cur       atomic.Pointer[dynamicConfigs]
}

// onBrokerConfigChange calls fn with the effective values of names (dynamic,
// static or default) whenever the metadata log changes one of them, from the
// goroutine applying metadata; fn must not block. It is how parts of the broker
// act on dynamic settings without a restart (the flush interval here; quota
// defaults and listener certificates register their own settings and subscribe
// the same way). fn is also called once now, with the current values.
func (b *Broker) onBrokerConfigChange(names []string, fn func(values map[string]string)) {
	b.dynamic.mu.Lock()
	defer b.dynamic.mu.Unlock()
	b.dynamic.listeners = append(b.dynamic.listeners, brokerConfigListener{names: slices.Clone(names), fn: fn})
	fn(b.brokerConfigValues(names))
}

func (b *Broker) brokerConfigValues(names []string) map[string]string {
	out := make(map[string]string, len(names))
	for _, n := range names {
		out[n], _ = b.brokerConfigValue(n)
	}
	return out
}

// brokerConfigValue is the effective value of a broker setting and where it
// comes from; unknown names give "" and DEFAULT_CONFIG.
func (b *Broker) brokerConfigValue(name string) (string, kmsg.ConfigSource) {
	if dc := b.dynamic.cur.Load(); dc != nil {
		if v, ok := dc.perBroker[name]; ok {
			return v, kmsg.ConfigSourceDynamicBrokerConfig
		}
		if v, ok := dc.defaults[name]; ok {
			return v, kmsg.ConfigSourceDynamicDefaultBrokerConfig
		}
	}
	d := brokerConfigDefByName(name)
	if d == nil {
		return "", kmsg.ConfigSourceDefaultConfig
	}
	v := d.static(&b.cfg)
	if v != d.static(&defaultBrokerConfig) {
		return v, kmsg.ConfigSourceStaticBrokerConfig
	}
	return v, kmsg.ConfigSourceDefaultConfig
}

// dynamicBrokerValue is the dynamic value of a broker setting, if one is set.
func (b *Broker) dynamicBrokerValue(name string) (string, kmsg.ConfigSource, bool) {
	dc := b.dynamic.cur.Load()
	if dc == nil {
		return "", 0, false
	}
	if v, ok := dc.perBroker[name]; ok {
		return v, kmsg.ConfigSourceDynamicBrokerConfig, true
	}
	if v, ok := dc.defaults[name]; ok {
		return v, kmsg.ConfigSourceDynamicDefaultBrokerConfig, true
	}
	return "", 0, false
}

// applyBrokerConfigs takes this broker's dynamic settings from a metadata image,
// tells the subscribers of changed settings and reports whether anything
// changed (then the topic defaults may have too).
func (b *Broker) applyBrokerConfigs(img *metadata.Image) bool {
	next := &dynamicConfigs{
		perBroker: img.BrokerConfigs[strconv.Itoa(int(b.cfg.NodeID))],
		defaults:  img.BrokerConfigs[""],
	}
	b.dynamic.mu.Lock()
	defer b.dynamic.mu.Unlock()
	prev := b.dynamic.cur.Load()
	if prev != nil && maps.Equal(prev.perBroker, next.perBroker) && maps.Equal(prev.defaults, next.defaults) {
		return false
	}
	var before map[string]string
	if prev != nil {
		before = b.effectiveDynamic(prev)
	}
	b.dynamic.cur.Store(next)
	after := b.effectiveDynamic(next)
	changed := map[string]bool{}
	for k, v := range after {
		if before[k] != v {
			changed[k] = true
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed[k] = true
		}
	}
	if len(changed) == 0 && prev != nil {
		return false
	}
	for k := range changed {
		v, src := b.brokerConfigValue(k)
		if !brokerConfigSensitive(k) {
			b.logger.Info("broker config changed", "config", k, "value", v, "source", src.String())
		}
	}
	for _, l := range b.dynamic.listeners {
		if slices.ContainsFunc(l.names, func(n string) bool { return changed[n] }) {
			l.fn(b.brokerConfigValues(l.names))
		}
	}
	return true
}

// effectiveDynamic merges the defaults under the broker's own settings.
func (b *Broker) effectiveDynamic(dc *dynamicConfigs) map[string]string {
	out := maps.Clone(dc.defaults)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, dc.perBroker)
	return out
}

func brokerConfigSensitive(name string) bool {
	d := brokerConfigDefByName(name)
	return d != nil && d.sensitive
}

// configResourceString is how Kafka names a config resource in its messages.
func configResourceString(typ kmsg.ConfigResourceType, name string) string {
	return fmt.Sprintf("ConfigResource(type=%s, name='%s')", strings.ToUpper(typ.String()), name)
}

// scalaSet renders names like the Scala sets in Kafka's messages.
func scalaSet(names []string) string {
	slices.Sort(names)
	return "Set(" + strings.Join(names, ", ") + ")"
}

// checkBrokerResource checks the name of a BROKER config resource: empty (the
// cluster default) or a node id.
func checkBrokerResource(name string) error {
	if name == "" {
		return nil
	}
	if id, err := strconv.ParseInt(name, 10, 32); err != nil || id < 0 {
		return kafkaErr(kerr.InvalidRequest, fmt.Sprintf("Broker id must be an integer, but it is: %s", name))
	}
	return nil
}

// validateBrokerConfigs checks new dynamic settings of a BROKER resource the
// way Kafka's DynamicBrokerConfig.validate does, with its error codes and
// messages: unknown names get INVALID_CONFIG (Kafka would store them as custom
// settings), read-only ones and bad values INVALID_REQUEST.
func validateBrokerConfigs(resource string, configs map[string]string) error {
	if err := checkBrokerResource(resource); err != nil {
		return err
	}
	prefix := "Invalid config value for resource " + configResourceString(kmsg.ConfigResourceTypeBroker, resource) + ": "
	var readOnly, perBroker []string
	for name := range configs {
		d := brokerConfigDefByName(name)
		switch {
		case d == nil:
			return kafkaErr(kerr.InvalidConfig, fmt.Sprintf("Unknown broker config name: %s", name))
		case d.scope == scopeReadOnly:
			readOnly = append(readOnly, name)
		case d.scope == scopePerBroker && resource == "":
			perBroker = append(perBroker, name)
		}
	}
	if len(readOnly) > 0 {
		return kafkaErr(kerr.InvalidRequest, prefix+"Cannot update these configs dynamically: "+scalaSet(readOnly))
	}
	if len(perBroker) > 0 {
		return kafkaErr(kerr.InvalidRequest, prefix+"Cannot update these configs at default cluster level, broker id must be specified: "+scalaSet(perBroker))
	}
	names := slices.Sorted(maps.Keys(configs))
	for _, name := range names {
		if err := brokerConfigDefByName(name).validate(configs[name]); err != nil {
			return kafkaErr(kerr.InvalidRequest, fmt.Sprintf("%sInvalid value %s for configuration %s: %v", prefix, configs[name], name, err))
		}
	}
	return nil
}

// brokerDynamicConfigs is the current dynamic settings of a BROKER resource as
// the metadata log holds them.
func (b *Broker) brokerDynamicConfigs(resource string) map[string]string {
	out := maps.Clone(b.quorum.Image().BrokerConfigs[resource])
	if out == nil {
		out = map[string]string{}
	}
	return out
}

// setBrokerConfigs validates a BROKER resource's new dynamic settings (the
// whole set) and, unless validateOnly, records them through the controller;
// every broker applies them from the metadata log.
func (b *Broker) setBrokerConfigs(cc *conn, resource string, configs map[string]string, validateOnly bool) error {
	if err := validateBrokerConfigs(resource, configs); err != nil || validateOnly {
		return err
	}
	if err := b.quorum.AlterBrokerConfigs(cc.ctx, resource, configs); err != nil {
		return err
	}
	b.waitForImage(cc.ctx, func() bool { return maps.Equal(b.quorum.Image().BrokerConfigs[resource], configs) })
	return nil
}

// describeBrokerConfigs answers DescribeConfigs for a BROKER resource: this
// broker's settings (resource = its node id) or the cluster defaults set
// dynamically (resource empty), as Kafka answers.
func (b *Broker) describeBrokerConfigs(req *kmsg.DescribeConfigsRequest, rr *kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) {
	want := func(name string) bool { return rr.ConfigNames == nil || slices.Contains(rr.ConfigNames, name) }
	self := strconv.Itoa(int(b.cfg.NodeID))
	if rr.ResourceName != "" && rr.ResourceName != self {
		sr.ErrorCode = kerr.InvalidRequest.Code
		msg := fmt.Sprintf("Unexpected broker id, expected %s or empty string, but received %s", self, rr.ResourceName)
		sr.ErrorMessage = &msg
		return
	}
	dc := b.dynamic.cur.Load()
	for i := range brokerConfigDefs {
		d := &brokerConfigDefs[i]
		if !want(d.name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ConfigType, c.ReadOnly, c.IsSensitive = d.name, d.typ, d.scope == scopeReadOnly, d.sensitive
		var v string
		if rr.ResourceName == "" {
			dv, ok := "", false
			if dc != nil {
				dv, ok = dc.defaults[d.name]
			}
			if !ok {
				continue
			}
			v, c.Source = dv, kmsg.ConfigSourceDynamicDefaultBrokerConfig
		} else {
			v, c.Source = b.brokerConfigValue(d.name)
		}
		c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		if !d.sensitive {
			c.Value = &v
		}
		if req.IncludeSynonyms {
			c.ConfigSynonyms = b.brokerConfigSynonyms(d, rr.ResourceName == "")
		}
		if d.ignored != "" && req.IncludeDocumentation {
			doc := "Accepted for compatibility; Sluice does not act on it: " + d.ignored + "."
			c.Documentation = &doc
		}
		sr.Configs = append(sr.Configs, c)
	}
}

// brokerConfigSynonyms lists every layer that sets a broker setting, the one in
// effect first, as Kafka's DescribeConfigs synonyms do.
func (b *Broker) brokerConfigSynonyms(d *brokerConfigDef, defaultsOnly bool) []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	var out []kmsg.DescribeConfigsResponseResourceConfigConfigSynonym
	add := func(v string, src kmsg.ConfigSource) {
		s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
		s.Name, s.Source = d.name, src
		if !d.sensitive {
			s.Value = &v
		}
		out = append(out, s)
	}
	if dc := b.dynamic.cur.Load(); dc != nil {
		if v, ok := dc.perBroker[d.name]; ok && !defaultsOnly {
			add(v, kmsg.ConfigSourceDynamicBrokerConfig)
		}
		if v, ok := dc.defaults[d.name]; ok {
			add(v, kmsg.ConfigSourceDynamicDefaultBrokerConfig)
		}
	}
	if defaultsOnly {
		return out
	}
	if v := d.static(&b.cfg); v != d.static(&defaultBrokerConfig) {
		add(v, kmsg.ConfigSourceStaticBrokerConfig)
	}
	add(d.static(&defaultBrokerConfig), kmsg.ConfigSourceDefaultConfig)
	return out
}
