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
	p := Plot{Title: "a<b", XLabel: "x", YLabel: "y", LogY: true, Legend: true,
		Series: []Series{{Name: "s", X: []float64{1, 2, 3}, Y: []float64{1, 10, 0}},
			{Name: "h", X: e, Y: f, Step: true, Fill: true}, {X: []float64{1}, Y: []float64{2}, Points: true}},
		Marks: []Mark{{X: 2, Label: "m", Dashed: true}}}
	wellFormed(t, p.SVG())
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

// TestPlotFrame checks that nothing is drawn outside the frame when fixed ranges cut the data,
// that a name drawn as dots and line is one legend entry in one colour, and that a non-square
// heat map draws its separators inside the grid only.
func TestPlotFrame(t *testing.T) {
	p := Plot{W: 300, H: 200, LogY: true, YMin: F(0.5), YMax: F(2), Legend: true,
		Series: []Series{{Name: "u", X: []float64{1, 2, 3, 4}, Y: []float64{1, 0.01, 1, 100}, Points: true},
			{Name: "u", X: []float64{1, 2, 3, 4}, Y: []float64{1, 0.01, 1, 100}},
			{Name: "h", X: []float64{0, 1, 2, 3, 4}, Y: []float64{1e-6, 1, 1, 50}, Step: true, Fill: true}},
		Marks: []Mark{{X: 10}}}
	svg := p.SVG()
	wellFormed(t, svg)
	left, right, top, bottom := 58.0, 300-18.0, 24.0, 200-40.0
	re := regexp.MustCompile(`points="([^"]*)"|cx="([-0-9.]+)" cy="([-0-9.]+)"`)
	for _, m := range re.FindAllStringSubmatch(svg, -1) {
		var pts []string
		if m[1] != "" {
			pts = strings.Fields(m[1])
		} else {
			pts = []string{m[2] + "," + m[3]}
		}
		for _, pt := range pts {
			var x, y float64
			if _, err := fmt.Sscanf(pt, "%g,%g", &x, &y); err != nil {
				t.Fatal(err)
			}
			if x < left-0.1 || x > right+0.1 || y < top-0.1 || y > bottom+0.1 {
				t.Errorf("point %s outside the frame [%g,%g]×[%g,%g]", pt, left, right, top, bottom)
			}
		}
	}
	if n := strings.Count(svg, ">u</text>"); n != 1 {
		t.Errorf("legend has %d entries for u, want 1", n)
	}
	if c := p.seriesColors(); c[0] != c[1] || c[0] == c[2] {
		t.Errorf("colours %v: the two u series must share one, h another", c)
	}
	if x0, y0, x1, y1, ok := clipSegment(0, 0, 10, 10, 2, 8, 0, 5); !ok || x0 != 2 || y0 != 2 || x1 != 5 || y1 != 5 {
		t.Errorf("clipSegment = %g,%g %g,%g %v", x0, y0, x1, y1, ok)
	}
	if _, _, _, _, ok := clipSegment(0, 9, 10, 9, 2, 8, 0, 5); ok {
		t.Error("clipSegment kept a segment above the rectangle")
	}
	hm := Heatmap{Values: [][]float64{{0, 1}, {1, 2}, {2, 3}, {3, 4}}, Separators: []int{3}, Cell: 10}
	svg = hm.SVG()
	// One horizontal separator (rows), none vertical (3 ≥ 2 columns, not square).
	if n := strings.Count(svg, `stroke="#d62728"`); n != 1 {
		t.Errorf("non-square heat map drew %d separators, want 1", n)
	}
}
