package tickets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/internal/testutil"
	"github.com/sluicemq/sluice/tickets/snapshot"
	"github.com/sluicemq/sluice/tickets/store"
)

// brokerDownSnapshot is what the snapshot of make demo's fault records: broker
// 2 unreachable, 57 partitions under-replicated over two topics, 2 offline.
func brokerDownSnapshot(id uint, at time.Time) *snapshot.Snapshot {
	s := &snapshot.Snapshot{CapturedAt: at, Target: snapshot.Target{IncidentID: id},
		Cluster: &snapshot.Cluster{ID: "cid", ControllerID: 1, Topics: 3, Partitions: 62, Brokers: []snapshot.BrokerInfo{
			{ID: 1, Host: "127.0.0.1", Port: 9092, Reachable: true},
			{ID: 2, Host: "127.0.0.1", Port: 9093, Fenced: true, DialError: "connection refused"},
			{ID: 3, Host: "127.0.0.1", Port: 9094, Reachable: true},
		}},
		Affected: []snapshot.PartitionState{}, Groups: []snapshot.GroupLag{}, Events: []snapshot.Event{}, Logs: []snapshot.LogLine{},
		Charts: []snapshot.Chart{}, Errors: []string{}, Sources: []string{"admin http://127.0.0.1:9642"}}
	for i := range 50 {
		s.UnderReplicated = append(s.UnderReplicated, snapshot.PartitionState{Topic: "__consumer_offsets", Partition: i, Leader: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 3}})
	}
	for i := range 7 {
		s.UnderReplicated = append(s.UnderReplicated, snapshot.PartitionState{Topic: "demo-orders", Partition: i, Leader: 3, Replicas: []int32{2, 3, 1}, ISR: []int32{3, 1}})
	}
	s.Offline = []snapshot.PartitionState{
		{Topic: "sluice-bench", Partition: 0, Leader: -1, Replicas: []int32{2}, ISR: []int32{}},
		{Topic: "sluice-bench", Partition: 3, Leader: -1, Replicas: []int32{2}, ISR: []int32{}},
	}
	snapshot.Diagnose(s)
	return s
}

// TestBrowserIncidentPage: the incident page of a broker fault leads with the
// diagnosis, summarises 59 affected partitions (counts per topic, the first
// ten, a link to all), uses correct plurals, and fits a 420 px screen without
// horizontal scrolling; screenshots at 1280 and 420 px.
func TestBrowserIncidentPage(t *testing.T) {
	br := startChromium(t)
	ts := startService(t)
	ts.clock.Advance(3 * time.Minute)
	id := ts.notify(amPayload("SluiceBrokerDown", "firing", 0,
		amAlert{"SluiceBrokerDown", "fpd", "firing", t0, map[string]string{"broker": "2", "kafka_address": "127.0.0.1:9093", "instance": "127.0.0.1:9643"}})).Opened[0]
	// The automatic snapshot has no cluster to observe here (no admin URL);
	// the one the demo's fault records is stored after it.
	testutil.WaitFor(t, 10*time.Second, `ts.incident(id).Snapshot != nil`, func() bool { return ts.incident(id).Snapshot != nil })
	data, err := json.Marshal(brokerDownSnapshot(id, ts.clock.Now()))
	require.NoError(t, err)
	require.NoError(t, ts.Store().SaveSnapshot(context.Background(), &store.Snapshot{IncidentID: id, CapturedAt: ts.clock.Now().Add(time.Second),
		Reason: "incident opened", Diagnosis: "broker 2 unreachable", Data: string(data)}))

	ctx, cancel := context.WithTimeout(br.ctx, 90*time.Second)
	defer cancel()
	shot := br.shot
	eval := func(js string, dst any) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Evaluate[json.RawMessage](js)(ctx, tg)
			if err != nil {
				return chromedp.Void{}, err
			}
			return chromedp.Void{}, json.Unmarshal(v, dst)
		}
	}
	page := fmt.Sprintf("%s/incidents/%d", ts.base, id)
	var caption, title, impact string
	var diagFirst bool
	var firstRows, allRows int
	var height1280, width420, height420 float64
	err = chromedp.Do(ctx,
		chromedp.Navigate(ts.base+"/incidents"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), testAdminPassword),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("#incident-rows caption")),
		eval(`document.querySelector("#incident-rows caption").textContent`, &caption),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("impact-count")),
		eval(`document.querySelector("h1").textContent`, &title),
		eval(`document.getElementById("impact-count").textContent`, &impact),
		eval(`document.getElementById("diagnosis").getBoundingClientRect().top < document.getElementById("affected").getBoundingClientRect().top`, &diagFirst),
		eval(`document.querySelectorAll("#affected table")[1].querySelectorAll("tbody tr").length`, &firstRows),
		eval(`document.documentElement.scrollHeight`, &height1280),
		shot("tickets-incident-1280.png"),
		chromedp.EmulateViewport(420, 900),
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("impact-count")),
		eval(`document.documentElement.scrollWidth`, &width420),
		eval(`document.documentElement.scrollHeight`, &height420),
		shot("tickets-incident-420.png"),
		chromedp.Click(chromedp.ID("all-partitions")),
		chromedp.WaitVisible(chromedp.ID("partitions")),
		eval(`document.querySelectorAll("#partitions tbody tr").length`, &allRows),
	)
	require.NoError(t, err)
	require.Contains(t, caption, "1 incident,", "in the singular")
	require.Contains(t, title, "Broker 2 (127.0.0.1:9093) down")
	require.True(t, diagFirst, "the diagnosis comes before the affected partitions")
	require.Equal(t, "59 partitions affected, 2 of them offline, in 3 topics", strings.TrimSpace(impact))
	require.Equal(t, 10, firstRows)
	require.Equal(t, 59, allRows)
	require.LessOrEqual(t, width420, 420.0, "no horizontal scrolling at 420 px")
	// The 57-partition page was 5,775 px tall; the summary keeps it short.
	require.Less(t, height1280, 2600.0)
	t.Logf("incident page: %.0f px tall at 1280 px, %.0f px at 420 px; screenshots in %s", height1280, height420, br.shots)
}
