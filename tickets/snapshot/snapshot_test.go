package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var at = time.Date(2026, 5, 1, 10, 42, 7, 0, time.UTC)

func TestDiagnose(t *testing.T) {
	up := func(id int32) BrokerInfo { return BrokerInfo{ID: id, Reachable: true} }
	for _, tc := range []struct {
		name string
		snap Snapshot
		want string
	}{
		{"broker down", Snapshot{
			Cluster: &Cluster{Brokers: []BrokerInfo{up(1), {ID: 2, Fenced: true, DialError: "connection refused"}, up(3)}},
			UnderReplicated: []PartitionState{
				{Topic: "a", Partition: 0, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}},
				{Topic: "a", Partition: 1, Leader: 3, Replicas: []int32{2, 3, 1}, ISR: []int32{3, 1}},
				{Topic: "b", Partition: 0, Leader: 1, Replicas: []int32{1, 3}, ISR: []int32{1}},
			},
			Events: []Event{{Type: "broker_fenced", Broker: 2, Time: at.Add(-time.Hour)}, {Type: "broker_unfenced", Broker: 2}, {Type: "broker_fenced", Broker: 2, Time: at}},
		}, "broker 2 unreachable since 10:42:07; 2 partitions lost it from their ISR"},
		{"offline", Snapshot{Cluster: &Cluster{Brokers: []BrokerInfo{up(1)}},
			Offline: []PartitionState{{Topic: "t", Partition: 3, Leader: -1, Replicas: []int32{2}, ISR: []int32{2}}}},
			"1 partition offline (no leader): t-3"},
		{"unclean", Snapshot{Cluster: &Cluster{Brokers: []BrokerInfo{up(1)}},
			Events: []Event{{Type: "unclean_leader_elected", Topic: "t", Partition: 0, Time: at}}},
			"unclean leader election of t-0 at 10:42:07: acknowledged records may be lost"},
		{"slow follower", Snapshot{Cluster: &Cluster{Brokers: []BrokerInfo{up(1), up(2), up(3)}},
			UnderReplicated: []PartitionState{
				{Topic: "a", Partition: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}},
				{Topic: "a", Partition: 1, Leader: 2, Replicas: []int32{2, 3}, ISR: []int32{2}},
			}}, "2 partitions under-replicated; broker 3 is missing from 2 ISRs though it is up (slow or stuck follower?)"},
		{"lag", Snapshot{Cluster: &Cluster{Brokers: []BrokerInfo{up(1)}}, Groups: []GroupLag{{Group: "billing", State: "Empty", Lag: 1200}}},
			"consumer group billing lags 1200 records (state Empty, 0 members)"},
		{"blind", Snapshot{Errors: []string{"cluster admin API: connection refused"}}, "cluster state unknown: cluster admin API: connection refused"},
		{"healthy", Snapshot{Cluster: &Cluster{Brokers: []BrokerInfo{up(1)}}}, "no cluster-level fault found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Diagnose(&tc.snap)
			require.Contains(t, tc.snap.Diagnosis, tc.want)
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`level=WARN msg="auth failed" sasl.password=hunter2 user=bob`: `level=WARN msg="auth failed" sasl.password=[REDACTED] user=bob`,
		`{"api_key":"abc123","x":1}`:                                  `{"api_key":"[REDACTED]","x":1}`,
		`dial postgres://sluice:s3cret@db:5432/x`:                     `dial postgres://sluice:[REDACTED]@db:5432/x`,
		`Authorization: Bearer slt_abcdef`:                            `Authorization: Bearer [REDACTED]`,
		`nothing secret here`:                                         `nothing secret here`,
	} {
		require.Equal(t, want, Redact(in))
	}
	m := RedactMap(map[string]string{"ssl.keystore.password": "x", "sasl.jaas.config": "y", "retention.ms": "1000", "note": "token=zzz"})
	require.Equal(t, map[string]string{"ssl.keystore.password": Redacted, "sasl.jaas.config": Redacted, "retention.ms": "1000", "note": "token=" + Redacted}, m)
}

