package alertmanager

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeTestdata(t *testing.T) {
	for _, tc := range []struct {
		file string
		err  string
	}{
		{"firing.json", ""},
		{"bad_version.json", "version"},
		{"bad_status.json", "neither firing nor resolved"},
		{"no_alerts.json", "alerts: none"},
		{"trailing.json", "data after"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			require.NoError(t, err)
			m, err := Decode(bytes.NewReader(b))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			g := m.Signal()
			require.Len(t, g.Alarms, len(m.Alerts))
		})
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		g := m.Signal()
		for _, a := range g.Alarms {
			if a.Fingerprint == "" || a.Labels == nil {
				t.Fatalf("signal alarm without fingerprint or labels: %+v", a)
			}
		}
	})
}
