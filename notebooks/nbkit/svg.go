package nbkit

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// Heat maps stay hand-written SVG: margaid (chart.go) draws lines, smooth lines and bars
// only — no grid of coloured cells, no colour bar, no rotated category labels.

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
