package nbkit

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	mg "github.com/erkkah/margaid"
	"github.com/erkkah/margaid/brackets"
)

// The line, scatter, histogram-outline and bar charts are drawn by margaid
// (github.com/erkkah/margaid), the SVG plotting library behind GoMLX's ui/gonb/margaid.
// That GoMLX package is not used directly: it plots a trainer's metrics against "Steps"
// (fixed x-axis title, the metric type as y title and plot title, one log setting for all
// plots), while the notebooks need their own titles, axis labels and fixed ranges. The SVG
// is displayed with gonbui.DisplayHTML, so the committed outputs are static text/html that
// GitHub and nbviewer show without a kernel.
//
// What margaid cannot do and this file therefore does before handing the data over:
// choose ranges with padding and "nice" ticks (margaid's log ticker labels every 1…9×10^k),
// drop points a log axis cannot show (margaid replaces the whole chart by an error text),
// cut histogram bars at a fixed range (margaid does not clip to the frame), set the viewBox
// to the whole image once a legend has grown it (withSize), and lay out a legend of many
// series in columns (Plot.LegendColumns).
// margaid picks the colours itself (one per series, in order) and draws no dashed lines;
// series are told apart by colour and legend, markers by their glyph in the legend.

// Series is one curve of a Plot: a polyline through (X[k], Y[k]); with Step, X holds
// len(Y)+1 bin edges and the curve is the histogram outline (y = Y[k] on [X[k], X[k+1]],
// down to the bottom of the frame at both ends and at empty bins); with Points, markers
// only; with Markers, a line with a marker at every point. Points that are not finite (or
// ≤ 0 on a log axis) are left out; a line joins its remaining points.
type Series struct {
	Name            string
	X, Y            []float64
	Step            bool
	Points, Markers bool
}

// Mark is a set of vertical lines across the frame, at the values of X, in one colour and
// one legend entry Label (none if ""). margaid colours each series it draws, so the lines
// are one series: a comb that runs along the frame's bottom and top edges between them
// (hidden under the frame, which is drawn after).
type Mark struct {
	Label string
	X     []float64
}

// Plot is a small 2-D chart, rendered by margaid to an SVG (see SVG).
type Plot struct {
	Title, XLabel, YLabel string
	W, H                  int // default 420×300, taller for a long YLabel (the frame is inset by 60 on each side)
	LogX, LogY            bool
	XMin, XMax            *float64 // optional fixed ranges; a Step series is cut at them, any other series must stay inside
	YMin, YMax            *float64
	Series                []Series
	Marks                 []Mark
	Legend                bool // legend below the chart (margaid's BottomLeft: the image grows)
	// LegendColumns > 1 lays the legend out in that many columns (filled column by column),
	// fewer when the longest name would not fit: nbkit draws it instead of margaid, for
	// charts with many series (margaid's legend is one entry per line).
	LegendColumns int
}

// F returns a pointer to v (for Plot's optional ranges).
func F(v float64) *float64 { return &v }

// Hist counts v into bins equal-width bins over [lo, hi] (values outside are clamped into
// the end bins) and returns the bin edges and the counts divided by len(v) (fractions).
func Hist(v []float64, lo, hi float64, bins int) (edges, frac []float64) {
	edges = make([]float64, bins+1)
	for i := range edges {
		edges[i] = lo + (hi-lo)*float64(i)/float64(bins)
	}
	frac = make([]float64, bins)
	for _, x := range v {
		b := int(math.Floor((x - lo) / (hi - lo) * float64(bins)))
		b = min(max(b, 0), bins-1)
		frac[b]++
	}
	for i := range frac {
		frac[i] /= float64(max(len(v), 1))
	}
	return edges, frac
}

