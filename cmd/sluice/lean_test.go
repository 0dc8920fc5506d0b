package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeanBuildLinksNoCloudSDKs checks what `make build-lean` promises: the broker binary built with
// -tags lean links neither the cloud SDKs that Prometheus' and Alertmanager's libraries bring (service
// discovery, remote write, SNS) nor franz-go's kfake, and it still builds.
func TestLeanBuildLinksNoCloudSDKs(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "lean", "-deps", "github.com/sluicemq/sluice/cmd/sluice").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/sluicemq/sluice/broker")
	require.Contains(t, deps, "github.com/sluicemq/sluice/exporter")
	for _, d := range deps {
		for _, banned := range []string{"github.com/aws/", "github.com/Azure/", "cloud.google.com/", "google.golang.org/api",
			"github.com/twmb/franz-go/pkg/kfake", "github.com/prometheus/prometheus/", "github.com/prometheus/alertmanager/",
			"github.com/sluicemq/sluice/alerting", "github.com/sluicemq/sluice/tickets"} {
			require.False(t, strings.HasPrefix(d, banned), "the lean build links %s", d)
		}
	}
	full, err := exec.Command("go", "list", "-deps", "github.com/sluicemq/sluice/cmd/sluice").CombinedOutput()
	require.NoError(t, err, "%s", full)
	t.Logf("packages linked: %d lean, %d full", len(deps), len(strings.Fields(string(full))))
}
