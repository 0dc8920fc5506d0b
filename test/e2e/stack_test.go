package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/chaos"
	"github.com/sluicemq/sluice/internal/testutil"
)

// stack is what both drill modes share: the brokers, the exporter and the ticket service.
type stack struct {
	dir     string
	cluster *chaos.Cluster

	exporter     *proc
	exporterAddr string

	tickets    *proc
	ticketsURL string
	// webhookToken is an operator token for the Alertmanager webhook; readToken a viewer token
	// the drill reads incidents with. Both come from `sluice tickets token create`.
	webhookToken     string
	webhookTokenFile string
	readToken        string
	// promAddr is reserved for mode A's Prometheus; the ticket service draws snapshot charts
	// from it.
	promAddr string

	procs []*proc
}

// startStack starts three brokers (flush: always), the exporter and the ticket service, and
// prints every log tail if the test fails.
func startStack(t *testing.T, ctx context.Context) *stack {
	t.Helper()
	s := &stack{dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			s.printLogs(t)
		}
	})
	var err error
	s.cluster, err = chaos.StartCluster(ctx, chaos.ClusterConfig{
		Bin: sluiceBin, Dir: filepath.Join(s.dir, "brokers"), Brokers: 3, BrokerConfig: "flush: always\n",
	})
	require.NoError(t, err, "start the 3-broker cluster")
	t.Cleanup(s.cluster.Close)

	bootstrap := strings.Join(s.cluster.Bootstrap(), ",")
	s.exporterAddr = testutil.Addrs(t, 1)[0]
	s.exporter = s.start(t, "exporter", []string{sluiceBin, "exporter", "--bootstrap", bootstrap,
		"--listen", s.exporterAddr, "--interval", "5s"})

	ticketsDir := filepath.Join(s.dir, "tickets")
	require.NoError(t, os.MkdirAll(ticketsDir, 0o755))
	s.webhookToken = s.createToken(t, ticketsDir, "alertmanager", "operator")
	s.readToken = s.createToken(t, ticketsDir, "e2e-drill", "viewer")
	s.webhookTokenFile = filepath.Join(s.dir, "tickets.token")
	require.NoError(t, os.WriteFile(s.webhookTokenFile, []byte(s.webhookToken+"\n"), 0o600))
	var admins []string
	for _, n := range s.cluster.Nodes() {
		admins = append(admins, n.MetricsAddr)
	}
	s.promAddr = testutil.Addrs(t, 1)[0]
	ticketsAddr := testutil.Addrs(t, 1)[0]
	s.ticketsURL = "http://" + ticketsAddr
	s.tickets = s.start(t, "tickets", []string{sluiceBin, "tickets", "--listen", ticketsAddr, "--data-dir", ticketsDir,
		"--admin-url", strings.Join(admins, ","), "--bootstrap", bootstrap,
		"--prometheus-url", "http://" + s.promAddr,
		"--broker-logs", filepath.Join(s.dir, "brokers", "node-*.log")},
		"SLUICE_ADMIN_PASSWORD="+randomHex(12))

	testutil.WaitForErr(t, 30*time.Second, "exporter and ticket service ready", func() (bool, error) {
		if err := s.alive(); err != nil {
			return false, testutil.Permanent(err)
		}
		if ok, err := httpOK("http://" + s.exporterAddr + "/readyz"); !ok {
			return false, err
		}
		return httpOK(s.ticketsURL + "/healthz")
	})
	return s
}

// start starts a process whose log tail is printed if the test fails.
func (s *stack) start(t *testing.T, name string, argv []string, env ...string) *proc {
	p := startProc(t, s.dir, name, argv, env...)
	s.procs = append(s.procs, p)
	return p
}

// createToken mints an API token with the CLI, as an operator would.
func (s *stack) createToken(t *testing.T, dataDir, name, role string) string {
	t.Helper()
	cmd := exec.Command(sluiceBin, "tickets", "token", "create", "--data-dir", dataDir, "--name", name, "--role", role)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "sluice tickets token create: %s", stderr.String())
	tok := strings.TrimSpace(string(out))
	require.NotEmpty(t, tok, "sluice tickets token create printed nothing")
	require.NotContains(t, tok, "\n", "sluice tickets token create must print only the token")
	return tok
}