// LogHist is Hist over log10(v) for the positive values of v, edges returned in linear
// units (for a LogX plot); non-positive values are counted in the first bin.
func LogHist(v []float64, lo, hi float64, bins int) (edges, frac []float64) {
	lv := make([]float64, len(v))
	for i, x := range v {
		if x > 0 {
			lv[i] = math.Log10(x)
		} else {
			lv[i] = math.Inf(-1)
		}
	}
	e, f := Hist(lv, math.Log10(lo), math.Log10(hi), bins)
	for i := range e {
		e[i] = math.Pow(10, e[i])
	}
	return e, f
}

// axis is a range [lo, hi], in log10 units on a log axis.
type axis struct {
	lo, hi float64
	log    bool
}

// t maps a data value to the axis' units (log10 on a log axis).
func (a axis) t(v float64) float64 {
	if a.log {
		return math.Log10(v)
	}
	return v
}

// inv maps back from axis units to data units.
func (a axis) inv(u float64) float64 {
	if a.log {
		return math.Pow(10, u)
	}
	return u
}

func (a axis) valid(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	return !a.log || v > 0
}

func (a axis) inside(v float64) bool {
	u := a.t(v)
	eps := 1e-9 * max(1, math.Abs(a.hi-a.lo))
	return u >= a.lo-eps && u <= a.hi+eps
}

func (a axis) clamp(v float64) float64 { return a.inv(min(max(a.t(v), a.lo), a.hi)) }

func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// ticks returns tick values in data units, all inside [lo, hi]: powers of ten on a log axis
// (with 2× and 5× ticks when it spans less than about two decades, at most ~6 labels),
// multiples of a 1-2-2.5-5 step otherwise.
func (a axis) ticks() []float64 {
	var t []float64
	if a.log {
		for e := math.Ceil(a.lo - 1e-9); e <= a.hi+1e-9; e++ {
			t = append(t, math.Pow(10, e))
		}
		if len(t) < 3 { // Less than ~2 decades: add 2× and 5× ticks.
			t = t[:0]
			for e := math.Floor(a.lo); e <= math.Ceil(a.hi); e++ {
				for _, m := range []float64{1, 2, 5} {
					if v := m * math.Pow(10, e); math.Log10(v) >= a.lo-1e-9 && math.Log10(v) <= a.hi+1e-9 {
						t = append(t, v)
					}
				}
			}
			return t
		}
		if len(t) > 8 {
			var u []float64
			for i := 0; i < len(t); i += (len(t) + 5) / 6 {
				u = append(u, t[i])
			}
			t = u
		}
		return t
	}
	s := niceStep(a.hi-a.lo, 5)
	for v := math.Ceil(a.lo/s-1e-9) * s; v <= a.hi+1e-9*s; v += s {
		if math.Abs(v) < 1e-12*s {
			v = 0
		}
		t = append(t, min(v, a.hi)) // ≤ hi: margaid's labelled ticker stops at the range's end
	}
	return t
}

func tickLabel(v float64, log bool) string {
	if log {
		e := math.Floor(math.Log10(v) + 1e-9)
		if e >= -2 && e <= 3 {
			return fmt.Sprintf("%g", v)
		}
		if m := v / math.Pow(10, e); math.Abs(m-1) > 1e-6 {
			return fmt.Sprintf("%ge%d", math.Round(m), int(e))
		}
		return "1e" + fmt.Sprint(int(e))
	}
	if v != 0 && (math.Abs(v) < 1e-3 || math.Abs(v) >= 1e5) {
		return fmt.Sprintf("%.0e", v)
	}
	return fmt.Sprintf("%.4g", v)
}

// dataRange returns the range of the valid values of vals in axis units ([0, 1] if none).
func dataRange(vals []float64, log bool) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	a := axis{log: log}
	for _, v := range vals {
		if !a.valid(v) {
			continue
		}
		lo, hi = min(lo, a.t(v)), max(hi, a.t(v))
	}
	if lo > hi {
		return 0, 1
	}
	if lo == hi {
		return lo - 0.5, hi + 0.5
	}
	return lo, hi
}

// Chart geometry: margaid insets the frame by the same amount on every side.
const (
	chartInset = 60.0
	defaultW   = 420
	defaultH   = 300
)

