package nbkit

import (
	"encoding/xml"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/brecq-go/brecq/brecq/engine"
)

func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return
			}
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
	}
}

func TestPlots(t *testing.T) {
	e, f := Hist([]float64{0.1, 0.2, 0.9, 5}, 0, 1, 4)
	if len(e) != 5 || f[0] != 0.5 || f[3] != 0.5 {
		t.Fatalf("Hist: edges %v frac %v", e, f)
	}
	le, lf := LogHist([]float64{0.01, 0.5, 50, 0}, 1e-2, 1e2, 4) // log10 bins [-2,-1) [-1,0) [0,1) [1,2]
	if math.Abs(le[2]-1) > 1e-12 || lf[0] != 0.5 || lf[1] != 0.25 || lf[3] != 0.25 {
		t.Fatalf("LogHist: edges %v frac %v", le, lf)
	}
	p := Plot{Title: "a<b", XLabel: "x<", YLabel: "y&", LogY: true, Legend: true,
		Series: []Series{{Name: "s", X: []float64{1, 2, 3}, Y: []float64{1, 10, 0}},
			{Name: "h", X: e, Y: f, Step: true}, {X: []float64{1}, Y: []float64{2}, Points: true}},
		Marks: []Mark{{X: []float64{2}, Label: "m"}}}
	svg := p.SVG()
	wellFormed(t, svg)
	if strings.Contains(svg, "cannot") { // margaid's error text, e.g. for a value ≤ 0 on a log axis
		t.Fatalf("margaid drew an error:\n%s", svg)
	}
	wellFormed(t, Plot{Series: []Series{{X: []float64{0}, Y: []float64{math.NaN()}}}}.SVG())
	hm := Heatmap{Title: "h", Values: [][]float64{{0, 1}, {math.NaN(), 2}}, RowLabels: []string{"a", "b"},
		ColLabels: []string{"c", "d"}, Separators: []int{1}, Caption: "log"}
	wellFormed(t, hm.SVG())
	if !strings.Contains(Row("<b>x</b>", "y"), "<b>x</b>") {
		t.Fatal("Row lost its items")
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[float64]string{0.5: "0.5", 1.25e-5: "1.25·10⁻⁵", 0: "0", 123.456: "123"} {
		if got := G(v, 3); got != want {
			t.Errorf("G(%g) = %q, want %q", v, got, want)
		}
	}
	if got := Table([]string{"a", "b"}, [][]string{{"1", "2"}}); got != "| a | b |\n| --- | --- |\n| 1 | 2 |\n" {
		t.Errorf("Table: %q", got)
	}
}

func TestCached(t *testing.T) {
	t.Setenv("GONB_TMP_DIR", t.TempDir())
	calls := 0
	fn := func() []float64 { calls++; return []float64{1, 2} }
	a := Cached("k/1", fn)
	b := Cached("k/1", fn)
	if calls != 1 || len(b) != 2 || a[1] != b[1] {
		t.Fatalf("Cached: %d calls, %v %v", calls, a, b)
	}
	// A changed knob must recompute; the old value's result stays cached.
	Knobs(100, "a")
	Cached("k/1", fn)
	if calls != 2 {
		t.Fatalf("Cached after a knob change: %d calls, want 2", calls)
	}
	Knobs(100, "a")
	Cached("k/1", fn)
	Knobs(101, "a")
	Cached("k/1", fn)
	if calls != 3 {
		t.Fatalf("Cached with knobs (100,a),(100,a),(101,a): %d calls, want 3", calls)
	}
	Knobs()
	t.Setenv("GONB_TMP_DIR", "")
	Cached("k/1", fn)
	if calls != 4 {
		t.Fatal("Cached without GONB_TMP_DIR must call fn")
	}
}

func TestTrainMLP(t *testing.T) {
	if os.Getenv("GOEXPERIMENT") == "" {
		t.Log("GOEXPERIMENT not set; the Go backend is slow without simd")
	}
	backend := engine.MustBackend()
	// Two Gaussian blobs in 8 dimensions, labels 0/1 (of 10 classes).
	r := rand.New(rand.NewPCG(1, 1))
	d := Data{N: 256, D: 8}
	for i := range d.N {
		c := int32(i % 2)
		for range d.D {
			d.X = append(d.X, float32(r.NormFloat64()+2*float64(c)-1))
		}
		d.Y = append(d.Y, c)
	}
	m := NewMLP(3, 8, 16, 10)
	loss0, _ := Evaluate(backend, m, d)
	steps := 0
	losses := TrainMLP(backend, m, d, TrainConfig{Steps: 60, Batch: 64, LR: 1e-2, Seed: 1,
		OnStep: func(int, float64, *MLP) { steps++ }})
	loss1, acc := Evaluate(backend, m, d)
	if steps != 60 || len(losses) != 60 || !(loss1 < loss0/3) || acc < 0.95 {
		t.Fatalf("training: %d steps, loss %g → %g, accuracy %g", steps, loss0, loss1, acc)
	}
	h := Activations(backend, m, d, 0)
	if len(h) != d.N*16 {
		t.Fatalf("Activations: %d values", len(h))
	}
	for _, v := range h {
		if v < 0 {
			t.Fatal("hidden activations must be post-ReLU")
		}
	}
	z := Activations(backend, m, d, 1)
	neg := false
	for _, v := range z {
		neg = neg || v < 0
	}
	if len(z) != d.N*10 || !neg {
		t.Fatal("Activations of the last layer must be the logits")
	}
}

func TestClock(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GONB_TMP_DIR", dir)
	StartClock()
	clockStart = time.Time{} // the next "cell" is a new program: only the file remains
	time.Sleep(20 * time.Millisecond)
	if e := Elapsed(); e < 20*time.Millisecond || e > 10*time.Second {
		t.Fatalf("Elapsed = %v after a 20 ms sleep", e)
	}
	// The wiring cell's go.sum, when present, marks the start.
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "go.sum"), old, old); err != nil {
		t.Fatal(err)
	}
	if e := Elapsed(); e < 59*time.Minute || e > 61*time.Minute {
		t.Fatalf("Elapsed = %v with go.sum written an hour ago", e)
	}
}

