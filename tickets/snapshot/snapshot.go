// Package snapshot captures what a Sluice cluster looked like when an incident
// opened, so R&D can see where to look without logging in anywhere: the cluster
// and its controller, the affected partitions, every under-replicated and offline
// partition, the most lagging consumer groups, recent cluster events from the
// brokers' metadata log, the brokers' recent WARN/ERROR log lines, and charts of
// the alert's expression and broker metrics from a Prometheus-compatible API. A
// diagnosis line names the most likely culprit, and Bundle writes it all as a
// tar.gz with secrets removed.
package snapshot

import (
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/sluicemq/sluice/broker/clientsec"

	"github.com/sluicemq/sluice/broker/adminapi"
)

// Config says where the cluster can be observed from. Every source is optional;
// what cannot be reached is recorded in Snapshot.Errors.
type Config struct {
	// AdminURLs are brokers' admin interfaces (`sluice broker --admin-listen`),
	// e.g. http://127.0.0.1:9644; the first that answers is used.
	AdminURLs []string `yaml:"admin_urls"`
	// Bootstrap are Kafka addresses for consumer groups and lag.
	Bootstrap []string `yaml:"bootstrap"`
	// KafkaSecurity is how the snapshot's Kafka client connects to a secured
	// cluster (TLS, SASL, librdkafka's names); it needs only DESCRIBE rights.
	KafkaSecurity clientsec.Config `yaml:"kafka_security"`
	// PrometheusURL is a Prometheus-compatible query API (Prometheus, Thanos,
	// Mimir) for charts; empty for no charts.
	PrometheusURL string `yaml:"prometheus_url"`
	// LogFiles are globs of broker log files this process can read (slog text
	// or JSON lines); their recent WARN and ERROR lines are kept.
	LogFiles []string `yaml:"log_files"`
	// Timeout bounds one capture, 10s by default.
	Timeout time.Duration `yaml:"timeout"`
	// EventWindow is how far before the impact start cluster events and log
	// lines are kept, 2h by default.
	EventWindow time.Duration `yaml:"event_window"`
	// ChartWindow is the span of the charts before capture, 30m by default.
	ChartWindow time.Duration `yaml:"chart_window"`
	// AdminHTTPConfig and PrometheusHTTPConfig are Prometheus' HTTP client
	// configuration (basic_auth, authorization, tls_config, ...) for the
	// brokers' admin interfaces and the query API when they sit behind a web
	// config. Default: no credentials, redirects not followed.
	AdminHTTPConfig      commoncfg.HTTPClientConfig `yaml:"admin_http_config"`
	PrometheusHTTPConfig commoncfg.HTTPClientConfig `yaml:"prometheus_http_config"`
}

// WithDefaults fills the zero durations.
func (c Config) WithDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.EventWindow <= 0 {
		c.EventWindow = 2 * time.Hour
	}
	if c.ChartWindow <= 0 {
		c.ChartWindow = 30 * time.Minute
	}
	return c
}

// Target is what the incident is about.
type Target struct {
	IncidentID    uint
	Title         string
	Cluster       string
	Brokers       []string
	Topics        []string
	Groups        []string
	ImpactStart   time.Time
	GeneratorURLs []string
}

// Snapshot is the captured state. It is stored as JSON with the incident.
type Snapshot struct {
	CapturedAt      time.Time        `json:"captured_at"`
	Target          Target           `json:"target"`
	Cluster         *Cluster         `json:"cluster,omitempty"`
	Affected        []PartitionState `json:"affected_partitions"`
	UnderReplicated []PartitionState `json:"under_replicated"`
	Offline         []PartitionState `json:"offline"`
	Groups          []GroupLag       `json:"lagging_groups"`
	Events          []Event          `json:"events"`
	Logs            []LogLine        `json:"logs"`
	Charts          []Chart          `json:"charts"`
	Findings        []string         `json:"findings"`
	Diagnosis       string           `json:"diagnosis"`
	Errors          []string         `json:"errors"`
	// Sources says which source answered, e.g. "admin http://...".
	Sources []string `json:"sources"`
}

// Cluster is the cluster identity from a broker's admin interface.
type Cluster struct {
	ID           string `json:"cluster_id"`
	ControllerID int32  `json:"controller_id"`
	// MetadataIndex is the metadata log's last applied index. It only grows
	// while the brokers keep their state: a smaller one than before means
	// their state directories were cleared.
	MetadataIndex uint64       `json:"metadata_index"`
	Brokers       []BrokerInfo `json:"brokers"`
	Topics        int          `json:"topics"`
	Partitions    int          `json:"partitions"`
}

// BrokerInfo is a broker as the metadata log knows it, plus whether this service
// could open a TCP connection to its Kafka listener.
type BrokerInfo struct {
	ID        int32  `json:"id"`
	Host      string `json:"host"`
	Port      int32  `json:"port"`
	Rack      string `json:"rack,omitempty"`
	Fenced    bool   `json:"fenced"`
	Reachable bool   `json:"reachable"`
	DialError string `json:"dial_error,omitempty"`
}

// PartitionState is a partition's leadership and replication.
type PartitionState struct {
	Topic     string  `json:"topic"`
	Partition int     `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

// GroupLag is a consumer group's state and total lag.
type GroupLag struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	Lag     int64  `json:"lag"`
	Error   string `json:"error,omitempty"`
}

// Event is a cluster event from the metadata log, as a broker's admin interface publishes it.
type Event = adminapi.Event

// LogLine is a WARN or ERROR line of a broker log.
type LogLine struct {
	File string `json:"file"`
	Line string `json:"line"`
}

// Chart is one range query's series.
type Chart struct {
	Title  string   `json:"title"`
	Query  string   `json:"query"`
	Series []Series `json:"series"`
	Error  string   `json:"error,omitempty"`
}

// Series is one labelled series of a chart: [unix seconds, value] points.
type Series struct {
	Labels map[string]string `json:"labels"`
	Points [][2]float64      `json:"points"`
}
