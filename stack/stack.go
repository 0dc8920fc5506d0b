// Package stack runs Sluice's local stack in one process for `make run`: a
// three-broker cluster, the exporter, the alerting service (in-process rules,
// notifications to the log and to the ticket service) and the ticket service
// with its web UI on SQLite, with embedded defaults and data under one
// directory, stopped cleanly together.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/chaos/scaling"
	"github.com/sluicemq/sluice/exporter"
	"github.com/sluicemq/sluice/gateway"
)

// Config is the local stack's layout. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	// DataDir holds one directory per broker, default ./data.
	DataDir string
	// Host is the loopback address everything binds, default 127.0.0.1.
	Host string
	// Brokers is the number of brokers, default 3.
	Brokers int
	// KafkaPort is the first broker's Kafka port (9092, 9093, ...).
	KafkaPort int
	// ControllerPort is the first broker's metadata quorum port (9192, ...).
	ControllerPort int
	// MetricsPort is the first broker's /metrics and admin port (9642, ...).
	MetricsPort int
	// ExporterPort is the exporter's port, default 9308.
	ExporterPort int
	// Flush is the brokers' flush policy, default interval.
	Flush string
	// AlertingPort serves the alerting API, default 9095 (9093, Alertmanager's port,
	// is a broker's).
	AlertingPort int
	// TicketsPort serves the ticket service and web UI, default 8080.
	TicketsPort int
	// AdminPassword is the first admin's password of a new ticket database;
	// empty generates one, printed once.
	AdminPassword string
	// Demo, when set, runs demo traffic and an optional fault (make demo).
	Demo *Demo
	// GatewayPort is the Kafka port of the gateway (`sluice gateway`), the one
	// address clients need, default 9096; 0 picks a free port. The gateway does
	// not authenticate clients, so a --secure stack has none.
	GatewayPort int
	// GatewayMetricsPort serves the gateway's /metrics, default 9652; 0 picks a
	// free port.
	GatewayMetricsPort int
	// Secure serves Kafka with SASL_SSL only (`sluice dev --secure`): a local CA and
	// the user admin with a generated password under DataDir/secure.
	Secure bool
}

// DefaultConfig is the stack `make run` starts.
func DefaultConfig() Config {
	return Config{DataDir: "data", Host: "127.0.0.1", Brokers: 3, KafkaPort: 9092, ControllerPort: 9192,
		MetricsPort: 9642, ExporterPort: 9308, Flush: "interval", AlertingPort: 9095, TicketsPort: 8080,
		GatewayPort: 9096, GatewayMetricsPort: 9652}
}

