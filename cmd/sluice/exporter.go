package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/sluicemq/sluice/exporter"
)

// runExporter is `sluice exporter`: the sidecar that serves kafka_exporter's
// metrics and honest consumer lag for the cluster at --bootstrap.
func runExporter(ctx context.Context, args []string) error {
	def := exporter.DefaultConfig()
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	bootstrap := fs.String("bootstrap", "", "brokers to discover the cluster from: host:port[,host:port] (required)")
	listen := fs.String("listen", def.Listen, "HTTP address serving /metrics, /healthz and /readyz")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config: TLS, client certificates, basic auth users (bcrypt), headers (default none: unauthenticated)")
	interval := fs.Duration("interval", def.Interval, "time between collections")
	window := fs.Int("status-window", def.StatusWindow, "collections a consumer group status is computed over")
	topicFilter := fs.String("topic-filter", def.TopicFilter, "regular expression of the topics to export")
	groupFilter := fs.String("group-filter", def.GroupFilter, "regular expression of the consumer groups to export")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cfg := def
	cfg.Security.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	logger, err := stderrLogger(*logLevel)
	if err != nil {
		return err
	}
	if *bootstrap != "" {
		cfg.Bootstrap = strings.Split(*bootstrap, ",")
	}
	cfg.Listen = *listen
	cfg.WebConfigFile = *webConfig
	cfg.Interval = *interval
	cfg.StatusWindow = *window
	cfg.TopicFilter = *topicFilter
	cfg.GroupFilter = *groupFilter
	e, err := exporter.New(cfg, logger)
	if err != nil {
		return err
	}
	return e.Run(ctx)
}