// alive returns an error if a process the drill started has exited or a broker exited by itself.
func (s *stack) alive() error {
	for _, p := range s.procs {
		if err := p.alive(); err != nil {
			return err
		}
	}
	for _, n := range s.cluster.Nodes() {
		if err := n.Unexpected(); err != nil {
			return err
		}
	}
	return nil
}

func (s *stack) printLogs(t *testing.T) {
	t.Logf("brokers:\n%s", s.cluster.Logs(40))
	for _, p := range s.procs {
		t.Logf("----- %s (%s), last 40 lines -----\n%s", p.name, p.logPath, p.tail(40))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ticketIncident is the part of the ticket service's incident the drill reads.
type ticketIncident struct {
	ID         uint       `json:"id"`
	Title      string     `json:"title"`
	Status     string     `json:"status"`
	Severity   string     `json:"severity"`
	Cluster    string     `json:"cluster"`
	Receiver   string     `json:"receiver"`
	Brokers    []string   `json:"brokers"`
	DetectedAt time.Time  `json:"detected_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
	ResolvedBy string     `json:"resolved_by"`
}

// ticketSnapshot is the part of a fault snapshot the drill reads.
type ticketSnapshot struct {
	Diagnosis string   `json:"diagnosis"`
	Findings  []string `json:"findings"`
	Errors    []string `json:"errors"`
	Sources   []string `json:"sources"`
	Cluster   *struct {
		ControllerID int32 `json:"controller_id"`
		Brokers      []struct {
			ID        int32  `json:"id"`
			Fenced    bool   `json:"fenced"`
			Reachable bool   `json:"reachable"`
			DialError string `json:"dial_error"`
		} `json:"brokers"`
	} `json:"cluster"`
	UnderReplicated []partitionState `json:"under_replicated"`
}

type partitionState struct {
	Topic     string  `json:"topic"`
	Partition int     `json:"partition"`
	Leader    int32   `json:"leader"`
	Replicas  []int32 `json:"replicas"`
	ISR       []int32 `json:"isr"`
}

// incidents lists the ticket service's incidents of one cluster label.
func (s *stack) incidents(ctx context.Context, cluster string) ([]ticketIncident, error) {
	var out struct {
		Incidents []ticketIncident `json:"incidents"`
	}
	err := getJSON(ctx, s.ticketsURL+"/api/v1/incidents?limit=100&cluster="+cluster, s.readToken, &out)
	return out.Incidents, err
}

// snapshot returns an incident's latest fault snapshot; ok is false while none is captured.
func (s *stack) snapshot(ctx context.Context, id uint) (snap ticketSnapshot, ok bool, err error) {
	var out struct {
		Snapshot ticketSnapshot `json:"snapshot"`
	}
	err = getJSON(ctx, fmt.Sprintf("%s/api/v1/incidents/%d/snapshot", s.ticketsURL, id), s.readToken, &out)
	if he, isHTTP := err.(*httpError); isHTTP && he.code == 404 {
		return snap, false, nil
	}
	return out.Snapshot, err == nil, err
}

// alertNames returns the alert names of an incident's alarms.
func (s *stack) alertNames(ctx context.Context, id uint) ([]string, int, error) {
	var d struct {
		Alarms []struct {
			AlertName string `json:"alertname"`
		} `json:"alarms"`
	}
	if err := getJSON(ctx, fmt.Sprintf("%s/api/v1/incidents/%d", s.ticketsURL, id), s.readToken, &d); err != nil {
		return nil, 0, err
	}
	var out []string
	for _, a := range d.Alarms {
		if !slices.Contains(out, a.AlertName) {
			out = append(out, a.AlertName)
		}
	}
	return out, len(d.Alarms), nil
}
