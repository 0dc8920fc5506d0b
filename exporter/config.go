package exporter

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// Config configures an Exporter. DefaultConfig gives the defaults, and Validate
// is the one place that checks them; New calls it.
type Config struct {
	// Bootstrap lists host:port addresses of brokers to discover the cluster
	// from, like kafka_exporter's --kafka.server. Required.
	Bootstrap []string

	// Listen is the address of the HTTP server serving /metrics, /healthz and
	// /readyz, overriding the default of ":9308", kafka_exporter's port.
	// "127.0.0.1:0" picks a free port (see Exporter.Addr).
	Listen string

	// WebConfigFile is a web config in github.com/prometheus/exporter-toolkit's
	// format (TLS, client certificates, basic auth with bcrypt hashes, extra
	// headers), kafka_exporter's --web.config.file. Default none: plain HTTP,
	// and the start message says the listener is unauthenticated.
	WebConfigFile string

	// Interval is the time between the starts of two collections, overriding
	// the default of 15s. A collection that runs longer delays the next one;
	// scrapes are always answered from the last completed collection.
	Interval time.Duration

	// CollectTimeout bounds one collection, overriding the default of the
	// Interval. A collection that times out counts as failed: the previous
	// snapshot is kept and sluice_exporter_up becomes 0.
	CollectTimeout time.Duration

	// StatusWindow is how many collections the Burrow-style status of a group
	// partition is computed over, overriding the default of 10 (Burrow's
	// intervals). At the default Interval that is 2.5 minutes.
	StatusWindow int

	// FetchOffsetsConcurrency bounds the OffsetFetch requests in flight,
	// overriding the default of 8.
	FetchOffsetsConcurrency int

	// GroupsPerRequest is how many groups one OffsetFetch (v8+) or
	// DescribeGroups request asks about, overriding the default of 100.
	GroupsPerRequest int

	// LagTimeReadsPerCycle caps how many records one collection reads to
	// learn the timestamp at a committed offset (for
	// sluice_consumergroup_lag_seconds), overriding the default of 20000.
	// Timestamps are cached, so a steady state reads only offsets that moved.
	// 0 turns lag in seconds off.
	LagTimeReadsPerCycle int

	// TopicFilter is a regular expression a topic must match to be exported,
	// like kafka_exporter's --topic.filter; default ".*".
	TopicFilter string

	// GroupFilter is a regular expression a consumer group must match to be
	// exported, like kafka_exporter's --group.filter; default ".*".
	GroupFilter string

	// ClientID is the Kafka client.id of the exporter's connections,
	// overriding the default of "sluice-exporter".
	ClientID string

	// Security is how the exporter connects to a secured cluster (TLS, SASL);
	// the zero value is PLAINTEXT. The exporter needs only DESCRIBE rights.
	Security clientsec.Config
}

// DefaultConfig returns a Config with every default set and no bootstrap
// address.
func DefaultConfig() Config {
	return Config{
		Listen:                  ":9308",
		Interval:                15 * time.Second,
		StatusWindow:            10,
		FetchOffsetsConcurrency: 8,
		GroupsPerRequest:        100,
		LagTimeReadsPerCycle:    20000,
		TopicFilter:             ".*",
		GroupFilter:             ".*",
		ClientID:                "sluice-exporter",
	}
}

// Validate reports the first invalid field by name. A zero CollectTimeout
// means the Interval, so Validate fills it in.
func (c *Config) Validate() error {
	if len(c.Bootstrap) == 0 {
		return errors.New("exporter config: bootstrap: at least one host:port is required")
	}
	for _, a := range c.Bootstrap {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil {
			return fmt.Errorf("exporter config: bootstrap: %q is not host:port: %w", a, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("exporter config: listen: %q is not host:port: %w", c.Listen, err)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("exporter config: interval: must be positive, got %s", c.Interval)
	}
	if c.CollectTimeout < 0 {
		return fmt.Errorf("exporter config: collect_timeout: must not be negative, got %s", c.CollectTimeout)
	}
	if c.CollectTimeout == 0 {
		c.CollectTimeout = c.Interval
	}
	if c.StatusWindow < 2 {
		return fmt.Errorf("exporter config: status_window: must be at least 2 collections, got %d", c.StatusWindow)
	}
	if c.FetchOffsetsConcurrency < 1 {
		return fmt.Errorf("exporter config: fetch_offsets_concurrency: must be at least 1, got %d", c.FetchOffsetsConcurrency)
	}
	if c.GroupsPerRequest < 1 {
		return fmt.Errorf("exporter config: groups_per_request: must be at least 1, got %d", c.GroupsPerRequest)
	}
	if c.LagTimeReadsPerCycle < 0 {
		return fmt.Errorf("exporter config: lag_time_reads_per_cycle: must not be negative, got %d", c.LagTimeReadsPerCycle)
	}
	if _, err := regexp.Compile(c.TopicFilter); err != nil {
		return fmt.Errorf("exporter config: topic_filter: %w", err)
	}
	if _, err := regexp.Compile(c.GroupFilter); err != nil {
		return fmt.Errorf("exporter config: group_filter: %w", err)
	}
	if c.ClientID == "" {
		return errors.New("exporter config: client_id: must not be empty")
	}
	if err := c.Security.Validate(); err != nil {
		return fmt.Errorf("exporter config: %w", err)
	}
	return nil
}
