package tickets

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/broker"
	"github.com/sluicemq/sluice/broker/brokertest"
	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// apiRoutes lists every API route with a valid body, for the permission tests.
var apiRoutes = []struct {
	method, path string
	body         any
	minRole      store.Role
}{
	{"POST", "/api/v1/integrations/alertmanager", nil, store.RoleOperator},
	{"GET", "/api/v1/incidents", nil, store.RoleViewer},
	{"GET", "/api/v1/incidents/1", nil, store.RoleViewer},
	{"POST", "/api/v1/incidents/1/ack", nil, store.RoleOperator},
	{"POST", "/api/v1/incidents/1/resolve", map[string]string{"note": "fixed"}, store.RoleOperator},
	{"POST", "/api/v1/incidents/1/close", nil, store.RoleOperator},
	{"POST", "/api/v1/incidents/1/assign", map[string]string{"assignee": "alice"}, store.RoleOperator},
	{"POST", "/api/v1/incidents/1/comments", map[string]string{"body": "looking"}, store.RoleOperator},
	{"POST", "/api/v1/incidents/1/tickets", map[string]uint{"ticket_id": 1}, store.RoleOperator},
	{"GET", "/api/v1/incidents/1/snapshot", nil, store.RoleViewer},
	{"GET", "/api/v1/incidents/1/snapshot/bundle", nil, store.RoleViewer},
	{"POST", "/api/v1/incidents/1/snapshot", nil, store.RoleOperator},
	{"GET", "/api/v1/tickets", nil, store.RoleViewer},
	{"POST", "/api/v1/tickets", map[string]string{"title": "t", "priority": "P2"}, store.RoleOperator},
	{"GET", "/api/v1/tickets/1", nil, store.RoleViewer},
	{"POST", "/api/v1/tickets/1/comments", map[string]string{"body": "b"}, store.RoleOperator},
	{"POST", "/api/v1/tickets/1/status", map[string]string{"status": "waiting"}, store.RoleOperator},
	{"POST", "/api/v1/tickets/1/assign", map[string]string{"assignee": "bob"}, store.RoleOperator},
	{"GET", "/api/v1/sla", nil, store.RoleViewer},
	{"GET", "/api/v1/tokens", nil, store.RoleAdmin},
	{"POST", "/api/v1/tokens", map[string]string{"name": "ci", "role": "viewer"}, store.RoleAdmin},
	{"DELETE", "/api/v1/tokens/99", nil, store.RoleAdmin},
	{"POST", "/api/v1/users", map[string]string{"username": "carol", "password": "long enough pw", "role": "viewer"}, store.RoleAdmin},
}

func TestAPIRequiresAuthenticationAndRoles(t *testing.T) {
	ts := startService(t)
	for _, r := range apiRoutes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			code, body := ts.do(r.method, r.path, "", r.body)
			require.Equal(t, http.StatusUnauthorized, code, "%s", body)
			require.Contains(t, string(body), "authentication required")
			code, _ = ts.do(r.method, r.path, "slt_not-a-token", r.body)
			require.Equal(t, http.StatusUnauthorized, code)
			for _, tok := range []struct {
				role  store.Role
				token string
			}{{store.RoleViewer, ts.viewer}, {store.RoleOperator, ts.operator}} {
				code, body := ts.do(r.method, r.path, tok.token, r.body)
				if !tok.role.Allows(r.minRole) {
					require.Equal(t, http.StatusForbidden, code, "%s as %s: %s", r.path, tok.role, body)
				} else {
					require.NotEqual(t, http.StatusForbidden, code, "%s as %s: %s", r.path, tok.role, body)
					require.NotEqual(t, http.StatusUnauthorized, code)
				}
			}
		})
	}
	// Nothing was changed by the refused requests of viewers.
	var tk struct{ Tickets []store.Ticket }
	ts.must(200, "GET", "/api/v1/tickets", ts.viewer, nil, &tk)
	require.Len(t, tk.Tickets, 1) // the operator's
}

