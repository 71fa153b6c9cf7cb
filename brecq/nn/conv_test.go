package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
)

func goBackend(t testing.TB) compute.Backend {
	return enginetest.Backend(t)
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

func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// TestConvPatchesMatchesNative checks values and gradients (w.r.t. input and
// kernel) of the patches path against the backend's own convolution.
func TestConvPatchesMatchesNative(t *testing.T) {
	b := goBackend(t)
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
	for _, tc := range cases {
		t.Run(fmt.Sprintf("C%d_H%d_O%d_k%d_s%d_g%d", tc.C, tc.H, tc.O, tc.k, tc.stride, tc.groups), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(tc.C*100+tc.k*10+tc.stride)))
			x := randTensor(r, tc.C, tc.N, tc.H, tc.H)
			w := randTensor(r, tc.O, tc.C/tc.groups, tc.k, tc.k)
			ho := ConvOutSize(tc.H, tc.k, tc.stride)
			cot := randTensor(r, tc.O, tc.N, ho, ho)
			run := func(path ConvPath) []*tensors.Tensor {
				e := graph.MustNewExec(b, func(in []*graph.Node) []*graph.Node {
					y := Conv2D(in[0], in[1], tc.stride, tc.groups, path)
					loss := graph.ReduceAllSum(graph.Mul(y, in[2]))
					grads := graph.Gradient(loss, in[0], in[1])
					return []*graph.Node{y, grads[0], grads[1]}
				})
				return e.MustExec(x, w, cot)
			}
			got, want := run(ConvPatches), run(ConvNative)
			for i, name := range []string{"y", "dx", "dw"} {
				g, wt := tensors.MustCopyFlatData[float32](got[i]), tensors.MustCopyFlatData[float32](want[i])
				if len(g) != len(wt) {
					t.Fatalf("%s: size %d, want %d", name, len(g), len(wt))
				}
				tol := 1e-5 * math.Max(1, maxAbs(wt))
				for j := range g {
					if math.Abs(float64(g[j]-wt[j])) > tol {
						t.Fatalf("%s[%d] = %g, native %g (tol %g)", name, j, g[j], wt[j], tol)
					}
				}
			}
		})
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

func BenchmarkConv3x3FwdBwd(b *testing.B) {
	be := goBackend(b)
	r := rand.New(rand.NewPCG(1, 2))
	x := randTensor(r, 16, 32, 28, 28)
	w := randTensor(r, 16, 16, 3, 3)
	for _, path := range []ConvPath{ConvPatches} {
		e := graph.MustNewExec(be, func(in []*graph.Node) []*graph.Node {
			y := Conv2D(in[0], in[1], 1, 1, path)
			loss := graph.ReduceAllSum(graph.Mul(y, y))
			grads := graph.Gradient(loss, in[0], in[1])
			return []*graph.Node{loss, grads[0], grads[1]}
		})
		e.MustExec(x, w)
		b.Run(fmt.Sprint("path", int(path)), func(b *testing.B) {
			for b.Loop() {
				e.MustExec(x, w)
			}
			flops := 3 * 2.0 * 16 * 16 * 9 * 32 * 28 * 28
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
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