// drawn is what margaid drew for the data: the polylines and rectangles inside groups
// stroked or filled with a plot colour (hsl(…), margaid's palette), in the frame's
// coordinates (origin at the bottom-left corner of the frame, y up).
type drawn struct {
	paths [][][2]float64
	rects [][4]float64 // x, y, width, height
}

func parseDrawn(t *testing.T, svg string) drawn {
	t.Helper()
	var out drawn
	d := xml.NewDecoder(strings.NewReader(svg))
	var colored []bool
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch el := tok.(type) {
		case xml.StartElement:
			c := len(colored) > 0 && colored[len(colored)-1]
			for _, a := range el.Attr {
				if a.Name.Local == "stroke" || a.Name.Local == "fill" {
					c = c || strings.HasPrefix(a.Value, "hsl(")
				}
			}
			colored = append(colored, c)
			if !c {
				continue
			}
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			switch el.Name.Local {
			case "path":
				var pts [][2]float64
				for _, f := range strings.Fields(attr["d"]) {
					var x, y float64
					if _, err := fmt.Sscanf(f[1:], "%g,%g", &x, &y); err != nil {
						t.Fatalf("path %q: %v", attr["d"], err)
					}
					pts = append(pts, [2]float64{x, y})
				}
				out.paths = append(out.paths, pts)
			case "rect":
				var r [4]float64
				for i, k := range []string{"x", "y", "width", "height"} {
					fmt.Sscanf(attr[k], "%g", &r[i])
				}
				out.rects = append(out.rects, r)
			}
		case xml.EndElement:
			colored = colored[:len(colored)-1]
		}
	}
	return out
}

func near(a, b [2]float64) bool { return math.Abs(a[0]-b[0]) < 1e-3 && math.Abs(a[1]-b[1]) < 1e-3 }