func TestAPIValidation(t *testing.T) {
	ts := startService(t, func(c *Config) { c.MaxBodyBytes = 4096 })
	for _, tc := range []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"malformed", "/api/v1/tickets", `{"title":`, 400, "malformed JSON"},
		{"wrong type", "/api/v1/tickets", `{"title":5}`, 400, "malformed JSON"},
		{"unknown field", "/api/v1/tickets", `{"title":"x","priority":"P1","severity":"high"}`, 400, `unknown field "severity"`},
		{"two objects", "/api/v1/tickets", `{"title":"x"}{"title":"y"}`, 400, "data after"},
		{"empty", "/api/v1/tickets", ``, 400, "empty body"},
		{"oversized", "/api/v1/tickets", `{"title":"x","description":"` + strings.Repeat("a", 5000) + `"}`, 413, "larger than 4096"},
		{"no title", "/api/v1/tickets", `{"priority":"P1"}`, 400, "title: required"},
		{"blank title", "/api/v1/tickets", `{"title":"   "}`, 400, "title: required"},
		{"long title", "/api/v1/tickets", `{"title":"` + strings.Repeat("é", 201) + `"}`, 400, "at most 200"},
		{"bad priority", "/api/v1/tickets", `{"title":"x","priority":"P9"}`, 400, "priority: one of P1, P2, P3, P4"},
		{"control char", "/api/v1/tickets", `{"title":"x\u0007"}`, 400, "control character"},
		{"topic with space", "/api/v1/tickets", `{"title":"x","topic":"a b"}`, 400, "topic: no whitespace"},
		{"bad assignee", "/api/v1/tickets", `{"title":"x","assignee":"<b>"}`, 400, "assignee"},
		{"bad token role", "/api/v1/tokens", `{"name":"x","role":"root"}`, 400, "role: one of"},
		{"short password", "/api/v1/users", `{"username":"u","password":"short","role":"viewer"}`, 400, "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := ts.do("POST", tc.path, ts.admin, tc.body)
			require.Equal(t, tc.code, code, "%s", body)
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal(body, &e), "%s", body)
			require.Contains(t, e.Error, tc.msg)
		})
	}
	req, _ := http.NewRequest("POST", ts.base+"/api/v1/tickets", strings.NewReader(`title=x`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+ts.operator)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
	for _, q := range []string{"?status=bogus", "?limit=0", "?limit=x", "?severity=a%20b"} {
		code, _ := ts.do("GET", "/api/v1/incidents"+q, ts.viewer, nil)
		require.Equal(t, 400, code, q)
	}
	for _, p := range []string{"/api/v1/incidents/abc", "/api/v1/incidents/0", "/api/v1/tickets/-1"} {
		code, _ := ts.do("GET", p, ts.viewer, nil)
		require.Equal(t, 400, code, p)
	}
	code, _ := ts.do("GET", "/api/v1/incidents/12345", ts.viewer, nil)
	require.Equal(t, 404, code)
	// Nothing half-written.
	var tk struct{ Tickets []store.Ticket }
	ts.must(200, "GET", "/api/v1/tickets", ts.viewer, nil, &tk)
	require.Empty(t, tk.Tickets)
}

func TestTicketLifecycle(t *testing.T) {
	ts := startService(t)
	id := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	const evil = `<script>alert("x")</script> & "quotes"`
	var tk store.Ticket
	ts.must(201, "POST", "/api/v1/tickets", ts.operator, map[string]any{
		"title": evil, "description": "line 1\nline 2", "cluster": "local", "topic": "orders", "group": "billing",
		"priority": "P1", "incident_id": id}, &tk)
	require.Equal(t, evil, tk.Title) // stored as typed
	require.Equal(t, "new", tk.Status)
	require.Equal(t, "token:operator", tk.Reporter)

	ts.must(201, "POST", fmt.Sprintf("/api/v1/tickets/%d/comments", tk.ID), ts.operator, map[string]string{"body": "on it"}, nil)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "in_progress"}, nil)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "in_progress"}, nil)
	ts.must(400, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "done"}, nil)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/tickets/%d/assign", tk.ID), ts.operator, map[string]string{"assignee": "alice"}, nil)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "closed"}, nil)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/tickets/%d/status", tk.ID), ts.operator, map[string]string{"status": "new"}, nil)

	var d store.TicketDetail
	ts.must(200, "GET", fmt.Sprintf("/api/v1/tickets/%d", tk.ID), ts.viewer, nil, &d)
	require.Equal(t, "closed", d.Status)
	require.Equal(t, "alice", d.Assignee)
	require.Len(t, d.Comments, 1)
	require.Len(t, d.Incidents, 1)
	require.Equal(t, []string{"created", "incident_linked", "comment", "status", "assigned", "status"}, kinds(d.Timeline))

	inc := ts.incident(id)
	require.Len(t, inc.Tickets, 1)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/incidents/%d/tickets", id), ts.operator, map[string]uint{"ticket_id": tk.ID}, nil)
	ts.must(404, "POST", fmt.Sprintf("/api/v1/incidents/%d/tickets", id), ts.operator, map[string]uint{"ticket_id": 999}, nil)

	var list struct{ Tickets []store.Ticket }
	ts.must(200, "GET", "/api/v1/tickets?status=open", ts.viewer, nil, &list)
	require.Empty(t, list.Tickets)
	ts.must(200, "GET", "/api/v1/tickets?priority=P1", ts.viewer, nil, &list)
	require.Len(t, list.Tickets, 1)
}

