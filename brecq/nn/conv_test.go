package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/engine/enginetest"
)

func goBackend(t testing.TB) compute.Backend {
	return enginetest.Backend(t)
}

var sequentialGo = sync.OnceValues(func() (compute.Backend, error) { return engine.New("go:ops_sequential") })

// nativeBackend is the backend the native ConvGeneral reference runs on: the
// test backend, except on the Go backend, where it is a second Go backend
// that executes one op at a time ("go:ops_sequential"). compute v0.1.6's Go
// backend runs independent ops as tasks of its worker pool, and ConvGeneral
// waits inside its task for more tasks of that same pool: with ≥ 2·GOMAXPROCS
// convolutions running at once — the native grouped convolution's gradient
// has one per group — every task waits and the execution never ends.
func nativeBackend(t testing.TB) compute.Backend {
	b := goBackend(t)
	if b.String() != "go" {
		return b
	}
	seq, err := sequentialGo()
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func randTensor(r *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// local returns a host copy of t, so the same values can be fed to two
// backends (a tensor once on a backend's device stays bound to it).
func local(t *tensors.Tensor) *tensors.Tensor {
	c, err := t.LocalClone()
	if err != nil {
		panic(err)
	}
	return c
}

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// convCase is one convolution compared between the patches path and the
// backend's native ConvGeneral.
type convCase struct {
	C, N, H, W, O, k, stride, groups int
}

func (c convCase) String() string {
	return fmt.Sprintf("C%d_%dx%d_O%d_k%d_s%d_g%d", c.C, c.H, c.W, c.O, c.k, c.stride, c.groups)
}

// checkPatchesMatchNative checks values and gradients (w.r.t. input and
// kernel) of the patches path against the backend's own convolution
// (graph.ConvGeneral with feature group count), within 1e-5 of the largest
// magnitude (at least 1) of each native result.
func checkPatchesMatchNative(t *testing.T, tc convCase) {
	t.Helper()
	checkPathMatchesNative(t, tc, ConvPatches)
}

// checkPathMatchesNative is checkPatchesMatchNative for any non-native path.
func checkPathMatchesNative(t *testing.T, tc convCase, path ConvPath) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, uint64(tc.C*1000+tc.groups*100+tc.k*10+tc.stride)))
	x := randTensor(r, tc.C, tc.N, tc.H, tc.W)
	w := randTensor(r, tc.O, tc.C/tc.groups, tc.k, tc.k)
	cot := randTensor(r, tc.O, tc.N, ConvOutSize(tc.H, tc.k, tc.stride), ConvOutSize(tc.W, tc.k, tc.stride))
	run := func(b compute.Backend, path ConvPath) []*tensors.Tensor {
		e := graph.MustNewExec(b, func(in []*graph.Node) []*graph.Node {
			y := Conv2D(in[0], in[1], tc.stride, tc.groups, path)
			loss := graph.ReduceAllSum(graph.Mul(y, in[2]))
			grads := graph.Gradient(loss, in[0], in[1])
			return []*graph.Node{y, grads[0], grads[1]}
		})
		defer e.Finalize()
		return e.MustCall(local(x), local(w), local(cot))
	}
	got, want := run(goBackend(t), path), run(nativeBackend(t), ConvNative)
	for i, name := range []string{"y", "dx", "dw"} {
		if !got[i].Shape().Equal(want[i].Shape()) {
			t.Fatalf("%s: shape %s, native %s", name, got[i].Shape(), want[i].Shape())
		}
		g, wt := tensors.MustCopyFlatData[float32](got[i]), tensors.MustCopyFlatData[float32](want[i])
		tol := 1e-5 * math.Max(1, maxAbs(wt))
		for j := range g {
			if math.Abs(float64(g[j]-wt[j])) > tol {
				t.Fatalf("%s[%d] = %g, native %g (tol %g)", name, j, g[j], wt[j], tol)
			}
		}
	}
}

