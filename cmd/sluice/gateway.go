package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sluicemq/sluice/gateway"
)

func init() {
	subcommands["gateway"] = runGateway
	summaries["gateway"] = "one stable Kafka address in front of the cluster (forwards to leaders and coordinators)"
}

// runGateway is `sluice gateway`: a Kafka-protocol gateway at --listen that
// shows clients the brokers of the cluster at --bootstrap, all at its own address.
func runGateway(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var cfg gateway.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9092", "client listener host:port")
	fs.StringVar(&cfg.Advertised, "advertised", "", "host:port clients are told to use: the DNS name or load balancer address shared by every instance (default the bound --listen)")
	bootstrap := fs.String("bootstrap", "", "brokers to learn the cluster from: host:port[,host:port] (required)")
	nodeID := fs.Int("node-id", 0, "the broker id the gateway presents itself as to clients shown the cluster as one broker (librdkafka before 2.10); the same on every instance behind one name")
	perBroker := fs.Bool("per-broker-view", true, "show clients the cluster's brokers, each at --advertised (librdkafka before 2.10 always gets the gateway as the one broker, --node-id); --per-broker-view=false shows every client the one broker")
	fs.BoolVar(&cfg.AllowUnauthenticated, "allow-unauthenticated", false, "let --listen bind a non-loopback address although the gateway does not authenticate clients")
	maxReq := fs.Int("socket-request-max-bytes", 100<<20, "largest request frame accepted (socket.request.max.bytes)")
	fs.IntVar(&cfg.MaxConnections, "max-connections", 1000, "client connections accepted at a time (max.connections)")
	fs.DurationVar(&cfg.MetadataMaxAge, "metadata-max-age", 0, "how often the cluster's metadata is refreshed when nothing asks sooner (default 10s)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", "", "HTTP address serving /metrics (default none)")
	fs.StringVar(&cfg.WebConfigFile, "web.config.file", "", "exporter-toolkit web config protecting --metrics-listen")
	fs.StringVar(&cfg.ClientSecurityProtocol, "client-security-protocol", "PLAINTEXT", "client listener: PLAINTEXT (no client authentication; requests reach the brokers as the gateway), SASL_PLAINTEXT (clients authenticate with SASL PLAIN or SCRAM, verified by the brokers, and act as themselves; the gateway's own principal must be in the brokers' gateway.principals) or SASL_SSL (the same over TLS, with --ssl-keystore-location)")
	fs.StringVar(&cfg.SSLKeystoreLocation, "ssl-keystore-location", "", "PEM file with the client listener's private key and certificate chain (SASL_SSL; reloaded when it changes)")
	fs.IntVar(&cfg.MaxUnauthenticatedConnections, "max-unauthenticated-connections", 100, "client connections that have not authenticated yet, at a time (SASL_PLAINTEXT, SASL_SSL)")
	fs.DurationVar(&cfg.AuthenticationTimeout, "authentication-timeout", 30*time.Second, "time a client connection has to authenticate, TLS handshake included, before it is closed (SASL_PLAINTEXT, SASL_SSL)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	cfg.Backend.RegisterFlags(fs)
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
	cfg.NodeID = int32(*nodeID)
	cfg.OneBrokerView = !*perBroker
	cfg.MaxRequestBytes = int32(*maxReq)
	g, err := gateway.New(cfg, logger, nil)
	if err != nil {
		return err
	}
	return g.Run(ctx)
}
