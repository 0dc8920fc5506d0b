package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluicemq/sluice/broker"
)

// runBroker is `sluice broker`: flags override the optional --config file, which
// overrides the defaults.
func runBroker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	configPath := fs.String("config", "", "optional broker YAML file (Kafka's names for Kafka settings)")
	listen := fs.String("listen", "", "Kafka listener address host:port (default 127.0.0.1:9092)")
	dataDir := fs.String("data-dir", "", "directory for partition logs and broker state, held exclusively (default sluice-data/broker-<node id>)")
	nodeID := fs.Int("node-id", 0, "node id (default 1; a broker-only node without one, or -1, gets one from the controller and keeps it in --data-dir)")
	roles := fs.String("process-roles", "", "Kafka's process.roles: broker,controller (default), broker (joins the quorum as an observer) or controller")
	bootstrapServers := fs.String("controller-quorum-bootstrap-servers", "", "Kafka's controller.quorum.bootstrap.servers: controller (Raft) addresses host:port[,host:port] a node outside the voters joins through")
	advertised := fs.String("advertised-listen", "", "address given to clients (default: the listen address)")
	keystore := fs.String("ssl-keystore-location", "", "Kafka's ssl.keystore.location: PEM file with this broker's key and certificate chain")
	listeners := fs.String("listeners", "", "Kafka's listeners: NAME://host:port[,...] (with listener.security.protocol.map in --config); replaces --listen")
	advertisedListeners := fs.String("advertised-listeners", "", "Kafka's advertised.listeners: NAME://host:port[,...]")
	controllerListen := fs.String("controller-listen", "", "address of this broker's metadata quorum (Raft) transport")
	quorum := fs.String("controller-quorum", "", "metadata quorum voters, Kafka's controller.quorum.voters: 1@host:port,2@host:port,3@host:port (default: a quorum of this broker alone)")
	flush := fs.String("flush", "", "flush policy: none, interval or always (default interval)")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus /metrics, /healthz and /readyz (and the admin interface) on this address")
	adminListen := fs.String("admin-listen", "", "serve the admin HTTP interface (/api/v1/cluster, /api/v1/events, the tenant and plan API) on this address; tenant and plan writes need a user of --web.config.file, or a loopback listener without one")
	pprofListen := fs.String("pprof", "", "serve net/http/pprof on this address (loopback only without --web.config.file)")
	webConfig := fs.String("web.config.file", "", "exporter-toolkit web config: TLS, client certificates, basic auth users (bcrypt), headers of the metrics, admin and pprof listeners (default none: unauthenticated)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
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

	cfg := broker.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = broker.DecodeConfig(*configPath); err != nil {
			return err
		}
	}
	// Before the other flags: a node id given on the command line wins over
	// process.roles' default.
	if flagSet(fs, "process-roles") {
		cfg.SetProcessRoles(*roles)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "data-dir":
			cfg.DataDir = *dataDir
		case "node-id":
			cfg.NodeID = int32(*nodeID)
		case "advertised-listen":
			cfg.AdvertisedListen = *advertised
		case "listeners":
			cfg.Listeners = *listeners
		case "ssl-keystore-location":
			cfg.SSLKeystoreLocation = *keystore
		case "advertised-listeners":
			cfg.AdvertisedListeners = *advertisedListeners
		case "controller-listen":
			cfg.ControllerListen = *controllerListen
		case "controller-quorum":
			cfg.ControllerQuorumVoters = *quorum
		case "controller-quorum-bootstrap-servers":
			cfg.ControllerQuorumBootstrapServers = *bootstrapServers
		case "flush":
			cfg.Flush = *flush
		case "metrics-listen":
			cfg.MetricsListen = *metricsListen
		case "admin-listen":
			cfg.AdminListen = *adminListen
		case "pprof":
			cfg.PprofListen = *pprofListen
		case "web.config.file":
			cfg.WebConfigFile = *webConfig
		}
	})
	// The default log.dir follows the node id given on the command line.
	if !flagSet(fs, "data-dir") && (cfg.DataDir == broker.DefaultDataDir(1) || cfg.DataDir == broker.DefaultDataDir(broker.AllocateNodeID)) {
		cfg.DataDir = broker.DefaultDataDir(cfg.NodeID)
	}
	if err := cfg.Validate(); err != nil {
		if *configPath != "" {
			return fmt.Errorf("%s with flags: %w", *configPath, err)
		}
		return err
	}
	b, err := broker.New(cfg, logger)
	if err != nil {
		return err
	}
	// SIGHUP reloads the TLS keystore and truststore (changes on disk are also
	// picked up by themselves, within seconds).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				b.ReloadTLS()
			}
		}
	}()
	return b.Run(ctx)
}