// TestConvPatchesMatchesNative checks dense and depthwise convolutions.
func TestConvPatchesMatchesNative(t *testing.T) {
	cases := []struct {
		C, N, H, O, k, stride, groups int
	}{
		{3, 2, 7, 4, 3, 1, 1},
		{3, 2, 8, 5, 3, 2, 1},
		{4, 2, 7, 6, 1, 1, 1},
		{4, 2, 8, 6, 1, 2, 1},
		{2, 1, 9, 3, 7, 2, 1},
		{5, 2, 7, 5, 3, 1, 5},
		{5, 2, 8, 5, 3, 2, 5},
	}
	for _, c := range cases {
		tc := convCase{c.C, c.N, c.H, c.H, c.O, c.k, c.stride, c.groups}
		t.Run(tc.String(), func(t *testing.T) { checkPatchesMatchNative(t, tc) })
	}
}

// TestGroupedConvPatchesMatchesNative covers kernels 1, 3, 5, 7 at strides 1
// and 2 for every kind of grouping the paper's networks use: depthwise
// (groups = channels, MobileNetV2 / MNasNet), depthwise with a channel
// multiplier (out = 2·in), and grouped with group width 2 or 4 and unequal
// in / out widths (RegNetX), on non-square odd and even images.
func TestGroupedConvPatchesMatchesNative(t *testing.T) {
	groupings := []struct{ C, O, groups int }{
		{6, 6, 6},  // depthwise
		{4, 8, 4},  // depthwise, channel multiplier 2
		{8, 12, 4}, // group width 2 in, 3 out
		{12, 6, 3}, // group width 4 in, 2 out
		{8, 8, 2},  // group width 4
	}
	for _, gr := range groupings {
		for _, k := range []int{1, 3, 5, 7} {
			for _, stride := range []int{1, 2} {
				tc := convCase{gr.C, 2, 9, 8, gr.O, k, stride, gr.groups}
				t.Run(tc.String(), func(t *testing.T) { checkPatchesMatchNative(t, tc) })
			}
		}
	}
}

// TestShiftDotPatches checks the patches built by shift matrices
// (convShiftDot, dense 3×3 stride 1) against the native convolution, and
// that they give exactly the values, input and kernel gradients of the
// Slice-built patches: each patch entry is one input value times 1 plus
// zeros, so no rounding differs.
func TestShiftDotPatches(t *testing.T) {
	for _, tc := range []convCase{
		{3, 2, 7, 7, 4, 3, 1, 1},
		{5, 3, 9, 6, 4, 3, 1, 1},
		{8, 2, 1, 1, 8, 3, 1, 1},
	} {
		t.Run(tc.String(), func(t *testing.T) {
			checkPathMatchesNative(t, tc, convShiftDot)
			r := rand.New(rand.NewPCG(3, uint64(tc.H)))
			x := randTensor(r, tc.C, tc.N, tc.H, tc.W)
			w := randTensor(r, tc.O, tc.C, 3, 3)
			e := graph.MustNewExec(goBackend(t), func(in []*graph.Node) []*graph.Node {
				var out []*graph.Node
				for _, path := range []ConvPath{ConvPatches, convShiftDot} {
					y := Conv2D(in[0], in[1], 1, 1, path)
					grads := graph.Gradient(graph.ReduceAllSum(graph.Mul(y, y)), in[0], in[1])
					out = append(out, y, grads[0], grads[1])
				}
				return out
			})
			defer e.Finalize()
			res := e.MustCall(x, w)
			for i, name := range []string{"y", "dx", "dw"} {
				a, b := tensors.MustCopyFlatData[float32](res[i]), tensors.MustCopyFlatData[float32](res[i+3])
				if !slices.Equal(a, b) {
					worst := 0.0
					for j := range a {
						worst = math.Max(worst, math.Abs(float64(a[j]-b[j])))
					}
					t.Errorf("%s: shift-dot patches differ from slice patches, max |difference| %g", name, worst)
				}
			}
		})
	}
}

// TestDepthwiseRoutes checks both depthwise routes against the native
// convolution, values and both gradients, whichever one ConvPatches takes at
// the size: banded row matrices (convBanded) and the patches multiplied in
// one DotGeneral batched over channels (convBatched).
func TestDepthwiseRoutes(t *testing.T) {
	for _, path := range []ConvPath{convBanded, convBatched} {
		for _, k := range []int{1, 3, 5, 7} {
			for _, stride := range []int{1, 2} {
				tc := convCase{6, 2, 9, 8, 6, k, stride, 6}
				t.Run(fmt.Sprintf("path%d_%s", path, tc), func(t *testing.T) { checkPathMatchesNative(t, tc, path) })
			}
		}
	}
}