func TestCaptureLogsAndCharts(t *testing.T) {
	dir := t.TempDir()
	log := "time=2026-05-01T08:00:00Z level=ERROR msg=old\n" +
		"time=2026-05-01T10:41:00Z level=INFO msg=fine\n" +
		"time=2026-05-01T10:41:30Z level=WARN msg=\"follower lagging\" password=p4ss\n" +
		`{"time":"2026-05-01T10:42:00Z","level":"ERROR","msg":"fetch failed"}` + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broker-2.log"), []byte(log), 0o644))

	var queries []string
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/query_range", r.URL.Path)
		queries = append(queries, r.URL.Query().Get("query"))
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix",
			"result": []any{map[string]any{"metric": map[string]string{"instance": "b2"}, "values": []any{[]any{1.7e9, "1"}, []any{1.7e9 + 15, "3"}}}}}})
	}))
	defer prom.Close()

	c := NewCapturer(Config{LogFiles: []string{filepath.Join(dir, "*.log")}, PrometheusURL: prom.URL, EventWindow: time.Hour})
	s := c.Capture(context.Background(), Target{IncidentID: 7, ImpactStart: at,
		GeneratorURLs: []string{"http://prom/graph?g0.expr=up+%3D%3D+0&g0.tab=1"}}, at.Add(time.Minute))
	require.Len(t, s.Logs, 2)
	require.Contains(t, s.Logs[0].Line, "password=[REDACTED]")
	require.Equal(t, "up == 0", queries[0])
	require.Len(t, s.Charts, 4)
	require.Equal(t, [][2]float64{{1.7e9, 1}, {1.7e9 + 15, 3}}, s.Charts[0].Series[0].Points)
	// No admin URL: noted, diagnosis says the cluster is unknown.
	require.Contains(t, s.Diagnosis, "cluster state unknown")

	var buf bytes.Buffer
	require.NoError(t, Bundle(&buf, s, nil))
	require.NotContains(t, buf.String(), "p4ss")
}

// TestSecretsDoNotSurvive is the table of secrets that must not survive
// redaction, each in the shape it takes in a log line, an error or a config.
func TestSecretsDoNotSurvive(t *testing.T) {
	for _, tc := range []struct{ name, in, secret string }{
		{"key=value password", `connecting with db_password=hunter2 to db`, "hunter2"},
		{"quoted JSON secret", `{"client_secret": "s3cr3t-value"}`, "s3cr3t-value"},
		{"YAML-ish token", `api_token: abcdef123456`, "abcdef123456"},
		{"Kafka keystore", `ssl.keystore.password=kspass99`, "kspass99"},
		{"SASL JAAS", `sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="jaaspw1";`, "jaaspw1"},
		{"Basic auth header", `Authorization: Basic dXNlcjpodW50ZXIy`, "dXNlcjpodW50ZXIy"},
		{"Bearer header", `authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlMTIz`, "eyJhbGciOiJIUzI1NiJ9"},
		{"bare bearer", `token rejected: bearer abcdefgh12345`, "abcdefgh12345"},
		{"URL userinfo", `dial postgres://sluice:pgpass42@db:5432/sluice failed`, "pgpass42"},
		{"URL userinfo https", `GET https://admin:webpass7@prom.example/api`, "webpass7"},
		{"Slack webhook", `posting to https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstuvwx failed`, "abcdefghijklmnopqrstuvwx"},
		{"xoxb token", `slack auth with xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp`, "xoxb-1234567890"},
		{"xoxp token", `user token xoxp-111-222-333-aaaabbbbcccc`, "aaaabbbbcccc"},
		{"Sluice API token", `curl -H "X-Token slt_AbCdEfGhIjKlMnOpQrStUvWxYz0123"`, "slt_AbCdEfGhIjKlMnOpQrStUvWxYz0123"},
		{"AWS key id", `using AKIAIOSFODNN7EXAMPLE`, "AKIAIOSFODNN7EXAMPLE"},
		{"GitHub token", `ghp_abcdefghijklmnopqrstuvwxyz0123456789`, "ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
		{"cookie header", `Cookie: sluice_session=abcdefghijklmnop; other=1`, "abcdefghijklmnop"},
		{"PEM key", "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretkeymaterial\n-----END RSA PRIVATE KEY-----", "secretkeymaterial"},
		{"PEM key cut off", "-----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"},
		{"passwd", `passwd=letmein00`, "letmein00"},
		{"secret in URL query", `GET /cb?client_secret=qs-secret-1&x=1`, "qs-secret-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Redact(tc.in)
			require.NotContains(t, out, tc.secret, "%q became %q", tc.in, out)
			require.Contains(t, out, Redacted)
			require.Equal(t, out, Redact(out), "redaction is stable")
		})
	}
	// What is not a secret stays readable.
	for _, keep := range []string{
		`broker 2 (127.0.0.1:9093) unreachable since 10:33:46`,
		`retention.ms=604800000 segment.bytes=1073741824`,
		`session.timeout.ms=45000`,
		`GET http://127.0.0.1:9644/admin/v1/cluster`,
	} {
		require.Equal(t, keep, Redact(keep))
	}
}

func TestRedactSnapshotForDisplay(t *testing.T) {
	s := &Snapshot{Logs: []LogLine{{File: "broker.log", Line: "WARN db_password=hunter2"}},
		Errors: []string{"admin http://u:pw12345@b1: refused"}, Findings: []string{"broker 2 down"}}
	r := RedactSnapshot(s)
	require.NotContains(t, r.Logs[0].Line, "hunter2")
	require.NotContains(t, r.Errors[0], "pw12345")
	require.Equal(t, "broker 2 down", r.Findings[0])
	require.Equal(t, "WARN db_password=hunter2", s.Logs[0].Line, "the original is not changed")
}