// markers are margaid's marker names, with the glyph the legend shows for them.
var markers = []struct{ name, glyph string }{{"filled-circle", "●"}, {"circle", "○"}, {"filled-square", "■"}, {"square", "□"}}

// labelCharW is the width of a character of the axis titles (11 px bold sans-serif), an
// estimate: SVG text cannot be measured before it is rendered.
const labelCharW = 6.6

// size returns the image size: W×H (default 420×300), taller when the y-axis title is longer
// than the frame (margaid writes it along the frame's left edge, centred, without wrapping).
func (p Plot) size() (w, h int) {
	w, h = p.W, p.H
	if w == 0 {
		w = defaultW
	}
	if h == 0 {
		h = defaultH
	}
	need := labelCharW*float64(utf8.RuneCountInString(p.YLabel)) + 10 + 2*chartInset
	return w, max(h, int(math.Ceil(need)))
}

// ranges returns the x and y axes: the data's range (x padded by 3% when there are points,
// linear y by 5%), or the fixed ranges where given.
func (p Plot) ranges() (ax, ay axis) {
	var xs, ys []float64
	points := false
	for _, s := range p.Series {
		xs = append(xs, s.X...)
		ys = append(ys, s.Y...)
		points = points || s.Points || s.Markers
	}
	for _, m := range p.Marks {
		xs = append(xs, m.X...)
	}
	ax.log, ay.log = p.LogX, p.LogY
	ax.lo, ax.hi = dataRange(xs, p.LogX)
	ay.lo, ay.hi = dataRange(ys, p.LogY)
	if points { // Keep markers off the frame.
		pad := 0.03 * (ax.hi - ax.lo)
		ax.lo, ax.hi = ax.lo-pad, ax.hi+pad
	}
	pad := 0.05 * (ay.hi - ay.lo)
	if p.LogY || ay.lo != 0 {
		ay.lo -= pad
	}
	ay.hi += pad
	set := func(v *float64, a axis, dst *float64) {
		if v != nil {
			*dst = a.t(*v)
		}
	}
	set(p.XMin, ax, &ax.lo)
	set(p.XMax, ax, &ax.hi)
	set(p.YMin, ay, &ay.lo)
	set(p.YMax, ay, &ay.hi)
	return ax, ay
}