func TestIncidentWorkflowAndSLA(t *testing.T) {
	ts := startService(t)
	crit := ts.notify(amPayload("BrokerDown", "firing", 0, amAlert{"BrokerDown", "fp1", "firing", t0, nil})).Opened[0]
	ts.clock.Advance(2 * time.Minute)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/incidents/%d/ack", crit), ts.operator, nil, nil)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/incidents/%d/ack", crit), ts.operator, nil, nil)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/incidents/%d/assign", crit), ts.operator, map[string]string{"assignee": "alice"}, nil)
	ts.must(201, "POST", fmt.Sprintf("/api/v1/incidents/%d/comments", crit), ts.operator, map[string]string{"body": "broker 2 disk"}, nil)
	ts.clock.Advance(8 * time.Minute)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/incidents/%d/resolve", crit), ts.operator, map[string]string{"note": "replaced disk"}, nil)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/incidents/%d/resolve", crit), ts.operator, nil, nil)
	d := ts.incident(crit)
	require.Equal(t, store.StatusResolved, d.Status)
	require.Equal(t, "alice", d.Assignee)
	require.Equal(t, "token:operator", d.FirstAckBy)
	require.False(t, d.SLA.AckBreached)
	require.False(t, d.SLA.ResolveBreached)

	// A second critical incident, never acknowledged: breaches the 5m target.
	late := ts.notify(amPayload("DiskFull", "firing", 0, amAlert{"DiskFull", "fp2", "firing", t0, nil})).Opened[0]
	ts.clock.Advance(6 * time.Minute)
	require.True(t, ts.incident(late).SLA.AckBreached)
	ts.must(200, "POST", fmt.Sprintf("/api/v1/incidents/%d/ack", late), ts.operator, nil, nil)
	require.True(t, ts.incident(late).SLA.AckBreached, "a late acknowledgement stays a breach")

	var rep struct {
		Total struct {
			Incidents, Acknowledged, Resolved int
			AckBreaches                       int `json:"ack_breaches"`
		}
		BySeverity map[string]struct {
			MTTAP50 float64 `json:"mtta_p50_seconds"`
			MTTAP90 float64 `json:"mtta_p90_seconds"`
			MTTRP50 float64 `json:"mttr_p50_seconds"`
		} `json:"by_severity"`
		Breaching []uint
	}
	ts.must(200, "GET", "/api/v1/sla", ts.viewer, nil, &rep)
	require.Equal(t, 2, rep.Total.Incidents)
	require.Equal(t, 2, rep.Total.Acknowledged)
	require.Equal(t, 1, rep.Total.AckBreaches)
	require.Equal(t, []uint{late}, rep.Breaching)
	// MTTA: 120s and 360s; p50 240s, p90 336s. MTTR: 600s.
	require.InDelta(t, 240, rep.BySeverity["critical"].MTTAP50, 0.01)
	require.InDelta(t, 336, rep.BySeverity["critical"].MTTAP90, 0.01)
	require.InDelta(t, 600, rep.BySeverity["critical"].MTTRP50, 0.01)

	code, body := ts.do("GET", "/metrics", "", nil)
	require.Equal(t, 200, code)
	for _, want := range []string{
		`sluice_tickets_mtta_seconds{cluster="",quantile="0.5",severity="critical"} 240`,
		`sluice_tickets_mtta_seconds{cluster="local",quantile="0.9",severity=""} 336`,
		`sluice_tickets_mttr_seconds{cluster="",quantile="0.5",severity="critical"} 600`,
		`sluice_tickets_sla_breaches{kind="ack",severity="critical"} 1`,
		`sluice_tickets_incidents{severity="critical",status="acknowledged"} 1`,
		`sluice_tickets_webhook_notifications_total{result="ok"} 2`,
	} {
		require.Contains(t, string(body), want)
	}
	ts.must(200, "POST", fmt.Sprintf("/api/v1/incidents/%d/close", crit), ts.operator, nil, nil)
	ts.must(409, "POST", fmt.Sprintf("/api/v1/incidents/%d/close", late), ts.operator, nil, nil)
	require.Len(t, ts.incidents("?status=open"), 1)
}