// Run starts the stack, prints where everything is to out, and serves until ctx
// is done; then it stops every part and returns.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) error {
	if cfg.Brokers < 1 {
		return fmt.Errorf("brokers: %d, need at least 1", cfg.Brokers)
	}
	addr := func(port, i int) string { return net.JoinHostPort(cfg.Host, strconv.Itoa(port+i)) }
	var sec *secureSetup
	if cfg.Secure {
		if cfg.Demo != nil {
			return errors.New("the demo's traffic is plaintext: run it without --secure")
		}
		var err error
		if sec, err = prepareSecure(cfg); err != nil {
			return err
		}
	}
	if cfg.Demo != nil {
		if err := cfg.Demo.setDefaults(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if cfg.Demo.Scenario == "scale" {
			if cfg.Brokers != 3 {
				return fmt.Errorf("brokers: %d, the scaling scenario runs on 3", cfg.Brokers)
			}
			if err := checkScaleDataDir(cfg.DataDir); err != nil {
				return err
			}
		}
	}
	var voters []string
	for i := range cfg.Brokers {
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, addr(cfg.ControllerPort, i)))
	}
	// Every part runs in one errgroup: the first to fail stops the others, and every
	// path out of Run stops them all and waits (shutdown).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	shutdown := func(err error) error {
		cancel()
		if werr := g.Wait(); err == nil {
			err = werr
		}
		return err
	}
	brokers := make([]*broker.Broker, cfg.Brokers)
	stops := make([]func(), cfg.Brokers)
	bcs := make([]broker.Config, cfg.Brokers)
	var bootstrap []string
	// startBroker creates and runs broker i; stops[i] stops it and waits.
	startBroker := func(i int) error {
		b, err := broker.New(bcs[i], logger.With("node", i+1))
		if err != nil {
			return fmt.Errorf("broker %d: %w", i+1, err)
		}
		bctx, bcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		brokers[i] = b
		stops[i] = func() { bcancel(); <-done }
		g.Go(func() error {
			defer close(done)
			if err := b.Run(bctx); err != nil {
				return fmt.Errorf("broker %d: %w", i+1, err)
			}
			return nil
		})
		return nil
	}
	for i := range cfg.Brokers {
		bc := broker.DefaultConfig()
		bc.NodeID = int32(i + 1)
		bc.Listen = addr(cfg.KafkaPort, i)
		bc.DataDir = filepath.Join(cfg.DataDir, strconv.Itoa(i+1))
		bc.ControllerListen = addr(cfg.ControllerPort, i)
		bc.ControllerQuorumVoters = strings.Join(voters, ",")
		bc.MetricsListen = addr(cfg.MetricsPort, i)
		bc.Flush = cfg.Flush
		if sec != nil {
			sec.broker(&bc)
		}
		bcs[i] = bc
		bootstrap = append(bootstrap, bc.Listen)
		if err := startBroker(i); err != nil {
			return shutdown(err)
		}
	}
	for _, b := range brokers {
		select {
		case <-b.Ready():
		case <-ctx.Done():
			return shutdown(nil)
		case <-time.After(30 * time.Second):
			return shutdown(errors.New("brokers did not become ready within 30s"))
		}
	}

	ec := exporter.DefaultConfig()
	ec.Bootstrap = bootstrap
	ec.Listen = addr(cfg.ExporterPort, 0)
	if sec != nil {
		ec.Security = sec.client()
	}
	exp, err := exporter.New(ec, logger.With("part", "exporter"))
	if err != nil {
		return shutdown(fmt.Errorf("exporter: %w", err))
	}
	g.Go(func() error {
		if err := exp.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("exporter: %w", err)
		}
		return nil
	})

	var gw *gateway.Gateway
	if sec == nil {
		gw, err = gateway.New(gateway.Config{Listen: addr(cfg.GatewayPort, 0), Bootstrap: bootstrap,
			MetricsListen: addr(cfg.GatewayMetricsPort, 0)}, logger.With("part", "gateway"), nil)
		if err != nil {
			return shutdown(fmt.Errorf("gateway: %w", err))
		}
		g.Go(func() error {
			if err := gw.Run(ctx); err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			return nil
		})
	}

	var metricsAddrs, adminURLs []string
	for i := range brokers {
		metricsAddrs = append(metricsAddrs, addr(cfg.MetricsPort, i))
		adminURLs = append(adminURLs, "http://"+addr(cfg.MetricsPort, i))
	}
	ops, err := startOps(ctx, cfg, logger, opsWiring{
		bootstrap: bootstrap, brokerMetrics: metricsAddrs, adminURLs: adminURLs,
		exporter: ec.Listen, alertingAddr: addr(cfg.AlertingPort, 0), ticketsAddr: addr(cfg.TicketsPort, 0),
		kafkaSecurity: ec.Security, gatewayMetrics: gatewayMetrics(gw),
	}, g)
	if err != nil {
		return shutdown(err)
	}

	fmt.Fprintf(out, "\nSluice is running (Ctrl-C stops it; data stays under %s):\n", cfg.DataDir)
	if gw != nil {
		fmt.Fprintf(out, "  Kafka (use this)  %s  (the gateway: one stable address for the whole cluster)\n", gw.Addr())
	}
	fmt.Fprintf(out, "  Kafka bootstrap   %s\n", strings.Join(bootstrap, ","))
	if sec != nil {
		fmt.Fprintf(out, "  Kafka security    SASL_SSL, SCRAM-SHA-512 user admin, password in %s, CA %s\n", sec.passFile, sec.caFile)
		fmt.Fprintf(out, "  connect           %s\n", sec.kcatLine(bootstrap[0]))
	}
	for i := range brokers {
		fmt.Fprintf(out, "  broker %d metrics  http://%s/metrics  (admin: /api/v1/cluster, /api/v1/events)\n", i+1, addr(cfg.MetricsPort, i))
	}
	fmt.Fprintf(out, "  exporter          http://%s/metrics\n", ec.Listen)
	if gw != nil {
		fmt.Fprintf(out, "  gateway metrics   http://%s/metrics\n", gw.MetricsAddr())
	}
	fmt.Fprintf(out, "  alerting          http://%s/api/v1/alerts  (rules: /api/v1/rules; a Prometheus data source for Grafana: http://%s)\n", addr(cfg.AlertingPort, 0), addr(cfg.AlertingPort, 0))
	fmt.Fprintf(out, "  tickets and UI    http://%s/  %s\n\n", addr(cfg.TicketsPort, 0), ops.login)

	if cfg.Demo != nil {
		d := *cfg.Demo
		stopBroker := func(i int) (func() error, error) {
			stops[i]()
			return func() error { return startBroker(i) }, nil
		}
		if d.Scenario == "scale" {
			var quorum []string
			var nodes []scaling.Node
			for i := range brokers {
				quorum = append(quorum, addr(cfg.ControllerPort, i))
				nodes = append(nodes, scaling.Node{ID: int32(i + 1), Addr: bootstrap[i], MetricsAddr: metricsAddrs[i]})
			}
			sc := &scaleCluster{bin: d.Bin, dir: filepath.Join(cfg.DataDir, scaleNodesDir), quorum: strings.Join(quorum, ","),
				flush: cfg.Flush, nodes: map[int32]*scaleProc{},
				stopBroker: func(id int32) error { stops[id-1](); return nil }}
			if err := os.MkdirAll(sc.dir, 0o700); err != nil {
				return shutdown(err)
			}
			g.Go(func() error {
				if err := runScaleDemo(ctx, sc, scaling.Config{Gateway: gw.Addr(), Brokers: nodes, Bin: d.Bin, Out: out}, out); err != nil {
					return fmt.Errorf("scaling scenario: %w", err)
				}
				return nil
			})
			<-ctx.Done()
			return shutdown(nil)
		}
		g.Go(func() error {
			// The demo's producer writes through the gateway, as clients should, and its
			// consumer groups read from the brokers, so the dashboards show both paths.
			produceVia := bootstrap
			if gw != nil {
				produceVia = []string{gw.Addr()}
			}
			if err := runDemo(ctx, d, bootstrap, produceVia, stopBroker, out); err != nil && ctx.Err() == nil {
				return fmt.Errorf("demo: %w", err)
			}
			return nil
		})
	}

	<-ctx.Done()
	return shutdown(nil)
}

// gatewayMetrics is the gateway's metrics address, "" without a gateway.
func gatewayMetrics(gw *gateway.Gateway) string {
	if gw == nil {
		return ""
	}
	return gw.MetricsAddr()
}
