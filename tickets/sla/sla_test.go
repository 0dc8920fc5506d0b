package sla

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluicemq/sluice/tickets/store"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0.0, Quantile(nil, 0.5))
	require.Equal(t, 7.0, Quantile([]float64{7}, 0.9))
	require.Equal(t, 2.5, Quantile([]float64{4, 1, 3, 2}, 0.5))
	require.InDelta(t, 9.1, Quantile([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9), 1e-9)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	det := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *time.Time { v := det.Add(d); return &v }
	tg := DefaultTargets()
	for _, tc := range []struct {
		name             string
		inc              store.Incident
		now              time.Duration
		ackBr, resolveBr bool
	}{
		{"open within targets", store.Incident{Severity: "critical", Status: "triggered"}, 4 * time.Minute, false, false},
		{"open past ack target", store.Incident{Severity: "critical", Status: "triggered"}, 6 * time.Minute, true, false},
		{"acked late", store.Incident{Severity: "critical", Status: "acknowledged", FirstAckAt: ts(6 * time.Minute)}, 7 * time.Minute, true, false},
		{"auto-resolved fast counts as answered", store.Incident{Severity: "critical", Status: "resolved", ResolvedAt: ts(2 * time.Minute)}, 3 * time.Hour, false, false},
		{"resolved late", store.Incident{Severity: "critical", Status: "resolved", FirstAckAt: ts(time.Minute), ResolvedAt: ts(2 * time.Hour)}, 3 * time.Hour, false, true},
		{"unknown severity uses default", store.Incident{Severity: "sev9", Status: "triggered"}, 20 * time.Minute, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.inc.DetectedAt = det
			st := Check(&tc.inc, tg, det.Add(tc.now))
			require.Equal(t, tc.ackBr, st.AckBreached)
			require.Equal(t, tc.resolveBr, st.ResolveBreached)
		})
	}
}