// TestPlotGeometry checks margaid's drawing against positions computed by hand: a 400×300
// chart has a 280×180 frame (inset 60); x linear on [0, 10], y log on [1e-2, 1e2].
func TestPlotGeometry(t *testing.T) {
	const pw, ph = 280.0, 180.0
	p := Plot{W: 400, H: 300, LogY: true, XMin: F(0), XMax: F(10), YMin: F(1e-2), YMax: F(1e2), Legend: true,
		Series: []Series{
			{Name: "line", X: []float64{0, 5, 10, 7}, Y: []float64{1e-2, 1, 1e2, 0}}, // (7, 0) cannot be shown on log y: left out
			// Bins [0,2) [2,4) [4,6) [6,10]: below the range (cut at the bottom), 1, empty, above (cut at the top).
			{Name: "hist", X: []float64{0, 2, 4, 6, 10}, Y: []float64{1e-6, 1, 0, 50e3}, Step: true},
			{Name: "dots", X: []float64{5}, Y: []float64{10}, Points: true}},
		Marks: []Mark{{X: []float64{2.5, 11, 5}, Label: "marks"}, {X: []float64{11}, Label: "off the frame"}}}
	svg := p.SVG()
	wellFormed(t, svg)
	got := parseDrawn(t, svg)
	want := [][][2]float64{
		{{0, 0}, {pw / 2, ph / 2}, {pw, ph}},
		{{0, 0}, {0, 0}, {56, 0}, {56, ph / 2}, {112, ph / 2}, {112, 0}, {168, 0}, {168, ph}, {pw, ph}, {pw, 0}},
		{{pw / 2, 0.75 * ph}, {pw / 2, 0.75 * ph}},
		{{70, 0}, {70, ph}, {pw / 2, ph}, {pw / 2, 0}}, // 2.5 and 5 as one comb; 11 is off the frame
	}
	if len(got.paths) != len(want) {
		t.Fatalf("drew %d curves, want %d: %v", len(got.paths), len(want), got.paths)
	}
	for i := range want {
		if len(got.paths[i]) != len(want[i]) {
			t.Fatalf("curve %d: %v, want %v", i, got.paths[i], want[i])
		}
		for k := range want[i] {
			if !near(got.paths[i][k], want[i][k]) {
				t.Errorf("curve %d point %d: %v, want %v", i, k, got.paths[i][k], want[i][k])
			}
		}
	}
	for _, name := range []string{">line<", ">hist<", ">dots ●<", ">marks<"} {
		if n := strings.Count(svg, name); n != 1 {
			t.Errorf("%s appears %d times, want once (legend)", name, n)
		}
	}
	if strings.Contains(svg, "off the frame") {
		t.Error("a mark with no line inside the x range is in the legend")
	}
	// Same chart, same bytes (margaid writes attributes in map order; SVG sorts them).
	for range 10 {
		if p.SVG() != svg {
			t.Fatal("two renderings of one plot differ")
		}
	}
	// A line leaving a fixed range would be drawn outside the frame: refused, naming the series.
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), `"far"`) {
				t.Errorf("out-of-range line: recovered %v", r)
			}
		}()
		Plot{YMax: F(1), Series: []Series{{Name: "far", X: []float64{0, 1}, Y: []float64{0, 2}}}}.SVG()
	}()
}

// TestBars checks bar heights against (v − YMin)/(YMax − YMin) of the frame's height, NaN as
// no bar and values outside the range cut at it.
func TestBars(t *testing.T) {
	b := Bars{Title: "t", W: 500, H: 300, Groups: []string{"W2A4", "W4A4"}, Series: []string{"a", "b"},
		Values: [][]float64{{50, 75}, {math.NaN(), 120}}, YMin: 40, YMax: 100}
	svg := b.SVG()
	wellFormed(t, svg)
	var heights []float64
	for _, r := range parseDrawn(t, svg).rects {
		if r[2] == r[3] { // legend swatches are squares of the label size
			continue
		}
		heights = append(heights, r[3])
	}
	const ph = 180.0
	want := []float64{ph * 10 / 60, ph * 35 / 60, ph} // series a: 50 (W4A4: NaN); series b: 75, 120 cut at 100
	if len(heights) != len(want) {
		t.Fatalf("bar heights %v, want %v", heights, want)
	}
	for i := range want {
		if math.Abs(heights[i]-want[i]) > 1e-3 {
			t.Errorf("bar heights %v, want %v", heights, want)
			break
		}
	}
	for _, s := range []string{">W2A4<", ">W4A4<", ">a<", ">b<"} {
		if !strings.Contains(svg, s) {
			t.Errorf("no %s in the bar chart", s)
		}
	}
}

// TestHeatmapSeparators: a non-square heat map draws its separators inside the grid only.
func TestHeatmapSeparators(t *testing.T) {
	hm := Heatmap{Values: [][]float64{{0, 1}, {1, 2}, {2, 3}, {3, 4}}, Separators: []int{3}, Cell: 10}
	svg := hm.SVG()
	// One horizontal separator (rows), none vertical (3 ≥ 2 columns, not square).
	if n := strings.Count(svg, `stroke="#d62728"`); n != 1 {
		t.Errorf("non-square heat map drew %d separators, want 1", n)
	}
}

