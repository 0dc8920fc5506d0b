package txn

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pythonPath is Debian's python3 with python3-confluent-kafka (librdkafka), not a pyenv python3
// that may come first on PATH.
const pythonPath = "/usr/bin/python3"

// runTxnScript runs testdata/txn.py with Debian's python3 and decodes the JSON document it prints
// into out.
func runTxnScript(t *testing.T, timeout time.Duration, out any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, pythonPath, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka (apt-get install python3-confluent-kafka; .ci/run does): %v\n%s", pythonPath, err, msg)
	}
	cmd := exec.CommandContext(ctx, pythonPath, append([]string{filepath.Join("testdata", "txn.py")}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "txn.py %v\nstdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
	require.NoError(t, json.Unmarshal(stdout.Bytes(), out), "txn.py %v printed:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
}

// rdkRead reads topic up to the sentinel until with librdkafka at the given isolation level.
func (d *deployment) rdkRead(t *testing.T, topic, isolation, until string) map[int32][]string {
	t.Helper()
	var res struct {
		Partitions map[string][]string `json:"partitions"`
	}
	runTxnScript(t, 3*time.Minute, &res, "read", strings.Join(d.cl.Bootstrap(), ","), topic, isolation, until)
	out := map[int32][]string{}
	for p, vs := range res.Partitions {
		n, err := strconv.Atoi(p)
		require.NoError(t, err)
		if len(vs) > 0 {
			out[int32(n)] = vs
		}
	}
	return out
}

// TestLibrdkafkaConsumeTransformProduce runs librdkafka's transactional producer as an exactly-once
// pipeline (init_transactions, begin_transaction, send_offsets_to_transaction, commit_transaction)
// after one aborted transaction of marker records: librdkafka's read_committed consumer and
// franz-go's see each input record once and no marker, librdkafka's read_uncommitted consumer sees
// the markers, and the group's committed offsets cover the input.
func TestLibrdkafkaConsumeTransformProduce(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		const (
			parts = 2
			n     = 200
		)
		in, out := uniqueName("rdk-in"), uniqueName("rdk-out")
		d.createTopic(t, in, parts)
		d.createTopic(t, out, parts)
		d.producePlain(t, in, -1, numbered("in-", n)...)
		group := uniqueName("rdk-etl")
		var res struct {
			Transactions int `json:"transactions"`
			Records      int `json:"records"`
		}
		runTxnScript(t, 4*time.Minute, &res, "etl", strings.Join(d.cl.Bootstrap(), ","), in, out, group, uniqueName("rdk"), strconv.Itoa(n))
		require.Equal(t, n, res.Records)
		require.NotZero(t, res.Transactions)

		s := d.writeSentinels(t, out)
		want := make([]string, n)
		for i, v := range numbered("in-", n) {
			want[i] = "out:" + v
		}
		committed := d.rdkRead(t, out, "read_committed", s)
		require.ElementsMatch(t, want, all(committed), "librdkafka read_committed")
		franz, err := d.readTo(t, out, kgo.ReadCommitted(), s, 2*time.Minute)
		require.NoError(t, err)
		require.Equal(t, franz, committed, "franz-go's read_committed consumer sees what librdkafka's does")
		uncommitted := d.rdkRead(t, out, "read_uncommitted", s)
		require.ElementsMatch(t, concat(numbered("ABORTED-", 4), want), all(uncommitted), "librdkafka read_uncommitted")

		offs, err := d.admin(t).FetchOffsets(testCtx(t, 30*time.Second), group)
		require.NoError(t, err)
		var sum int64
		offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		require.Equal(t, int64(n), sum, "the group's committed offsets cover the input")
	})
}

// TestLibrdkafkaFencing: a second librdkafka producer with the same transactional id fences the
// first, whose commit fails with a fatal PRODUCER_FENCED (librdkafka's _FENCED); only the second
// one's records are committed.
func TestLibrdkafkaFencing(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, d *deployment) {
		topic := uniqueName("rdk-fencing")
		d.createTopic(t, topic, 1)
		var res struct {
			Error string `json:"zombie_commit_error"`
			Fatal bool   `json:"fatal"`
		}
		runTxnScript(t, 3*time.Minute, &res, "fence", strings.Join(d.cl.Bootstrap(), ","), topic, uniqueName("rdk-fencing"))
		require.Contains(t, []string{"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"}, res.Error)
		require.True(t, res.Fatal, "fencing is fatal for the zombie")
		require.ElementsMatch(t, numbered("fresh-", 5), all(d.readBack(t, topic, kgo.ReadCommitted())))
		require.ElementsMatch(t, concat(numbered("zombie-", 5), numbered("fresh-", 5)), all(d.readBack(t, topic, kgo.ReadUncommitted())))
	})
}