func TestTokensAndUsers(t *testing.T) {
	ts := startService(t)
	var created struct{ Token string }
	ts.must(201, "POST", "/api/v1/tokens", ts.admin, map[string]string{"name": "grafana", "role": "viewer"}, &created)
	ts.must(200, "GET", "/api/v1/incidents", created.Token, nil, nil)
	var list struct{ Tokens []store.APIToken }
	ts.must(200, "GET", "/api/v1/tokens", ts.admin, nil, &list)
	require.Len(t, list.Tokens, 4)
	code, body := ts.do("GET", "/api/v1/tokens", ts.admin, nil)
	require.Equal(t, 200, code)
	require.NotContains(t, string(body), "hash")
	ts.must(204, "DELETE", fmt.Sprintf("/api/v1/tokens/%d", list.Tokens[3].ID), ts.admin, nil, nil)
	ts.must(401, "GET", "/api/v1/incidents", created.Token, nil, nil)
	ts.must(201, "POST", "/api/v1/users", ts.admin, map[string]string{"username": "dave", "password": "a long password", "role": "operator"}, nil)
	ts.must(409, "POST", "/api/v1/users", ts.admin, map[string]string{"username": "dave", "password": "a long password", "role": "operator"}, nil)
}

// TestSnapshotOfARealBroker opens an incident against an in-process broker and
// checks the snapshot is captured within seconds and downloads as a bundle
// without secrets.
func TestSnapshotOfARealBroker(t *testing.T) {
	cfg := broker.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminListen = "127.0.0.1:0"
	cfg.OffsetsTopicNumPartitions = 1
	b := brokertest.Run(t, cfg)

	ts := startService(t, func(c *Config) {
		c.Snapshot.AdminURLs = []string{"127.0.0.1:1", b.AdminAddr()} // the first is down
		c.Snapshot.Bootstrap = []string{b.Addr()}
	})
	a := amAlert{"BrokerDown", "fp1", "firing", t0, map[string]string{"broker": "1", "sasl_password": "hunter2hunter2"}}
	start := time.Now()
	id := ts.notify(amPayload("BrokerDown", "firing", 0, a)).Opened[0]
	var snap struct {
		Snapshot snapshot.Snapshot
	}
	testutil.WaitFor(t, 10*time.Second, "the incident's snapshot", func() bool {
		code, body := ts.do("GET", fmt.Sprintf("/api/v1/incidents/%d/snapshot", id), ts.viewer, nil)
		return code == 200 && json.Unmarshal(body, &snap) == nil
	})
	t.Logf("snapshot captured %s after the incident opened; diagnosis: %s", time.Since(start).Round(time.Millisecond), snap.Snapshot.Diagnosis)
	s := snap.Snapshot
	require.NotNil(t, s.Cluster, "errors: %v", s.Errors)
	require.Equal(t, cfg.ClusterID, s.Cluster.ID)
	require.Len(t, s.Cluster.Brokers, 1)
	require.True(t, s.Cluster.Brokers[0].Reachable)
	require.NotEmpty(t, s.Events)
	require.Contains(t, s.Sources, "admin http://"+b.AdminAddr())
	require.NotEmpty(t, s.Diagnosis)
	require.Contains(t, ts.incident(id).Snapshot.Diagnosis, s.Diagnosis[:10])

	// The bundle: a tar.gz with the snapshot split up and secrets removed.
	code, body := ts.do("GET", fmt.Sprintf("/api/v1/incidents/%d/snapshot/bundle", id), ts.viewer, nil)
	require.Equal(t, 200, code, "%s", body)
	files := untar(t, body)
	for _, f := range []string{"README.txt", "snapshot.json", "cluster.json", "events.json", "incident.json", "alarms.json", "timeline.json"} {
		require.Contains(t, files, f)
	}
	require.NotContains(t, string(body), "hunter2") // compressed, so check the files too
	for name, data := range files {
		require.NotContains(t, data, "hunter2", name)
	}
	require.Contains(t, files["alarms.json"], snapshot.Redacted)

	// An operator can capture a new one.
	ts.must(201, "POST", fmt.Sprintf("/api/v1/incidents/%d/snapshot", id), ts.operator, nil, nil)
}

func untar(t *testing.T, b []byte) map[string]string {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[h.Name[strings.Index(h.Name, "/")+1:]] = string(data)
	}
}