// TestConvHandComputed checks one output of a 3x3 stride-1 convolution
// against the definition, including the zero border.
func TestConvHandComputed(t *testing.T) {
	b := goBackend(t)
	// x: 1 channel, 1 image, 3x3 = 1..9; w: 3x3 of ones except centre 2.
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 1, 3, 3)
	w := tensors.FromFlatDataAndDimensions([]float32{1, 1, 1, 1, 2, 1, 1, 1, 1}, 1, 1, 3, 3)
	y := graph.MustExecOnce(b, func(x, w *graph.Node) *graph.Node { return Conv2D(x, w, 1, 1, ConvPatches) }, x, w)
	got := tensors.MustCopyFlatData[float32](y)
	// Corner (0,0): 1+2+4+5 + 1 (centre counted twice) = 13. Centre: 45+5 = 50.
	want := []float32{13, 23, 19, 31, 50, 39, 31, 47, 37}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("y = %v, want %v", got, want)
		}
	}
}

// TestGroupedConvHandComputed checks a 2-group 3×3 convolution (2 input
// channels per group, 1 output each) against values computed by hand, on
// both paths: y[0] reads only channels 0, 1 and y[1] only channels 2, 3.
func TestGroupedConvHandComputed(t *testing.T) {
	ramp := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	var xv []float32
	xv = append(xv, ramp...)                   // channel 0: 1..9
	xv = append(xv, 1, 1, 1, 1, 1, 1, 1, 1, 1) // channel 1: ones
	xv = append(xv, ramp...)                   // channel 2: 1..9
	xv = append(xv, 2, 2, 2, 2, 2, 2, 2, 2, 2) // channel 3: twos
	ones, centre := []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, []float32{0, 0, 0, 0, 1, 0, 0, 0, 0}
	var wv []float32
	wv = append(append(wv, ones...), centre...) // y[0] = Σ3×3 x0 + x1 at centre
	wv = append(append(wv, centre...), ones...) // y[1] = x2 at centre + Σ3×3 x3
	x := tensors.FromFlatDataAndDimensions(xv, 4, 1, 3, 3)
	w := tensors.FromFlatDataAndDimensions(wv, 2, 2, 3, 3)
	// y[0] corner (0,0): 1+2+4+5 + 1 = 13; centre: 45 + 1 = 46.
	// y[1] corner (0,0): 1 + 4·2 = 9; centre: 5 + 9·2 = 23.
	want := []float32{13, 22, 17, 28, 46, 34, 25, 40, 29, 9, 14, 11, 16, 23, 18, 15, 20, 17}
	for _, path := range []ConvPath{ConvPatches, ConvNative} {
		b := goBackend(t)
		if path == ConvNative {
			b = nativeBackend(t)
		}
		y := graph.MustExecOnce(b, func(x, w *graph.Node) *graph.Node { return Conv2D(x, w, 1, 2, path) }, local(x), local(w))
		if got := tensors.MustCopyFlatData[float32](y); !slices.Equal(got, want) {
			t.Errorf("path %d: y = %v, want %v", path, got, want)
		}
	}
}

