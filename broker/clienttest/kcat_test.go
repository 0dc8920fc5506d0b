package clienttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicemq/sluice/internal/testutil"
)

const kcatPath = "/usr/bin/kcat"

// runKcat runs kcat against addr with args and stdin, bounded by 30s, and
// returns stdout. stderr is included in the failure message.
func runKcat(t *testing.T, addr, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append([]string{"-b", addr, "-X", "broker.address.family=v4"}, args...)
	cmd := exec.CommandContext(ctx, kcatPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "kcat %s\nstderr:\n%s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

// TestKcat drives librdkafka through Debian's kcat: keyed produce, consume
// to the end, a balanced group consumer, and metadata.
func TestKcat(t *testing.T) {
	if _, err := exec.LookPath(kcatPath); err != nil {
		t.Skipf("kcat not installed at %s (apt-get install kcat): %v", kcatPath, err)
	}
	b := startBroker(t)
	topic := uniqueName("kcat")
	createTopic(t, b.Addr, topic, 3, nil)

	var input strings.Builder
	var want []string
	for i := range 100 {
		fmt.Fprintf(&input, "key-%d:value-%d\n", i%10, i)
		want = append(want, fmt.Sprintf("key-%d:value-%d", i%10, i))
	}
	slices.Sort(want)
	runKcat(t, b.Addr, input.String(), "-P", "-t", topic, "-K:", "-X", "acks=all")

	var partitionOf map[string]string
	t.Run("consume to end", func(t *testing.T) {
		out := runKcat(t, b.Addr, "", "-C", "-t", topic, "-o", "beginning", "-e", "-f", `%k:%s:%p\n`)
		var got []string
		partitionOf = map[string]string{}
		for _, line := range sortedLines(out) {
			parts := strings.Split(line, ":")
			require.Len(t, parts, 3, "line %q", line)
			key, value, partition := parts[0], parts[1], parts[2]
			if p, ok := partitionOf[key]; ok {
				require.Equal(t, p, partition, "key %s in two partitions", key)
			}
			partitionOf[key] = partition
			got = append(got, key+":"+value)
		}
		slices.Sort(got)
		require.Equal(t, want, got)

		// Per-key order: consuming one partition at a time preserves produce order.
		ordered := runKcat(t, b.Addr, "", "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", `%k:%s\n`)
		seq := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(ordered), "\n") {
			if line == "" {
				continue
			}
			var k, n int
			_, err := fmt.Sscanf(line, "key-%d:value-%d", &k, &n)
			require.NoError(t, err, line)
			key := fmt.Sprint(k)
			if last, ok := seq[key]; ok {
				require.Greater(t, n, last, "key %s out of order in partition 0", key)
			}
			seq[key] = n
		}
	})

	t.Run("group consumer", func(t *testing.T) {
		group := uniqueName("kcat-group")
		out := runKcat(t, b.Addr, "", "-G", group, "-o", "beginning", "-e", "-f", `%k:%s\n`,
			"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", topic)
		require.Equal(t, want, sortedLines(out))

		adm := newAdmin(t, b.Addr)
		testutil.WaitFor(t, 15*time.Second, "kcat group offsets committed to the end", func() bool {
			offs, err := adm.FetchOffsets(testCtx(t), group)
			if err != nil {
				return false
			}
			var total int64
			offs.Each(func(o kadm.OffsetResponse) { total += o.At })
			return total == 100
		})
	})

	t.Run("metadata", func(t *testing.T) {
		out := runKcat(t, b.Addr, "", "-L", "-J", "-t", topic)
		var md struct {
			Brokers []struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Partitions []struct {
					Partition int32 `json:"partition"`
					Leader    int32 `json:"leader"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &md), out)
		require.Len(t, md.Brokers, 1)
		require.Equal(t, b.Addr, md.Brokers[0].Name)
		require.Len(t, md.Topics, 1)
		require.Equal(t, topic, md.Topics[0].Topic)
		require.Len(t, md.Topics[0].Partitions, 3)
		for _, p := range md.Topics[0].Partitions {
			require.Equal(t, md.Brokers[0].ID, p.Leader)
		}
	})
}
