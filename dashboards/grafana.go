package dashboards

import (
	"fmt"
	"strings"
)

// This file is a small model of Grafana's dashboard JSON (schema version 39,
// Grafana 10.4 and later): only the fields these dashboards set, so the
// generated files stay close to what Grafana itself would save.

// SchemaVersion is the Grafana dashboard schema version the files are
// written in; Grafana migrates older versions on load, never newer ones.
const SchemaVersion = 39

// datasourceRef points a panel, target or variable at the Prometheus data
// source chosen in the dashboard's datasource variable.
var datasourceRef = &Ref{Type: "prometheus", UID: "${datasource}"}

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Description   string      `json:"description"`
	Tags          []string    `json:"tags"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Version       int         `json:"version"`
	Time          TimeRange   `json:"time"`
	Timezone      string      `json:"timezone"`
	Annotations   Annotations `json:"annotations"`
	Links         []Link      `json:"links"`
	Templating    Templating  `json:"templating"`
	Panels        []*Panel    `json:"panels"`
}

// TimeRange is a dashboard's default time range.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Annotations holds the dashboard's annotation queries.
type Annotations struct {
	List []Annotation `json:"list"`
}

// Annotation is an annotation query; only Grafana's built-in one is used.
type Annotation struct {
	BuiltIn    int    `json:"builtIn"`
	Datasource Ref    `json:"datasource"`
	Enable     bool   `json:"enable"`
	Hide       bool   `json:"hide"`
	IconColor  string `json:"iconColor"`
	Name       string `json:"name"`
	Type       string `json:"type"`
}

// Link is a dashboard link; these link the Sluice dashboards to each other
// by tag, keeping the time range and variables.
type Link struct {
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
	Tags        []string `json:"tags"`
	Title       string   `json:"title"`
	Type        string   `json:"type"`
}

// Templating holds the dashboard's template variables.
type Templating struct {
	List []*Variable `json:"list"`
}

// Variable is a template variable: the datasource, or a label_values query.
type Variable struct {
	Name       string         `json:"name"`
	Label      string         `json:"label"`
	Type       string         `json:"type"`
	Datasource *Ref           `json:"datasource,omitempty"`
	Definition string         `json:"definition,omitempty"`
	Query      any            `json:"query"`
	Regex      string         `json:"regex"`
	Refresh    int            `json:"refresh"`
	Sort       int            `json:"sort"`
	Multi      bool           `json:"multi"`
	IncludeAll bool           `json:"includeAll"`
	AllValue   string         `json:"allValue,omitempty"`
	Current    map[string]any `json:"current"`
	Options    []any          `json:"options"`
	Hide       int            `json:"hide"`
}

// VariableQuery is the query of a Prometheus query variable.
type VariableQuery struct {
	QryType int    `json:"qryType"`
	Query   string `json:"query"`
	RefID   string `json:"refId"`
}

// Ref names a data source.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// GridPos places a panel on the dashboard's 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Panel is one panel, or a row (Type "row") that groups the panels below it.
type Panel struct {
	ID              int              `json:"id"`
	Type            string           `json:"type"`
	Title           string           `json:"title"`
	Description     string           `json:"description,omitempty"`
	Datasource      *Ref             `json:"datasource,omitempty"`
	GridPos         GridPos          `json:"gridPos"`
	Collapsed       *bool            `json:"collapsed,omitempty"`
	Panels          []*Panel         `json:"panels,omitempty"`
	Targets         []*Target        `json:"targets,omitempty"`
	FieldConfig     *FieldConfig     `json:"fieldConfig,omitempty"`
	Options         map[string]any   `json:"options,omitempty"`
	Transformations []Transformation `json:"transformations,omitempty"`
}

// Target is a Prometheus query of a panel.
type Target struct {
	Datasource   *Ref   `json:"datasource"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat,omitempty"`
	Instant      bool   `json:"instant"`
	Range        bool   `json:"range"`
	Format       string `json:"format"`
	RefID        string `json:"refId"`
}

// FieldConfig holds the display defaults of a panel's fields.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

// FieldDefaults are the field settings these dashboards use.
type FieldDefaults struct {
	Unit       string         `json:"unit,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Max        *float64       `json:"max,omitempty"`
	Color      map[string]any `json:"color,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Mappings   []any          `json:"mappings,omitempty"`
	Custom     map[string]any `json:"custom,omitempty"`
}

// Thresholds colour a value by the last step it reaches.
type Thresholds struct {
	Mode  string `json:"mode"`
	Steps []Step `json:"steps"`
}

// Step is one threshold step; the first has no value (minus infinity).
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// Transformation is a Grafana data transformation of a table panel.
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}