// TestAutoPathFromBackend checks that ConvAuto takes the path of the graph's
// backend: patches (no ConvGeneral node) on the Go backend, the native
// ConvGeneral on any other backend.
func TestAutoPathFromBackend(t *testing.T) {
	gob := enginetest.Renamed(goBackend(t), "go")
	other := enginetest.Renamed(goBackend(t), "xla")
	if got := AutoPath(gob); got != ConvPatches {
		t.Errorf("AutoPath(go) = %d, want ConvPatches", got)
	}
	if got := AutoPath(other); got != ConvNative {
		t.Errorf("AutoPath(xla) = %d, want ConvNative", got)
	}
	for _, c := range []struct {
		b          compute.Backend
		wantNative bool
	}{{gob, false}, {other, true}} {
		g := graph.NewGraph(c.b, "conv")
		x := graph.Parameter(g, "x", shapes.Make(dtypes.Float32, 4, 2, 6, 6))
		w := graph.Parameter(g, "w", shapes.Make(dtypes.Float32, 4, 4, 3, 3))
		Conv2D(x, w, 1, 1, ConvAuto)
		native := false
		for _, n := range g.Nodes() {
			if strings.Contains(n.String(), " ConvGeneral(") {
				native = true
			}
		}
		if native != c.wantNative {
			t.Errorf("backend %q: graph has a ConvGeneral node: %v, want %v", c.b.String(), native, c.wantNative)
		}
		g.Finalize()
	}
}

// TestNoInputGradientForData: a convolution whose input is data (a graph
// parameter, as a unit's cached input is in a weight iteration) gets no
// input-gradient convolution when only the kernel is differentiated; one
// when the input is too.
func TestNoInputGradientForData(t *testing.T) {
	for _, wrtX := range []bool{false, true} {
		before := inputGradsBuilt
		e := graph.MustNewExec(goBackend(t), func(x, w *graph.Node) *graph.Node {
			y := Conv2D(x, w, 1, 1, ConvPatches)
			loss := graph.ReduceAllSum(graph.Mul(y, y))
			if wrtX {
				return graph.Gradient(loss, x, w)[0]
			}
			return graph.Gradient(loss, w)[0]
		})
		r := rand.New(rand.NewPCG(1, 2))
		e.MustCall(randTensor(r, 4, 2, 6, 6), randTensor(r, 5, 4, 3, 3))
		e.Finalize()
		want := 0
		if wrtX {
			want = 1
		}
		if got := inputGradsBuilt - before; got != want {
			t.Errorf("gradient with respect to x: %v; input-gradient convolutions built %d, want %d", wrtX, got, want)
		}
	}
}

// TestFlatConvMatchesNative checks the flattened-shift route (values and both
// gradients) against the native convolution: 3×3, 5×5, 7×7 and non-square images.
func TestFlatConvMatchesNative(t *testing.T) {
	for _, tc := range []convCase{{3, 2, 7, 7, 4, 3, 1, 1}, {4, 3, 5, 9, 2, 3, 1, 1}, {2, 2, 8, 6, 3, 5, 1, 1}, {2, 1, 9, 9, 3, 7, 1, 1}} {
		t.Run(tc.String(), func(t *testing.T) { checkPathMatchesNative(t, tc, convFlatPath) })
	}
}

// TestPairedShiftedSlicesEqual: the slices read as float32 pairs are bit for
// bit those of shiftedSlices (3×3 and 5×5, several even widths), and canPair
// refuses odd widths.
func TestPairedShiftedSlicesEqual(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ C, N, H, W, k int }{{3, 2, 6, 8, 3}, {2, 3, 5, 10, 5}, {4, 1, 7, 2, 3}} {
		x := randTensor(r, c.C, c.N, c.H, c.W)
		e := graph.MustNewExec(goBackend(t), func(x *graph.Node) []*graph.Node {
			if !canPair(x, c.k) {
				t.Fatalf("canPair refuses %v", x.Shape())
			}
			a, _, _ := shiftedSlices(x, 1, c.k, c.k)
			b, _, _ := pairedShiftedSlices(x, c.k, c.k)
			return append(a, b...)
		})
		out := e.MustCall(local(x))
		n := len(out) / 2
		for i := range n {
			a, b := tensors.MustCopyFlatData[float32](out[i]), tensors.MustCopyFlatData[float32](out[n+i])
			for j := range a {
				if math.Float32bits(a[j]) != math.Float32bits(b[j]) {
					t.Fatalf("%+v slice %d element %d: %g, paired %g", c, i, j, a[j], b[j])
				}
			}
		}
		e.Finalize()
	}
	g := graph.NewGraph(goBackend(t), "odd")
	if canPair(graph.Zeros(g, shapes.Make(dtypes.Float32, 1, 1, 4, 7)), 3) {
		t.Error("canPair accepts width 7")
	}
	g.Finalize()
}