// TestPlotTallForLongYLabel: margaid writes the y-axis title along the frame without wrapping,
// so a title longer than the default frame makes the image taller (by the estimated text length).
func TestPlotTallForLongYLabel(t *testing.T) {
	height := func(p Plot) int {
		var h int
		if _, err := fmt.Sscanf(p.SVG()[strings.Index(p.SVG(), `height="`):], `height="%d"`, &h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	s := []Series{{X: []float64{0, 1}, Y: []float64{0, 1}}}
	if h := height(Plot{Series: s, YLabel: "short"}); h != defaultH {
		t.Errorf("short y title: height %d, want the default %d", h, defaultH)
	}
	long := strings.Repeat("x", 40)
	if h := height(Plot{Series: s, YLabel: long}); float64(h) < 40*labelCharW+2*chartInset {
		t.Errorf("40-character y title: height %d, frame shorter than the title", h)
	}
}

// viewBoxOf returns the root <svg> tag's height attribute and its viewBox.
func viewBoxOf(t *testing.T, svg string) (height float64, box [4]float64) {
	t.Helper()
	tag := svg[:strings.Index(svg, ">")]
	if _, err := fmt.Sscanf(tag[strings.Index(tag, ` height="`):], ` height="%g"`, &height); err != nil {
		t.Fatalf("no height in %s: %v", tag, err)
	}
	i := strings.Index(tag, ` viewBox="`)
	if i < 0 {
		t.Fatalf("no viewBox in %s", tag)
	}
	if _, err := fmt.Sscanf(tag[i:], ` viewBox="%g %g %g %g"`, &box[0], &box[1], &box[2], &box[3]); err != nil {
		t.Fatalf("viewBox of %s: %v", tag, err)
	}
	return height, box
}

// TestLegendInsideViewBox: margaid grows the image for its legend but kept the viewBox of the
// nominal size, so a browser centred the chart and cut off the last entries. A 400×300 chart
// with 6 legend entries is 300 + ⌊6·16.5⌋ = 399 high, its viewBox 0 0 400 399, and the last
// swatch (top at 300 − 60 + 16.5 + 11 + 6 + 5·16.5 = 356) ends inside it.
func TestLegendInsideViewBox(t *testing.T) {
	var s []Series
	for i := range 5 {
		s = append(s, Series{Name: fmt.Sprint("s", i), X: []float64{0, 1}, Y: []float64{0, float64(i)}})
	}
	svg := Plot{W: 400, H: 300, Legend: true, Series: s, Marks: []Mark{{Label: "m", X: []float64{0.5}}}}.SVG()
	wellFormed(t, svg)
	h, box := viewBoxOf(t, svg)
	if h != 399 || box != [4]float64{0, 0, 400, 399} {
		t.Fatalf("height %g, viewBox %v; want 399 and [0 0 400 399]", h, box)
	}
	if strings.Contains(svg, "viewbox") {
		t.Error("margaid's viewbox attribute left beside viewBox")
	}
	last := regexp.MustCompile(`<rect [^>]*height="11"[^>]*y="([^"]+)"`).FindAllStringSubmatch(svg, -1)
	var y float64
	fmt.Sscanf(last[len(last)-1][1], "%g", &y)
	if len(last) != 6 || math.Abs(y-356) > 1e-9 || y+11 > box[3] {
		t.Fatalf("%d legend swatches, the last at y = %g; want 6, at 356, inside the viewBox", len(last), y)
	}
	// Bars grow the same way: 2 series, 300 + ⌊2·16.5⌋ = 333.
	bh, bbox := viewBoxOf(t, Bars{Groups: []string{"g"}, Series: []string{"a", "b"}, Values: [][]float64{{1, 2}}, YMax: 3}.SVG())
	if bh != 333 || bbox != [4]float64{0, 0, 640, 333} {
		t.Errorf("bar chart: height %g, viewBox %v; want 333 and [0 0 640 333]", bh, bbox)
	}
}

// legendEntry is one swatch of nbkit's legend grid with its text.
type legendEntry struct {
	colour, name string
	x, y         float64
}

var legendEntryRE = regexp.MustCompile(`<rect fill="([^"]+)" height="11" stroke="[^"]+" width="11" x="([^"]+)" y="([^"]+)"/><text [^>]*>([^<]*)</text>`)

func legendEntries(svg string) []legendEntry {
	var out []legendEntry
	for _, m := range legendEntryRE.FindAllStringSubmatch(svg, -1) {
		e := legendEntry{colour: m[1], name: m[4]}
		fmt.Sscanf(m[2], "%g", &e.x)
		fmt.Sscanf(m[3], "%g", &e.y)
		out = append(out, e)
	}
	return out
}

// TestLegendColumns checks the legend grid against positions computed by hand and its
// colours against the curves'. A 760×400 chart: the swatch column starts at x0 = 60 + 5.5 =
// 65.5, so 3 columns share 760 − 65.5 = 694.5 px, 231.5 each; 8 entries fill 3 rows (column
// by column) from y0 = 400 − 60 + 16.5 + 11 + 6 = 373.5, 16.5 apart, and the image is
// 400 + ⌊3·16.5⌋ = 449 high.
func TestLegendColumns(t *testing.T) {
	var s []Series
	for i := range 7 {
		s = append(s, Series{Name: fmt.Sprint("s", i), X: []float64{0, 1}, Y: []float64{1, float64(i + 2)}})
	}
	p := Plot{W: 760, H: 400, LogY: true, Legend: true, LegendColumns: 3, Series: s, Marks: []Mark{{Label: "m", X: []float64{0.5}}}}
	svg := p.SVG()
	wellFormed(t, svg)
	h, box := viewBoxOf(t, svg)
	if h != 449 || box != [4]float64{0, 0, 760, 449} {
		t.Fatalf("height %g, viewBox %v; want 449 and [0 0 760 449]", h, box)
	}
	got := legendEntries(svg)
	strokes := regexp.MustCompile(`<g [^>]* stroke="(hsl[^"]*)"[^>]*><path`).FindAllStringSubmatch(svg, -1)
	if len(got) != 8 || len(strokes) != 8 {
		t.Fatalf("%d legend entries and %d curves, want 8 and 8:\n%s", len(got), len(strokes), svg)
	}
	for k, e := range got {
		wantName := fmt.Sprint("s", k)
		if k == 7 {
			wantName = "m"
		}
		wx, wy := 65.5+float64(k/3)*231.5, 373.5+float64(k%3)*16.5
		if e.name != wantName || math.Abs(e.x-wx) > 1e-9 || math.Abs(e.y-wy) > 1e-9 {
			t.Errorf("entry %d: %q at (%g, %g), want %q at (%g, %g)", k, e.name, e.x, e.y, wantName, wx, wy)
		}
		if e.colour != strokes[k][1] {
			t.Errorf("entry %d (%s): swatch %s, its curve %s", k, e.name, e.colour, strokes[k][1])
		}
	}
	if strings.Count(svg, ">s0<") != 1 {
		t.Error("margaid's own legend drawn beside the grid")
	}
	// Many series: 24 curves get 24 different colours, one legend entry each.
	s = nil
	for i := range 24 {
		s = append(s, Series{Name: fmt.Sprintf("unit %02d", i), X: []float64{0, 1}, Y: []float64{0, float64(i)}})
	}
	many := legendEntries(Plot{W: 760, H: 400, Legend: true, LegendColumns: 3, Series: s}.SVG())
	seen := map[string]bool{}
	for _, e := range many {
		seen[e.colour] = true
	}
	if len(many) != 24 || len(seen) != 24 {
		t.Errorf("24 series: %d legend entries, %d colours", len(many), len(seen))
	}
	// A name too long for two columns side by side (11 + 4 + 6.2·120 + 11 > 694.5 / 2): one column.
	long := strings.Repeat("x", 120)
	one := legendEntries(Plot{W: 760, H: 400, Legend: true, LegendColumns: 2,
		Series: []Series{{Name: long, X: []float64{0, 1}, Y: []float64{0, 1}}, {Name: "b", X: []float64{0, 1}, Y: []float64{1, 0}}}}.SVG())
	if len(one) != 2 || one[0].x != one[1].x || one[1].y-one[0].y != 16.5 {
		t.Errorf("long name: entries %+v, want one column", one)
	}
}