// newDashboard returns a dashboard with the datasource and cluster
// variables and the links to the other Sluice dashboards.
func newDashboard(uid, title, description string) *Dashboard {
	return &Dashboard{
		UID:           uid,
		Title:         title,
		Description:   description,
		Tags:          []string{"sluice", "kafka"},
		Editable:      true,
		GraphTooltip:  1,
		Refresh:       "30s",
		SchemaVersion: SchemaVersion,
		Version:       1,
		Time:          TimeRange{From: "now-1h", To: "now"},
		Timezone:      "browser",
		Annotations: Annotations{List: []Annotation{{
			BuiltIn:    1,
			Datasource: Ref{Type: "grafana", UID: "-- Grafana --"},
			Enable:     true,
			Hide:       true,
			IconColor:  "rgba(0, 211, 255, 1)",
			Name:       "Annotations & Alerts",
			Type:       "dashboard",
		}}},
		Links: []Link{{AsDropdown: true, IncludeVars: true, KeepTime: true, Tags: []string{"sluice"}, Title: "Sluice dashboards", Type: "dashboards"}},
		Templating: Templating{List: []*Variable{
			{
				Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus",
				Refresh: 1, Current: map[string]any{}, Options: []any{},
			},
			queryVar("cluster", "Cluster", "label_values(sluice_broker_ready, cluster)", false),
		}},
	}
}

// queryVar is a label_values variable. A multi-value one offers "All",
// which becomes ".*" so that it works inside =~ matchers, and starts on it.
func queryVar(name, label, query string, multi bool) *Variable {
	v := &Variable{
		Name: name, Label: label, Type: "query", Datasource: datasourceRef,
		Definition: query,
		Query:      VariableQuery{QryType: 1, Query: query, RefID: "PrometheusVariableQueryEditor-VariableQuery"},
		Refresh:    2, // on time range change, so new topics and groups show up
		Sort:       1,
		Current:    map[string]any{},
		Options:    []any{},
	}
	if multi {
		v.Multi, v.IncludeAll, v.AllValue = true, true, ".*"
		v.Current = map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}}
	}
	return v
}

// vars appends template variables.
func (d *Dashboard) vars(vs ...*Variable) { d.Templating.List = append(d.Templating.List, vs...) }

// layout gives the panels ids and grid positions, left to right and top to
// bottom: a row takes a line of its own, a panel that does not fit on the
// current line starts the next one.
func (d *Dashboard) layout(panels ...*Panel) {
	x, y, lineH := 0, 0, 0
	for i, p := range panels {
		p.ID = i + 1
		if p.Type == "row" {
			if x > 0 {
				y += lineH
			}
			p.GridPos = GridPos{H: 1, W: 24, X: 0, Y: y}
			x, y, lineH = 0, y+1, 0
			continue
		}
		if x+p.GridPos.W > 24 {
			x, y, lineH = 0, y+lineH, 0
		}
		p.GridPos.X, p.GridPos.Y = x, y
		x += p.GridPos.W
		lineH = max(lineH, p.GridPos.H)
	}
	d.Panels = panels
}

// row is a row header; rows are expanded, so the panels below stay on the
// dashboard's top level.
func row(title string) *Panel {
	return &Panel{Type: "row", Title: title, Collapsed: new(bool), Panels: nil}
}

// selectors expands the shorthands used in the expressions below into the
// label matchers of the template variables:
//
//	{C  the cluster
//	{B  the cluster and the brokers chosen in $instance
//	{T  the cluster and the topics chosen in $topic
//	{G  the cluster, the groups chosen in $consumergroup and the topics chosen in $topic
//	{A  alerts of the cluster, or alerts without a cluster label
//
// Each stands for an opening brace followed by matchers, so "{B}" and
// "{B, api=~\"$api\"}" both work.
var selectors = strings.NewReplacer(
	"{C}", `{cluster=~"$cluster"}`,
	"{C,", `{cluster=~"$cluster",`,
	"{B}", `{cluster=~"$cluster", instance=~"$instance"}`,
	"{B,", `{cluster=~"$cluster", instance=~"$instance",`,
	"{T}", `{cluster=~"$cluster", topic=~"$topic"}`,
	"{T,", `{cluster=~"$cluster", topic=~"$topic",`,
	"{G}", `{cluster=~"$cluster", consumergroup=~"$consumergroup", topic=~"$topic"}`,
	"{G,", `{cluster=~"$cluster", consumergroup=~"$consumergroup", topic=~"$topic",`,
	"{A}", `{cluster=~"$cluster|"}`,
	"{A,", `{cluster=~"$cluster|",`,
)

// newPanel is a panel of the given type and size.
func newPanel(typ, title, unit string, w, h int) *Panel {
	p := &Panel{
		Type: typ, Title: title, Datasource: datasourceRef,
		GridPos:     GridPos{W: w, H: h},
		FieldConfig: &FieldConfig{Defaults: FieldDefaults{Unit: unit}, Overrides: []any{}},
	}
	return p
}

// timeseries is a graph, half the dashboard wide.
func timeseries(title, unit string) *Panel {
	p := newPanel("timeseries", title, unit, 12, 8)
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "palette-classic"}
	p.FieldConfig.Defaults.Custom = map[string]any{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}
	p.Options = map[string]any{
		"legend":  map[string]any{"displayMode": "table", "placement": "bottom", "showLegend": true, "calcs": []string{"mean", "max", "lastNotNull"}},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}
	return p
}

