package runrecord

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// BarChartSVG draws a grouped bar chart: one group per label in groups, one
// bar per series (value NaN: no bar), y from yMin to yMax, as a small SVG.
func BarChartSVG(title string, groups []string, series []string, values [][]float64, yMin, yMax float64) string {
	const w, h, left, bottom, top = 640.0, 300.0, 50.0, 40.0, 30.0
	colors := []string{"#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="11">`, w, h+20*float64((len(series)+2)/3))
	fmt.Fprintf(&b, `<text x="%g" y="16" font-size="13">%s</text>`, left, html.EscapeString(title))
	plotH := h - bottom - top
	y := func(v float64) float64 { return top + plotH*(1-(v-yMin)/(yMax-yMin)) }
	for t := 0; t <= 5; t++ {
		v := yMin + (yMax-yMin)*float64(t)/5
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%g" y="%.1f" text-anchor="end">%.0f</text>`, left, w-10, y(v), y(v), left-4, y(v)+4, v)
	}
	gw := (w - left - 10) / float64(max(len(groups), 1))
	bw := gw * 0.8 / float64(max(len(series), 1))
	for gi, g := range groups {
		x0 := left + gw*float64(gi) + gw*0.1
		for si := range series {
			if gi >= len(values) || si >= len(values[gi]) || math.IsNaN(values[gi][si]) {
				continue
			}
			v := math.Max(yMin, math.Min(yMax, values[gi][si]))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f</title></rect>`,
				x0+bw*float64(si), y(v), bw-1, y(yMin)-y(v), colors[si%len(colors)], html.EscapeString(g), html.EscapeString(series[si]), values[gi][si])
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x0+gw*0.4, h-bottom+16, html.EscapeString(g))
	}
	for si, s := range series {
		lx, ly := left+float64(si%3)*190, h+float64(si/3)*20
		fmt.Fprintf(&b, `<rect x="%g" y="%g" width="10" height="10" fill="%s"/><text x="%g" y="%g">%s</text>`, lx, ly-9, colors[si%len(colors)], lx+14, ly, html.EscapeString(s))
	}
	b.WriteString(`</svg>`)
	return b.String()
}
