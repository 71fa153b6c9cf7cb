package nbkit

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Palette is the colour cycle of the plots.
var Palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"}

// Series is one curve of a Plot. With Step, X holds len(Y)+1 bin edges and the curve is
// drawn as a histogram outline; with Points, as dots; otherwise as a polyline.
// Points with non-finite coordinates (or ≤ 0 on a log axis) are skipped.
type Series struct {
	Name         string
	X, Y         []float64
	Color        string // default: Palette in order
	Dashed       bool
	Step, Points bool
	Fill         bool // fill a Step series down to the axis (semi-transparent)
	StrokeWidth  float64
}

// Mark is a vertical line at X with an optional label.
type Mark struct {
	X      float64
	Label  string
	Color  string
	Dashed bool
}

// Plot is a small 2-D chart rendered as an inline SVG.
type Plot struct {
	Title, XLabel, YLabel string
	W, H                  int // default 380×250
	LogX, LogY            bool
	XMin, XMax            *float64 // optional fixed ranges
	YMin, YMax            *float64
	Series                []Series
	Marks                 []Mark
	Legend                bool
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

type axis struct {
	lo, hi   float64
	log      bool
	pix0, px float64 // pixel of lo, pixels per unit (negative for y)
}

func (a axis) tr(v float64) float64 {
	if a.log {
		v = math.Log10(v)
	}
	return a.pix0 + (v-a.lo)*a.px
}

func (a axis) valid(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	return !a.log || v > 0
}

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
		t = append(t, v)
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

func dataRange(vals []float64, log bool) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) || (log && v <= 0) {
			continue
		}
		if log {
			v = math.Log10(v)
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo > hi {
		return 0, 1
	}
	if lo == hi {
		return lo - 0.5, hi + 0.5
	}
	return lo, hi
}

func fmtPt(x, y float64) string { return fmt.Sprintf("%.1f,%.1f", x, y) }