// stat is a single big number, a sixth of the dashboard wide.
func stat(title, unit string) *Panel {
	p := newPanel("stat", title, unit, 4, 4)
	p.FieldConfig.Defaults.Color = map[string]any{"mode": "thresholds"}
	p.FieldConfig.Defaults.Thresholds = steps("green")
	p.Options = map[string]any{
		"colorMode":     "background",
		"graphMode":     "none",
		"justifyMode":   "auto",
		"textMode":      "auto",
		"orientation":   "auto",
		"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
	}
	return p
}

// table is a table of instant queries, merged on their labels.
func table(title, unit string) *Panel {
	p := newPanel("table", title, unit, 24, 8)
	p.Options = map[string]any{"showHeader": true, "cellHeight": "sm", "footer": map[string]any{"show": false}}
	p.Transformations = []Transformation{
		{ID: "merge", Options: map[string]any{}},
		{ID: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true, "__name__": true, "job": true},
			"renameByName":  map[string]any{},
		}},
	}
	return p
}

// steps builds thresholds from a base colour and (value, colour) pairs.
func steps(base string, pairs ...any) *Thresholds {
	t := &Thresholds{Mode: "absolute", Steps: []Step{{Color: base}}}
	for i := 0; i+1 < len(pairs); i += 2 {
		v := toFloat(pairs[i])
		t.Steps = append(t.Steps, Step{Color: pairs[i+1].(string), Value: &v})
	}
	return t
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("threshold value %v is %T, want int or float64", v, v))
}

// q adds a range query. Its expression is expanded by selectors.
func (p *Panel) q(legend, expr string) *Panel {
	p.Targets = append(p.Targets, &Target{
		Datasource: datasourceRef, Expr: selectors.Replace(expr), LegendFormat: legend,
		Range: true, Format: "time_series", RefID: refID(len(p.Targets)),
	})
	return p
}

// instant adds an instant query; tables read their rows from these. In a
// table, legend names the column of the query's value.
func (p *Panel) instant(legend, expr string) *Panel {
	ref := refID(len(p.Targets))
	t := &Target{Datasource: datasourceRef, Expr: selectors.Replace(expr), Instant: true, Format: "time_series", RefID: ref}
	if p.Type != "table" {
		t.LegendFormat = legend
	} else {
		t.Format = "table"
		if legend != "" {
			// Grafana calls the value column "Value" for one query and
			// "Value #A", "Value #B", ... for several.
			rename := p.Transformations[1].Options["renameByName"].(map[string]any)
			rename["Value #"+ref] = legend
			if ref == "A" {
				rename["Value"] = legend
			} else {
				delete(rename, "Value")
			}
		}
	}
	p.Targets = append(p.Targets, t)
	return p
}

func refID(i int) string { return string(rune('A' + i)) }

// desc sets the panel's description, shown as its tooltip.
func (p *Panel) desc(s string) *Panel { p.Description = s; return p }

// size overrides the panel's width and height.
func (p *Panel) size(w, h int) *Panel { p.GridPos.W, p.GridPos.H = w, h; return p }

// thresholds sets the colour steps.
func (p *Panel) thresholds(t *Thresholds) *Panel { p.FieldConfig.Defaults.Thresholds = t; return p }

// min sets the lower end of the axis or gauge.
func (p *Panel) min(v float64) *Panel { p.FieldConfig.Defaults.Min = &v; return p }

// max sets the upper end of the axis or gauge.
func (p *Panel) max(v float64) *Panel { p.FieldConfig.Defaults.Max = &v; return p }

// stacked stacks the series of a time series panel.
func (p *Panel) stacked() *Panel {
	p.FieldConfig.Defaults.Custom["stacking"] = map[string]any{"mode": "normal", "group": "A"}
	p.FieldConfig.Defaults.Custom["fillOpacity"] = 40
	return p
}

// showName makes a stat show the series name (its legend) instead of the
// value, for one-hot state metrics such as sluice_raft_state.
func (p *Panel) showName() *Panel { p.Options["textMode"] = "name"; return p }

// mapText maps values of the panel to coloured texts, in pairs of value and
// "text:colour".
func (p *Panel) mapText(pairs ...string) *Panel {
	options := map[string]any{}
	for i := 0; i+1 < len(pairs); i += 2 {
		text, color, _ := strings.Cut(pairs[i+1], ":")
		options[pairs[i]] = map[string]any{"text": text, "color": color, "index": i / 2}
	}
	p.FieldConfig.Defaults.Mappings = append(p.FieldConfig.Defaults.Mappings, map[string]any{"type": "value", "options": options})
	return p
}

// colorText colours table cells by their value mappings and thresholds.
func (p *Panel) colorText() *Panel {
	p.FieldConfig.Defaults.Custom = map[string]any{"cellOptions": map[string]any{"type": "color-text"}}
	return p
}

// statusColors colours the Burrow-style statuses of the exporter.
func (p *Panel) statusColors() *Panel {
	return p.mapText("OK", "OK:green", "WARN", "WARN:yellow", "ERR", "ERR:red",
		"STOP", "STOP:red", "STALL", "STALL:orange", "REWIND", "REWIND:purple")
}
