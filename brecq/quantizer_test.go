package brecq

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
)

// qtBackend returns the shared test backend (enginetest: GOMLX_BACKEND, default go).
func qtBackend(t testing.TB) compute.Backend {
	t.Helper()
	return enginetest.Backend(t)
}

// qtRun builds and runs fn once on args and returns every output as flat float32 data.
func qtRun(t testing.TB, fn func(in []*graph.Node) []*graph.Node, args ...any) [][]float32 {
	t.Helper()
	exec := graph.MustNewExec(qtBackend(t), fn)
	outs := exec.MustCall(args...)
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

func qtTensor(data []float32, dims ...int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), data...), dims...)
}

func qtFill(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func qtClose(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestFakeQuantByHand checks values and gradients of FakeQuant on hand-computed cases, at 4 and
// 2 bits, inside the grid, on both clip bounds (inclusive) and beyond them.
func TestFakeQuantByHand(t *testing.T) {
	type point struct {
		x, want float64
		dx      float64 // ∂x̂/∂x
		ds      float64 // ∂x̂/∂s
	}
	cases := []struct {
		name string
		bits int
		s, z float32
		pts  []point
	}{
		{
			// Grid: s·(q − z), q ∈ [0, 15] → [−1.5, 6.0].
			name: "4bit", bits: 4, s: 0.5, z: 3,
			pts: []point{
				{x: -5, want: -1.5, dx: 0, ds: -3},                // below: ds = −z
				{x: -2.0, want: -1.5, dx: 0, ds: -3},              // x/s = −4, q = −1 → clipped
				{x: -1.3, want: -1.5, dx: 1, ds: -3 - (-2.6)},     // q = 0 exactly: inclusive bound
				{x: 0.25, want: 0, dx: 1, ds: 0 - 0.5},            // 0.5 rounds half to even → 0
				{x: 0.3, want: 0.5, dx: 1, ds: 1 - 0.6},           // round(0.6) = 1
				{x: 0.75, want: 1.0, dx: 1, ds: 2 - 1.5},          // 1.5 rounds half to even → 2
				{x: 2.2, want: 2.0, dx: 1, ds: 4 - 4.4},           // round(4.4) = 4
				{x: 6.1, want: 6.0, dx: 1, ds: 12 - 12.2},         // q = 15 exactly: inclusive bound
				{x: 7.0, want: 6.0, dx: 0, ds: 15 - 3},            // above: ds = 2^b − 1 − z
				{x: 100, want: 6.0, dx: 0, ds: 15 - 3},            // far above
				{x: -0.2, want: 0.0, dx: 1, ds: 0 - (-0.4)},       // round(−0.4) = 0
				{x: -0.8, want: -1.0, dx: 1, ds: -2 - (-1.6)},     // round(−1.6) = −2
				{x: 3.75, want: 4.0, dx: 1, ds: 8 - 7.5},          // 7.5 → 8 (even)
				{x: 3.25, want: 3.0, dx: 1, ds: 6 - 6.5},          // 6.5 → 6 (even)
				{x: 1.0 / 3.0, want: 0.5, dx: 1, ds: 1 - 2.0/3.0}, // non-dyadic input
			},
		},
		{
			// Grid: q − 1, q ∈ [0, 3] → [−1, 2].
			name: "2bit", bits: 2, s: 1, z: 1,
			pts: []point{
				{x: -3, want: -1, dx: 0, ds: -1},
				{x: -0.6, want: -1, dx: 1, ds: -1 - (-0.6)},
				{x: 0.4, want: 0, dx: 1, ds: -0.4},
				{x: 1.5, want: 2, dx: 1, ds: 0.5},
				{x: 2.5, want: 2, dx: 1, ds: -0.5}, // round half even → 2 = top, inclusive
				{x: 9, want: 2, dx: 0, ds: 2},
			},
		},
		{
			// Unsigned grid (after ReLU): z = 0, s = 0.25 → [0, 0.75].
			name: "2bit-unsigned", bits: 2, s: 0.25, z: 0,
			pts: []point{
				{x: -0.1, want: 0, dx: 1, ds: 0.4}, // round(−0.4) = 0 = bottom: inclusive
				{x: -0.2, want: 0, dx: 0, ds: 0},   // round(−0.8) = −1 → clipped, ds = −z = 0
				{x: 0.3, want: 0.25, dx: 1, ds: 1 - 1.2},
				{x: 1.0, want: 0.75, dx: 0, ds: 3},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.pts)
			xs := make([]float32, n)
			for i, p := range tc.pts {
				xs[i] = float32(p.x)
			}
			// One scale per element (shape [n, 1]) so that ∂x̂/∂s is observed per element.
			out := qtRun(t, func(in []*graph.Node) []*graph.Node {
				x, s, z := in[0], in[1], in[2]
				y := FakeQuant(x, s, z, tc.bits)
				grads := graph.Gradient(graph.ReduceAllSum(y), x, s)
				return []*graph.Node{y, grads[0], grads[1]}
			}, qtTensor(xs, n, 1), qtTensor(qtFill(n, tc.s), n, 1), qtTensor(qtFill(n, tc.z), n, 1))
			host := FakeQuantHost(xs, QParams{Bits: tc.bits, Scale: []float32{tc.s}, ZeroPoint: []float32{tc.z}})
			for i, p := range tc.pts {
				// Expected ∂x̂/∂s from float32 x/s (the graph divides in float32).
				u := float64(xs[i] / tc.s)
				wantDS := p.ds
				if p.dx == 1 {
					wantDS = math.RoundToEven(u) - u
				}
				if !qtClose(float64(out[0][i]), p.want, 1e-6) || host[i] != out[0][i] {
					t.Errorf("x=%g: FakeQuant=%g, host=%g, want %g", p.x, out[0][i], host[i], p.want)
				}
				if float64(out[1][i]) != p.dx {
					t.Errorf("x=%g: ∂/∂x=%g, want %g", p.x, out[1][i], p.dx)
				}
				if !qtClose(float64(out[2][i]), wantDS, 1e-5) || !qtClose(wantDS, p.ds, 1e-5) {
					t.Errorf("x=%g: ∂/∂s=%g, want %g (by hand %g)", p.x, out[2][i], wantDS, p.ds)
				}
			}
		})
	}
}

// TestFakeQuantScaleGradientSumsOverChannel checks that a per-channel scale receives the sum of its
// elements' LSQ gradients (broadcast reduction), and a per-tensor scalar scale the total.
func TestFakeQuantScaleGradientSumsOverChannel(t *testing.T) {
	xs := []float32{0.3, 2.2, 9, -7, 0.1, 0.6}
	out := qtRun(t, func(in []*graph.Node) []*graph.Node {
		x, s, z := in[0], in[1], in[2]
		sc, zc := in[3], in[4]
		g1 := graph.Gradient(graph.ReduceAllSum(FakeQuant(x, s, z, 3)), s)
		g2 := graph.Gradient(graph.ReduceAllSum(FakeQuant(x, sc, zc, 3)), sc)
		return []*graph.Node{g1[0], g2[0]}
	}, qtTensor(xs, 2, 3), qtTensor([]float32{0.5, 0.25}, 2, 1), qtTensor([]float32{2, 4}, 2, 1),
		tensors.FromScalar(float32(0.5)), tensors.FromScalar(float32(2)))
	lsq := func(x, s, z float64, qmax float64) float64 {
		r := math.RoundToEven(float64(float32(x) / float32(s)))
		switch {
		case r+z < 0:
			return -z
		case r+z > qmax:
			return qmax - z
		}
		return r - float64(float32(x)/float32(s))
	}
	var want0, want1, wantScalar float64
	for i, x := range xs {
		if i < 3 {
			want0 += lsq(float64(x), 0.5, 2, 7)
		} else {
			want1 += lsq(float64(x), 0.25, 4, 7)
		}
		wantScalar += lsq(float64(x), 0.5, 2, 7)
	}
	if !qtClose(float64(out[0][0]), want0, 1e-5) || !qtClose(float64(out[0][1]), want1, 1e-5) {
		t.Errorf("per-channel ∂/∂s = %v, want [%g %g]", out[0], want0, want1)
	}
	if !qtClose(float64(out[1][0]), wantScalar, 1e-5) {
		t.Errorf("per-tensor ∂/∂s = %v, want %g", out[1], wantScalar)
	}
}

// TestFakeQuantMatchesHostPerChannel checks bit-identical results of the graph and the host
// reference on a per-channel conv weight.
func TestFakeQuantMatchesHostPerChannel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	shape := []int{4, 3, 2, 2}
	w := make([]float32, 48)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * float32(1+i/12)
	}
	for _, bits := range []int{2, 3, 4, 8} {
		q, err := SearchWeightQParams(w, shape, bits)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Validate(); err != nil {
			t.Fatal(err)
		}
		out := qtRun(t, func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{FakeQuant(in[0], in[1], in[2], bits)}
		}, qtTensor(w, shape...), q.ScaleTensor(), q.ZeroPointTensor())
		host := FakeQuantHost(w, q)
		for i := range w {
			if out[0][i] != host[i] {
				t.Fatalf("bits=%d: element %d: graph %g != host %g", bits, i, out[0][i], host[i])
			}
		}
	}
}

