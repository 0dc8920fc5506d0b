// Package dashboards holds Sluice's Grafana dashboards. They are defined in
// Go in this package and written as JSON files beside it by
// `go generate ./dashboards`; Grafana loads the JSON files through the
// provisioning files under provisioning/. The package test checks that the
// files are what the Go code generates, that they are well formed, and that
// every metric their PromQL uses is exported by a live broker or exporter.
package dashboards

//go:generate go run ./generate

import (
	"bytes"
	"encoding/json"
)

// All returns the dashboards, each with the name of its file.
func All() map[string]*Dashboard {
	return map[string]*Dashboard{
		"sluice-cluster-overview.json": clusterOverview(),
		"sluice-broker.json":           brokerDetail(),
		"sluice-topic.json":            topicDetail(),
		"sluice-consumer-groups.json":  consumerGroups(),
		"sluice-alerts.json":           alerts(),
	}
}

// Render encodes a dashboard as Grafana saves it: indented JSON with a
// trailing newline, HTML characters left alone.
func Render(d *Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
