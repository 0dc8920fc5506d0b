package tickets

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"sort"
	"strings"

	"github.com/sluicemq/sluice/tickets/snapshot"
)

// chartColors are distinguishable on white with at least 3:1 contrast.
var chartColors = []string{"#0b57d0", "#a50e0e", "#146c2e", "#8a4b00", "#6f2da8", "#00677f"}

// chartSVG draws a chart's series as an inline SVG line chart: no JavaScript
// charting library is needed. Every value written is a number or escaped text.
func chartSVG(ch snapshot.Chart) template.HTML {
	const w, h, pad = 520.0, 180.0, 36.0
	minT, maxT, minV, maxV := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	for _, s := range ch.Series {
		for _, p := range s.Points {
			minT, maxT = math.Min(minT, p[0]), math.Max(maxT, p[0])
			minV, maxV = math.Min(minV, p[1]), math.Max(maxV, p[1])
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" role="img" viewBox="0 0 %.0f %.0f" aria-label="%s">`, w, h, html.EscapeString(ch.Title))
	if math.IsInf(minT, 1) {
		b.WriteString(`<text x="20" y="90" fill="#4a5360">no data</text></svg>`)
		return template.HTML(b.String())
	}
	if maxT == minT {
		maxT = minT + 1
	}
	if maxV <= minV {
		maxV = minV + 1
	}
	x := func(t float64) float64 { return pad + (t-minT)/(maxT-minT)*(w-pad-8) }
	y := func(v float64) float64 { return h - 20 - (v-minV)/(maxV-minV)*(h-32) }
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#c9d0d9"/>`, pad, y(minV), w-8, y(minV))
	fmt.Fprintf(&b, `<text x="2" y="%.1f" font-size="11" fill="#4a5360">%s</text>`, y(maxV)+4, fmtNum(maxV))
	fmt.Fprintf(&b, `<text x="2" y="%.1f" font-size="11" fill="#4a5360">%s</text>`, y(minV), fmtNum(minV))
	for i, s := range ch.Series {
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		color := chartColors[i%len(chartColors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`,
			color, strings.Join(pts, " "), html.EscapeString(seriesName(s.Labels)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func seriesName(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func fmtNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