func TestQuantBitsValidation(t *testing.T) {
	for _, b := range []int{-1, 0, 1, 9, 16} {
		if err := ValidateBits(b); err == nil {
			t.Errorf("ValidateBits(%d) = nil, want error", b)
		}
		if _, err := QParamsFromRange([]float32{-1}, []float32{1}, b); err == nil {
			t.Errorf("QParamsFromRange(bits=%d) = nil error", b)
		}
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(errorText(r), "bit-width") {
					t.Errorf("FakeQuant(bits=%d): panic %v, want a bit-width error", b, r)
				}
			}()
			g := graph.NewGraph(qtBackend(t), "bits")
			x := graph.Const(g, float32(1))
			FakeQuant(x, x, x, b)
		}()
	}
	for b := MinBits; b <= MaxBits; b++ {
		if err := ValidateBits(b); err != nil {
			t.Errorf("ValidateBits(%d) = %v", b, err)
		}
	}
}

func errorText(r any) string {
	if e, ok := r.(error); ok {
		return e.Error()
	}
	if s, ok := r.(string); ok {
		return s
	}
	return ""
}

func TestQuantQParamsFromRange(t *testing.T) {
	cases := []struct {
		name     string
		min, max float32
		bits     int
		s, z     float32
	}{
		{"symmetric-ish", -1, 2, 2, 1, 1},
		{"widen-min-to-0", 0.5, 2, 2, 2.0 / 3, 0},
		{"widen-max-to-0", -3, -1, 2, 1, 3},
		{"relu", 0, 7.5, 4, 0.5, 0},
		{"8bit", -1.28, 1.27, 8, 0.01, 128},
		{"zero-range", 0, 0, 4, MinScale, 0},
		{"half-even-z", -0.5, 2.5, 2, 1, 0},  // −min/s = 0.5 → 0
		{"half-even-z2", -1.5, 1.5, 2, 1, 2}, // −min/s = 1.5 → 2
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := QParamsFromRange([]float32{tc.min}, []float32{tc.max}, tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			if !qtClose(float64(q.Scale[0]), float64(tc.s), 1e-6*float64(tc.s)) || q.ZeroPoint[0] != tc.z {
				t.Errorf("got s=%g z=%g, want s=%g z=%g", q.Scale[0], q.ZeroPoint[0], tc.s, tc.z)
			}
			if len(q.Shape) != 0 || q.Bits != tc.bits {
				t.Errorf("shape %v bits %d", q.Shape, q.Bits)
			}
			if err := q.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
	// Per-channel, shapes and errors.
	q, err := QParamsFromRange([]float32{-1, 0}, []float32{2, 3}, 2)
	if err != nil || len(q.Shape) != 1 || q.Shape[0] != 2 {
		t.Fatalf("per-channel: %+v, %v", q, err)
	}
	q4, err := q.WithShape(ChannelShape(2, 4)...)
	if err != nil || len(q4.Shape) != 4 || q4.Shape[0] != 2 || q4.Shape[3] != 1 {
		t.Fatalf("WithShape: %+v, %v", q4, err)
	}
	if dims := q4.ScaleTensor().Shape().Dimensions; len(dims) != 4 || dims[0] != 2 {
		t.Errorf("ScaleTensor dims %v", dims)
	}
	if _, err := q.WithShape(3, 1); err == nil {
		t.Error("WithShape(3,1) on 2 channels: want error")
	}
	if _, err := QParamsFromRange([]float32{-1}, []float32{1, 2}, 4); err == nil {
		t.Error("mismatched lengths: want error")
	}
	if _, err := QParamsFromRange(nil, nil, 4); err == nil {
		t.Error("empty: want error")
	}
	nan := float32(math.NaN())
	if _, err := QParamsFromRange([]float32{nan}, []float32{1}, 4); err == nil {
		t.Error("NaN: want error")
	}
	bad := QParams{Bits: 2, Scale: []float32{1}, ZeroPoint: []float32{4}}
	if bad.Validate() == nil {
		t.Error("z = 4 at 2 bits: want error")
	}
}