// curve returns the points margaid draws for s: the valid points, or for a Step series the
// outline cut at the frame. It panics when a point of a non-Step series is outside a fixed
// range: margaid does not clip, so it would be drawn outside the frame.
func (p Plot) curve(s Series, ax, ay axis) (xs, ys []float64) {
	if s.Step {
		if len(s.X) != len(s.Y)+1 {
			panic(fmt.Sprintf("nbkit: step series %q has %d edges for %d bins, want %d", s.Name, len(s.X), len(s.Y), len(s.Y)+1))
		}
		base := ay.inv(ay.lo)
		add := func(x, y float64) {
			xs, ys = append(xs, ax.clamp(x)), append(ys, y)
		}
		add(s.X[0], base)
		for k, v := range s.Y {
			y := base
			if ay.valid(v) {
				y = ay.clamp(v)
			}
			add(s.X[k], y)
			add(s.X[k+1], y)
		}
		add(s.X[len(s.X)-1], base)
		return xs, ys
	}
	if len(s.X) != len(s.Y) {
		panic(fmt.Sprintf("nbkit: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y)))
	}
	for k := range s.Y {
		x, y := s.X[k], s.Y[k]
		if !ax.valid(x) || !ay.valid(y) {
			continue
		}
		if !ax.inside(x) || !ay.inside(y) {
			panic(fmt.Sprintf("nbkit: plot %q: point (%g, %g) of series %q is outside the fixed range x [%g, %g], y [%g, %g]; margaid does not clip",
				p.Title, x, y, s.Name, ax.inv(ax.lo), ax.inv(ax.hi), ay.inv(ay.lo), ay.inv(ay.hi)))
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys
}

// tickSeries holds the tick values as both x and y, for margaid's LabeledTicker.
func tickSeries(ticks []float64) *mg.Series {
	s := mg.NewSeries()
	s.Zip(ticks, ticks)
	return s
}

func projection(log bool) mg.Projection {
	if log {
		return mg.Log
	}
	return mg.Lin
}

func newDiagram(w, h int, ax, ay axis) *mg.Margaid {
	return mg.New(w, h,
		mg.WithRange(mg.XAxis, ax.inv(ax.lo), ax.inv(ax.hi)),
		mg.WithRange(mg.YAxis, ay.inv(ay.lo), ay.inv(ay.hi)),
		mg.WithProjection(mg.XAxis, projection(ax.log)),
		mg.WithProjection(mg.YAxis, projection(ay.log)),
		mg.WithInset(chartInset),
		mg.WithBackgroundColor("white"),
		mg.WithColorScheme(200),
		mg.WithTitleFont("sans-serif", 13),
		mg.WithLabelFont("sans-serif", 11),
	)
}

// axes draws both axes with their ticks, labels, grid and titles, and the frame.
func axes(d *mg.Margaid, ax, ay axis, xTicks []float64, xLabel func(float64) string, xTitle, yTitle string) {
	d.Axis(tickSeries(xTicks), mg.XAxis, d.LabeledTicker(xLabel), true, brackets.XMLEscape(xTitle))
	d.Axis(tickSeries(ay.ticks()), mg.YAxis, d.LabeledTicker(func(v float64) string { return tickLabel(v, ay.log) }), true, brackets.XMLEscape(yTitle))
	d.Frame()
}

var (
	startTagRE = regexp.MustCompile(`<([A-Za-z][A-Za-z0-9]*)((?:\s+[A-Za-z][A-Za-z0-9:-]*="[^"]*")+)\s*(/?)>`)
	attrRE     = regexp.MustCompile(`[A-Za-z][A-Za-z0-9:-]*="[^"]*"`)
)

// render returns the diagram's SVG with the attributes of every tag sorted: margaid writes
// them in Go's random map order, and the same chart must give the same bytes (committed
// notebook outputs would otherwise change on every run).
func render(d *mg.Margaid) string {
	var b bytes.Buffer
	if err := d.Render(&b); err != nil {
		panic(err) // A bytes.Buffer does not fail.
	}
	return startTagRE.ReplaceAllStringFunc(b.String(), func(tag string) string {
		m := startTagRE.FindStringSubmatch(tag)
		attrs := attrRE.FindAllString(m[2], -1)
		sort.Strings(attrs)
		return "<" + m[1] + " " + strings.Join(attrs, " ") + m[3] + ">"
	})
}

var (
	svgTagRE  = regexp.MustCompile(`^<svg [^>]*>`)
	heightRE  = regexp.MustCompile(` height="([0-9.]+)"`)
	widthRE   = regexp.MustCompile(` width="([0-9.]+)"`)
	viewBoxRE = regexp.MustCompile(` view[bB]ox="[^"]*"`)
	hslRE     = regexp.MustCompile(`<g [^>]* stroke="(hsl\([^"]*\))"`)
)

// svgSize returns the width and height attributes of the root <svg> tag of a rendered chart.
func svgSize(svg string) (w, h float64) {
	tag := svgTagRE.FindString(svg)
	wm, hm := widthRE.FindStringSubmatch(tag), heightRE.FindStringSubmatch(tag)
	if wm == nil || hm == nil {
		panic("nbkit: rendered chart has no width/height: " + tag)
	}
	fmt.Sscanf(wm[1], "%g", &w)
	fmt.Sscanf(hm[1], "%g", &h)
	return w, h
}

// withSize sets the root <svg> tag's height to h and its viewBox to the whole image, 0 0 w h.
// margaid grows the height for a legend below the chart but keeps viewbox="0 0 w H" of the
// size it was created with (and spells it "viewbox", which HTML parsers accept as viewBox):
// a browser then scales that box into the taller image with "xMidYMid meet", centring the
// chart vertically and cutting off the legend entries below H + (h − H)/2.
func withSize(svg string, h float64) string {
	tag := svgTagRE.FindString(svg)
	w, _ := svgSize(svg)
	nt := heightRE.ReplaceAllString(tag, fmt.Sprintf(` height="%g"`, h))
	box := fmt.Sprintf(` viewBox="0 0 %g %g"`, w, h)
	if viewBoxRE.MatchString(nt) {
		nt = viewBoxRE.ReplaceAllString(nt, box)
	} else {
		nt = strings.Replace(nt, "<svg", "<svg"+box, 1)
	}
	return nt + svg[len(tag):]
}

// Legend geometry, as margaid's own BottomLeft legend: swatches of the label size (11 px),
// 1.5 label sizes apart, the first one 1.5 + 1 label sizes + a tick (6 px) below the frame.
const (
	legendBox   = 11.0
	legendLineH = 1.5 * legendBox
	legendGap   = 4.0 // between swatch and text
	legendCharW = 6.2 // estimated width of a character of 11 px sans-serif
)

// legendGrid adds a legend of the named plots to a rendered chart of nominal height h (the
// frame ends at h − chartInset) that has no legend yet: entry k of n in column k / rows, row
// k % rows, rows = ⌈n / cols⌉, columns spread evenly over the width right of the swatch
// column's start; fewer columns when the longest name does not fit. names[i] is the title of
// the i-th plot margaid drew ("" for none); its colour is read from that plot's stroke.
func legendGrid(svg string, names []string, h float64, cols int) string {
	colours := hslRE.FindAllStringSubmatch(svg, -1)
	if len(colours) != len(names) {
		panic(fmt.Sprintf("nbkit: %d plots drawn, %d coloured groups in the SVG", len(names), len(colours)))
	}
	type entry struct{ name, colour string }
	var es []entry
	longest := 0
	for i, n := range names {
		if n != "" {
			es = append(es, entry{n, colours[i][1]})
			longest = max(longest, utf8.RuneCountInString(n))
		}
	}
	if len(es) == 0 {
		return svg
	}
	w, _ := svgSize(svg)
	x0 := chartInset + 0.5*legendBox
	y0 := h - chartInset + legendLineH + legendBox + 6
	avail := w - x0
	need := legendBox + legendGap + legendCharW*float64(longest) + legendBox
	cols = max(1, min(cols, len(es), int(avail/need)))
	rows := (len(es) + cols - 1) / cols
	colW := avail / float64(cols)
	var b strings.Builder
	b.WriteString(`<g font-family="sans-serif" font-size="11px">`)
	for k, e := range es {
		x, y := x0+float64(k/rows)*colW, y0+float64(k%rows)*legendLineH
		fmt.Fprintf(&b, `<rect fill="%s" height="%g" stroke="%s" width="%g" x="%g" y="%g"/>`, e.colour, legendBox, e.colour, legendBox, x, y)
		fmt.Fprintf(&b, `<text dominant-baseline="hanging" fill="black" x="%g" y="%g">%s</text>`, x+legendBox+legendGap, y, html.EscapeString(e.name))
	}
	b.WriteString(`</g>`)
	end := strings.LastIndex(svg, "</svg>")
	svg = svg[:end] + b.String() + svg[end:]
	return withSize(svg, math.Floor(h+legendLineH*float64(rows)))
}

// SVG renders the plot with margaid: the series in order (Points with a stroke-less line),
// then the marks as vertical lines, axes with grid, frame, title and legend.
func (p Plot) SVG() string {
	w, h := p.size()
	ax, ay := p.ranges()
	d := newDiagram(w, h, ax, ay)
	nMarkers := 0
	var drawn []string // the title of every plot drawn, in order (margaid's colour order)
	for _, s := range p.Series {
		xs, ys := p.curve(s, ax, ay)
		if len(xs) == 1 { // margaid draws no polyline of one point; two equal points carry its marker.
			xs, ys = append(xs, xs[0]), append(ys, ys[0])
		}
		name := s.Name
		using := []mg.Using{mg.UsingStrokeWidth(1.5)}
		if s.Points || s.Markers {
			m := markers[nMarkers%len(markers)]
			nMarkers++
			using = append(using, mg.UsingMarker(m.name))
			if s.Points { // A hairline: some renderers draw no markers on a line of width 0.
				using = append(using, mg.UsingStrokeWidth(0.01))
			}
			if name != "" {
				name += " " + m.glyph
			}
		}
		ms := mg.NewSeries(mg.Titled(name))
		ms.Zip(xs, ys)
		d.Line(ms, using...)
		drawn = append(drawn, name)
	}
	for _, m := range p.Marks {
		var xs, ys []float64
		bottom, top := ay.inv(ay.lo), ay.inv(ay.hi)
		for _, x := range m.X {
			if !ax.valid(x) || !ax.inside(x) {
				continue
			}
			xs = append(xs, x, x)
			ys = append(ys, bottom, top)
			bottom, top = top, bottom
		}
		if len(xs) == 0 {
			continue
		}
		ms := mg.NewSeries(mg.Titled(m.Label))
		ms.Zip(xs, ys)
		d.Line(ms, mg.UsingStrokeWidth(1))
		drawn = append(drawn, m.Label)
	}
	axes(d, ax, ay, ax.ticks(), func(v float64) string { return tickLabel(v, ax.log) }, p.XLabel, p.YLabel)
	if p.Title != "" {
		d.Title(p.Title)
	}
	if p.Legend && p.LegendColumns > 1 {
		return legendGrid(render(d), drawn, float64(h), p.LegendColumns)
	}
	if p.Legend {
		d.Legend(mg.BottomLeft)
	}
	out := render(d)
	_, hh := svgSize(out)
	return withSize(out, hh)
}

// Bars is a grouped bar chart: one group per entry of Groups along x, in each one bar per
// entry of Series (Values[group][series]; NaN: no bar), y from YMin to YMax (values outside
// are cut at them), rendered by margaid.
type Bars struct {
	Title, YLabel string
	W, H          int // default 640×300
	Groups        []string
	Series        []string
	Values        [][]float64
	YMin, YMax    float64
}

// SVG renders the bar chart with margaid, legend below.
func (b Bars) SVG() string {
	w, h := b.W, b.H
	if w == 0 {
		w = 640
	}
	if h == 0 {
		h = defaultH
	}
	for g, row := range b.Values {
		if len(row) != len(b.Series) {
			panic(fmt.Sprintf("nbkit: bar chart %q: group %d has %d values for %d series", b.Title, g, len(row), len(b.Series)))
		}
	}
	if len(b.Values) != len(b.Groups) || !(b.YMax > b.YMin) {
		panic(fmt.Sprintf("nbkit: bar chart %q: %d rows of values for %d groups, y range [%g, %g]", b.Title, len(b.Values), len(b.Groups), b.YMin, b.YMax))
	}
	ax := axis{lo: -0.5, hi: float64(len(b.Groups)) - 0.5}
	ay := axis{lo: b.YMin, hi: b.YMax}
	d := newDiagram(w, h, ax, ay)
	var all []*mg.Series
	for si, name := range b.Series {
		s := mg.NewSeries(mg.Titled(name))
		for g, row := range b.Values {
			if v := row[si]; !math.IsNaN(v) {
				s.Add(mg.MakeValue(float64(g), ay.clamp(v)))
			}
		}
		all = append(all, s)
	}
	d.Bar(all)
	idx := make([]float64, len(b.Groups))
	for i := range idx {
		idx[i] = float64(i)
	}
	axes(d, ax, ay, idx, func(v float64) string { return b.Groups[int(math.Round(v))] }, "", b.YLabel)
	if b.Title != "" {
		d.Title(b.Title)
	}
	d.Legend(mg.BottomLeft)
	out := render(d)
	_, hh := svgSize(out)
	return withSize(out, hh)
}