// SVG renders the plot.
func (p Plot) SVG() string {
	w, h := p.W, p.H
	if w == 0 {
		w = 380
	}
	if h == 0 {
		h = 250
	}
	left, right, top, bottom := 58.0, 18.0, 24.0, 40.0
	var xs, ys []float64
	for _, s := range p.Series {
		xs = append(xs, s.X...)
		ys = append(ys, s.Y...)
		if s.Step && s.Fill && !p.LogY {
			ys = append(ys, 0)
		}
	}
	for _, m := range p.Marks {
		xs = append(xs, m.X)
	}
	xlo, xhi := dataRange(xs, p.LogX)
	ylo, yhi := dataRange(ys, p.LogY)
	for _, s := range p.Series {
		if s.Points { // Keep dots off the frame.
			pad := 0.03 * (xhi - xlo)
			xlo, xhi = xlo-pad, xhi+pad
			break
		}
	}
	if !p.LogY {
		pad := 0.05 * (yhi - ylo)
		if ylo != 0 {
			ylo -= pad
		}
		yhi += pad
	}
	set := func(v *float64, log bool, dst *float64) {
		if v != nil {
			*dst = *v
			if log {
				*dst = math.Log10(*v)
			}
		}
	}
	set(p.XMin, p.LogX, &xlo)
	set(p.XMax, p.LogX, &xhi)
	set(p.YMin, p.LogY, &ylo)
	set(p.YMax, p.LogY, &yhi)
	pw, ph := float64(w)-left-right, float64(h)-top-bottom
	ax := axis{lo: xlo, hi: xhi, log: p.LogX, pix0: left, px: pw / (xhi - xlo)}
	ay := axis{lo: ylo, hi: yhi, log: p.LogY, pix0: top + ph, px: -ph / (yhi - ylo)}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`, w, h)
	if p.Title != "" {
		fmt.Fprintf(&b, `<text x="%.1f" y="15" text-anchor="middle" font-size="12" font-weight="bold">%s</text>`, left+pw/2, html.EscapeString(p.Title))
	}
	// The clip rectangle depends only on the size, so equal ids in one page are harmless.
	clip := fmt.Sprintf("nbkit-clip-%dx%d", w, h)
	fmt.Fprintf(&b, `<clipPath id="%s"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath>`, clip, left, top, pw, ph)
	// Axes, ticks, grid.
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`, left, top, pw, ph)
	for _, t := range ax.ticks() {
		x := ax.tr(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
			x, top, x, top+ph, x, top+ph+13, tickLabel(t, p.LogX))
	}
	for _, t := range ay.ticks() {
		y := ay.tr(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			left, y, left+pw, y, left-4, y+4, tickLabel(t, p.LogY))
	}
	if p.XLabel != "" {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, left+pw/2, h-6, html.EscapeString(p.XLabel))
	}
	if p.YLabel != "" {
		fmt.Fprintf(&b, `<text transform="translate(12,%.1f) rotate(-90)" text-anchor="middle">%s</text>`, top+ph/2, html.EscapeString(p.YLabel))
	}
	fmt.Fprintf(&b, `<g clip-path="url(#%s)">`, clip)
	colors := p.seriesColors()
	// Frame in pixels: everything drawn is clipped to it geometrically as well (renderers that
	// drop clip-path, such as some notebook viewers, would otherwise let curves leave the frame).
	fx0, fx1, fy0, fy1 := left, left+pw, top, top+ph
	inFrame := func(x, y float64) bool { return x >= fx0-0.01 && x <= fx1+0.01 && y >= fy0-0.01 && y <= fy1+0.01 }
	clampY := func(y float64) float64 { return min(max(y, fy0), fy1) }
	clampX := func(x float64) float64 { return min(max(x, fx0), fx1) }
	for i, s := range p.Series {
		col := colors[i]
		sw := s.StrokeWidth
		if sw == 0 {
			sw = 1.5
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="5,3"`
		}
		switch {
		case s.Points:
			for k := range s.Y {
				if k < len(s.X) && ax.valid(s.X[k]) && ay.valid(s.Y[k]) && inFrame(ax.tr(s.X[k]), ay.tr(s.Y[k])) {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>`, ax.tr(s.X[k]), ay.tr(s.Y[k]), col)
				}
			}
		case s.Step:
			var pts []string
			base := ay.pix0
			if p.LogY {
				base = top + ph
			}
			base = clampY(base)
			pts = append(pts, fmtPt(clampX(ax.tr(s.X[0])), base))
			for k, v := range s.Y {
				y := base
				if ay.valid(v) {
					y = clampY(ay.tr(v))
				}
				pts = append(pts, fmtPt(clampX(ax.tr(s.X[k])), y), fmtPt(clampX(ax.tr(s.X[k+1])), y))
			}
			pts = append(pts, fmtPt(clampX(ax.tr(s.X[len(s.X)-1])), base))
			fill := "none"
			if s.Fill {
				fill = col + `" fill-opacity="0.25`
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="%s" stroke="%s" stroke-width="%.1f"%s/>`, strings.Join(pts, " "), fill, col, sw, dash)
		default:
			var seg []string
			flush := func() {
				if len(seg) > 1 {
					fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%.1f"%s/>`, strings.Join(seg, " "), col, sw, dash)
				}
				seg = seg[:0]
			}
			// Consecutive valid points, each segment clipped to the frame (Liang–Barsky).
			havePrev := false
			var px, py float64
			for k := range s.Y {
				if !(k < len(s.X) && ax.valid(s.X[k]) && ay.valid(s.Y[k])) {
					flush()
					havePrev = false
					continue
				}
				x, y := ax.tr(s.X[k]), ay.tr(s.Y[k])
				if !havePrev {
					px, py, havePrev = x, y, true
					if inFrame(x, y) {
						seg = append(seg, fmtPt(x, y))
					}
					continue
				}
				x0, y0, x1, y1, ok := clipSegment(px, py, x, y, fx0, fx1, fy0, fy1)
				if !ok {
					flush()
				} else {
					if len(seg) == 0 || x0 != px || y0 != py {
						flush()
						seg = append(seg, fmtPt(x0, y0))
					}
					seg = append(seg, fmtPt(x1, y1))
					if x1 != x || y1 != y {
						flush()
					}
				}
				px, py = x, y
			}
			flush()
		}
	}
	for i, m := range p.Marks {
		col := m.Color
		if col == "" {
			col = "#555"
		}
		dash := ""
		if m.Dashed {
			dash = ` stroke-dasharray="4,3"`
		}
		x := ax.tr(m.X)
		if !ax.valid(m.X) || x < fx0-0.01 || x > fx1+0.01 {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"%s/>`, x, top, x, top+ph, col, dash)
		if m.Label != "" {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="%s">%s</text>`, x+2, top+10+11*float64(i%3), col, html.EscapeString(m.Label))
		}
	}
	b.WriteString(`</g>`)
	if p.Legend {
		// One entry per name (a name drawn as line and dots is one entry, drawn as both), in the
		// corner of the frame that covers the fewest data points.
		type entry struct {
			name, col        string
			line, dash, dots bool
		}
		var entries []*entry
		byName := map[string]*entry{}
		chars := 0
		for i, s := range p.Series {
			if s.Name == "" {
				continue
			}
			e := byName[s.Name]
			if e == nil {
				e = &entry{name: s.Name, col: colors[i]}
				byName[s.Name] = e
				entries = append(entries, e)
				chars = max(chars, len([]rune(s.Name)))
			}
			if s.Points {
				e.dots = true
			} else {
				e.line = true
				e.dash = e.dash || s.Dashed
			}
		}
		lw, lh := 26+6.2*float64(chars), float64(13*len(entries)+3)
		var pix [][2]float64
		for _, s := range p.Series {
			for k := range s.Y {
				if k < len(s.X) && ax.valid(s.X[k]) && ay.valid(s.Y[k]) {
					pix = append(pix, [2]float64{ax.tr(s.X[k]), ay.tr(s.Y[k])})
				}
			}
		}
		corners := [][2]float64{{fx1 - lw, fy0 + 1}, {fx0 + 1, fy0 + 1}, {fx1 - lw, fy1 - lh - 1}, {fx0 + 1, fy1 - lh - 1}}
		lx, ly, best := corners[0][0], corners[0][1], -1
		for _, c := range corners {
			n := 0
			for _, q := range pix {
				if q[0] >= c[0]-3 && q[0] <= c[0]+lw+3 && q[1] >= c[1]-3 && q[1] <= c[1]+lh+3 {
					n++
				}
			}
			if best < 0 || n < best {
				lx, ly, best = c[0], c[1], n
			}
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.0f" fill="white" fill-opacity="0.8"/>`, lx, ly, lw-1, lh)
		y := ly + 11
		for _, e := range entries {
			x := lx + 3
			if e.line {
				dash := ""
				if e.dash {
					dash = ` stroke-dasharray="5,3"`
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, x, y-4, x+16, y-4, e.col, dash)
			}
			if e.dots {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, x+8, y-4, e.col)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, x+20, y, html.EscapeString(e.name))
			y += 13
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Heatmap is a matrix of cells coloured by value on a white→dark-blue scale.
type Heatmap struct {
	Title      string
	Values     [][]float64 // rows × cols; NaN cells are grey
	Lo, Hi     float64     // colour range; Lo == Hi: the data range
	RowLabels  []string    // optional, shown when not too many
	ColLabels  []string
	Separators []int  // draw a line before these row indices (and column indices, when the matrix is square)
	Caption    string // colour-bar label
	Cell       int    // cell size in pixels (default 10)
}

func blues(t float64) string {
	t = min(max(t, 0), 1)
	// From #f7fbff to #08306b.
	r := 247 + (8-247)*t
	g := 251 + (48-251)*t
	bl := 255 + (107-255)*t
	return fmt.Sprintf("#%02x%02x%02x", int(r), int(g), int(bl))
}

// SVG renders the heat map.
func (hm Heatmap) SVG() string {
	rows := len(hm.Values)
	cols := 0
	if rows > 0 {
		cols = len(hm.Values[0])
	}
	cell := float64(hm.Cell)
	if cell == 0 {
		cell = 10
	}
	lo, hi := hm.Lo, hm.Hi
	if lo == hi {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, r := range hm.Values {
			for _, v := range r {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
		if lo >= hi {
			hi = lo + 1
		}
	}
	longest := func(labels []string) int {
		n := 0
		for _, l := range labels {
			n = max(n, len([]rune(l)))
		}
		return n
	}
	left, top := 12+6*float64(longest(hm.RowLabels)), 28.0
	w := left + cell*float64(cols) + 90
	h := top + cell*float64(rows) + 12 + 6*float64(longest(hm.ColLabels))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="10">`, w, h)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`, w, h)
	if hm.Title != "" {
		fmt.Fprintf(&b, `<text x="%.1f" y="15" text-anchor="middle" font-size="12" font-weight="bold">%s</text>`, left+cell*float64(cols)/2, html.EscapeString(hm.Title))
	}
	for i, r := range hm.Values {
		for j, v := range r {
			col := "#bbb"
			if !math.IsNaN(v) {
				col = blues((v - lo) / (hi - lo))
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, left+cell*float64(j), top+cell*float64(i), cell, cell, col)
		}
	}
	// Separators split rows; on a square matrix (rows and columns indexing the same things) they
	// split the columns too. Only lines strictly inside the grid are drawn.
	for _, s := range hm.Separators {
		if s > 0 && s < cols && rows == cols {
			x := left + cell*float64(s)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5"/>`, x, top, x, top+cell*float64(rows))
		}
		if s > 0 && s < rows {
			y := top + cell*float64(s)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5"/>`, left, y, left+cell*float64(cols), y)
		}
	}
	label := func(labels []string, n int, f func(k int, s string)) {
		if len(labels) != n {
			return
		}
		every := max(1, int(math.Ceil(12/cell)))
		for k, s := range labels {
			if s != "" && k%every == 0 {
				f(k, s)
			}
		}
	}
	label(hm.RowLabels, rows, func(k int, s string) {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, left-3, top+cell*float64(k)+cell/2+3, html.EscapeString(s))
	})
	label(hm.ColLabels, cols, func(k int, s string) {
		x := left + cell*float64(k) + cell/2
		y := top + cell*float64(rows) + 4
		fmt.Fprintf(&b, `<text transform="translate(%.1f,%.1f) rotate(90)">%s</text>`, x-3, y, html.EscapeString(s))
	})
	// Colour bar.
	bx := left + cell*float64(cols) + 12
	bh := max(cell*float64(rows), 60)
	for k := range 20 {
		t := 1 - float64(k)/20
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="10" height="%.2f" fill="%s"/>`, bx, top+bh*float64(k)/20, bh/20+0.3, blues(t))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text><text x="%.1f" y="%.1f">%s</text>`, bx+13, top+8, tickLabel(hi, false), bx+13, top+bh, tickLabel(lo, false))
	if hm.Caption != "" {
		fmt.Fprintf(&b, `<text transform="translate(%.1f,%.1f) rotate(90)" text-anchor="middle">%s</text>`, bx+45, top+bh/2, html.EscapeString(hm.Caption))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// Row lays out several SVGs (or any HTML fragments) side by side, wrapping as needed.
func Row(items ...string) string {
	var b strings.Builder
	b.WriteString(`<div style="display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start">`)
	for _, it := range items {
		b.WriteString(`<div>` + it + `</div>`)
	}
	b.WriteString(`</div>`)
	return b.String()
}

// seriesColors returns each series' colour: its own, else the Palette colour of the first series
// with the same name (so a name drawn as line and dots has one colour), else by position.
func (p Plot) seriesColors() []string {
	cols := make([]string, len(p.Series))
	first := map[string]int{}
	for i, s := range p.Series {
		switch {
		case s.Color != "":
			cols[i] = s.Color
		case s.Name != "":
			if j, ok := first[s.Name]; ok {
				cols[i] = cols[j]
			} else {
				cols[i] = Palette[i%len(Palette)]
			}
		default:
			cols[i] = Palette[i%len(Palette)]
		}
		if _, ok := first[s.Name]; !ok && s.Name != "" {
			first[s.Name] = i
		}
	}
	return cols
}

// clipSegment clips the segment (x0,y0)–(x1,y1) to the rectangle [xa, xb] × [ya, yb]
// (Liang–Barsky) and reports whether any of it is left.
func clipSegment(x0, y0, x1, y1, xa, xb, ya, yb float64) (cx0, cy0, cx1, cy1 float64, ok bool) {
	t0, t1 := 0.0, 1.0
	dx, dy := x1-x0, y1-y0
	for _, pq := range [4][2]float64{{-dx, x0 - xa}, {dx, xb - x0}, {-dy, y0 - ya}, {dy, yb - y0}} {
		p, q := pq[0], pq[1]
		if p == 0 {
			if q < 0 {
				return 0, 0, 0, 0, false
			}
			continue
		}
		r := q / p
		if p < 0 {
			t0 = max(t0, r)
		} else {
			t1 = min(t1, r)
		}
		if t0 > t1 {
			return 0, 0, 0, 0, false
		}
	}
	return x0 + t0*dx, y0 + t0*dy, x0 + t1*dx, y0 + t1*dy, true
}
