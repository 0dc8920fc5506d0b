package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicemq/sluice/alerting"
	"github.com/sluicemq/sluice/alerting/rules"
	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/tickets"
	"github.com/sluicemq/sluice/tickets/store"
)

// opsWiring is where the operations services find the cluster and each other.
type opsWiring struct {
	bootstrap     []string
	kafkaSecurity clientsec.Config
	brokerMetrics []string
	adminURLs     []string
	exporter      string
	alertingAddr  string
	ticketsAddr   string
	// gatewayMetrics is the gateway's /metrics address, "" without a gateway.
	gatewayMetrics string
}

type opsStarted struct {
	login string // how to log in to the UI
}

// startOps starts the ticket service and the alerting service, which routes every
// notification to the log and to the ticket service's Alertmanager webhook.
func startOps(ctx context.Context, cfg Config, logger *slog.Logger, w opsWiring, g *errgroup.Group) (opsStarted, error) {
	var started opsStarted
	tc := tickets.DefaultConfig()
	tc.Listen = w.ticketsAddr
	tc.DataDir = filepath.Join(cfg.DataDir, "tickets")
	tc.AdminPassword = cfg.AdminPassword
	tc.Snapshot.AdminURLs = w.adminURLs
	tc.Snapshot.Bootstrap = w.bootstrap
	// The Silences page and the snapshot's charts use the stack's own alerting
	// service: its silences and its Prometheus query API.
	tc.AlertingURL = "http://" + w.alertingAddr
	tc.Snapshot.PrometheusURL = "http://" + w.alertingAddr
	tc.Snapshot.KafkaSecurity = w.kafkaSecurity
	if err := os.MkdirAll(tc.DataDir, 0o700); err != nil {
		return started, err
	}
	if err := tc.Validate(); err != nil {
		return started, fmt.Errorf("tickets: %w", err)
	}
	svc, err := tickets.New(ctx, tc, logger.With("part", "tickets"), tickets.Options{})
	if err != nil {
		return started, fmt.Errorf("tickets: %w", err)
	}
	switch {
	case svc.GeneratedAdminPassword != "":
		started.login = fmt.Sprintf("(log in as admin, password %s; shown only now)", svc.GeneratedAdminPassword)
	case cfg.AdminPassword != "":
		started.login = "(log in as admin with the password you set)"
	default:
		started.login = "(log in as admin with the password printed at the first start)"
	}
	token, err := alertingToken(ctx, svc.Store(), filepath.Join(tc.DataDir, "alerting-token"))
	if err != nil {
		svc.Close()
		return started, fmt.Errorf("tickets: token for alerting: %w", err)
	}
	g.Go(func() error {
		defer svc.Close()
		if err := svc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("tickets: %w", err)
		}
		return nil
	})

	ac := alerting.DefaultConfig()
	ac.Listen = w.alertingAddr
	ac.DataDir = filepath.Join(cfg.DataDir, "alerting")
	ac.ExternalLabels = map[string]string{"cluster": tc.DefaultCluster}
	ac.Targets = scrapeTargets(w, tc.DefaultCluster)
	if err := os.MkdirAll(ac.DataDir, 0o700); err != nil {
		return started, err
	}
	routing := filepath.Join(ac.DataDir, "routing.yml")
	if err := os.WriteFile(routing, []byte(routingToTickets(w.ticketsAddr, token)), 0o600); err != nil {
		return started, err
	}
	ac.RoutingFile = routing
	mgr, err := alerting.New(ac, logger.With("part", "alerting"), prometheus.NewRegistry())
	if err != nil {
		return started, fmt.Errorf("alerting: %w", err)
	}
	g.Go(func() error {
		if err := mgr.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("alerting: %w", err)
		}
		return nil
	})
	return started, nil
}

// scrapeTargets are the local stack's scrape targets, with the job names the
// rule pack, the dashboards and deploy/prometheus.yml use (broker, exporter)
// and, on each broker, its node id and Kafka address as the labels broker and
// kafka_address, so alerts name "broker 2 (127.0.0.1:9093)" and never a
// metrics port.
func scrapeTargets(w opsWiring, cluster string) []rules.Target {
	var ts []rules.Target
	for i, m := range w.brokerMetrics {
		ts = append(ts, rules.Target{Job: "broker", Address: m, Labels: map[string]string{
			"cluster": cluster, "broker": strconv.Itoa(i + 1), "kafka_address": w.bootstrap[i]}})
	}
	if w.gatewayMetrics != "" {
		ts = append(ts, rules.Target{Job: "gateway", Address: w.gatewayMetrics, Labels: map[string]string{"cluster": cluster}})
	}
	return append(ts, rules.Target{Job: "exporter", Address: w.exporter, Labels: map[string]string{"cluster": cluster}})
}

// alertingToken returns the operator token alerting uses for the ticket webhook,
// created once and kept in path.
func alertingToken(ctx context.Context, st *store.Store, path string) (string, error) {
	if raw, err := os.ReadFile(path); err == nil {
		tok := strings.TrimSpace(string(raw))
		if _, err := st.TokenRole(ctx, tok); err == nil {
			return tok, nil
		}
	}
	tok, err := st.CreateToken(ctx, "local alerting", store.RoleOperator)
	if err != nil {
		return "", err
	}
	return tok, os.WriteFile(path, []byte(tok+"\n"), 0o600)
}

// routingToTickets is the alertmanager.yml of the local stack: every alert group
// goes to the log and to the ticket service.
func routingToTickets(ticketsAddr, token string) string {
	return fmt.Sprintf(`route:
  receiver: log
  group_by: [alertname, cluster]
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 4h
  routes:
    - receiver: log
      continue: true
    - receiver: tickets
receivers:
  - name: log
  - name: tickets
    webhook_configs:
      - url: http://%s/api/v1/integrations/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %s
`, ticketsAddr, token)
}
