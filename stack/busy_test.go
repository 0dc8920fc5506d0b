package stack

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/store"
)

// busyFor is how long TestBusyMachineRaisesNoIncident keeps the machine busy.
const busyFor = 5 * time.Minute

// TestBusyMachineRaisesNoIncident: the local stack with demo traffic, while
// two CPU hogs (busy shell loops at the stack's priority) keep both cores of
// the reference machine busy for five minutes, opens no incident: the rules'
// for/keep_firing_for and the brokers' sessions ride out the churn.
func TestBusyMachineRaisesNoIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps the machine busy for five minutes")
	}
	base := freeBase(t, 12)
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaPort, cfg.ControllerPort, cfg.MetricsPort, cfg.ExporterPort = base, base+3, base+6, base+9
	cfg.AlertingPort, cfg.TicketsPort = base+10, base+11
	cfg.GatewayPort, cfg.GatewayMetricsPort = 0, 0 // free ports
	cfg.AdminPassword = "local-admin-pw"
	cfg.Demo = &Demo{}
	ctx, cancel := context.WithCancel(context.Background())
	out := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), out) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("stack did not stop within 60s")
		}
	}()
	testutil.WaitFor(t, 2*time.Minute, "stack up", func() bool { return strings.Contains(out.String(), "demo: producing") })
	tokenRaw, err := os.ReadFile(filepath.Join(cfg.DataDir, "tickets", "alerting-token"))
	require.NoError(t, err)
	token := strings.TrimSpace(string(tokenRaw))
	tickets := "http://127.0.0.1:" + strconv.Itoa(cfg.TicketsPort)
	alerting := "http://127.0.0.1:" + strconv.Itoa(cfg.AlertingPort)

	for range 2 {
		hog := exec.Command("sh", "-c", "while :; do :; done")
		require.NoError(t, hog.Start())
		t.Cleanup(func() { hog.Process.Kill(); hog.Wait() })
	}
	end := time.Now().Add(busyFor)
	active := map[string]bool{}
	pending := map[string]int{}
	samples := 0
	for time.Now().Before(end) {
		var incidents struct{ Incidents []store.Incident }
		getJSON(t, tickets+"/api/v1/incidents", token, &incidents)
		for _, inc := range incidents.Incidents {
			t.Errorf("incident %d %q opened on a busy machine", inc.ID, inc.Title)
		}
		if len(incidents.Incidents) > 0 {
			return
		}
		var alerts struct {
			Data []struct {
				Labels map[string]string `json:"labels"`
			} `json:"data"`
		}
		getJSON(t, alerting+"/api/v1/alerts", "", &alerts)
		for _, a := range alerts.Data {
			active[a.Labels["alertname"]] = true
		}
		// Churn: rules whose condition held (pending or firing) at a sample.
		var ruleStates struct {
			Data []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"data"`
		}
		getJSON(t, alerting+"/api/v1/rules", "", &ruleStates)
		for _, r := range ruleStates.Data {
			if r.State == "pending" || r.State == "firing" {
				pending[r.Name+" "+r.State]++
			}
		}
		samples++
		time.Sleep(5 * time.Second)
	}
	t.Logf("during %s of CPU hogs, %d samples 5 s apart: rules pending or firing (samples) %v; alerts sent %v; no incident",
		busyFor, samples, pending, active)
}
