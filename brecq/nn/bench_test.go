package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	benchmarks "github.com/janpfeifer/go-benchmarks"

	"github.com/brecq-go/brecq/internal/microbench"
)

type convBenchCase struct {
	name                          string
	C, N, H, O, k, stride, groups int
}

// convBenchCases are the convolutions timed by BenchmarkConvFwdBwd: the
// dense 3×3 shapes of ResNet-20's stages 1 and 3, MobileNetV2-style
// depthwise 3×3 at stride 1 and 2 (56×56, and 112×112 where the depthwise
// route changes, see bandedMaxOutWidth), and a RegNetX-style grouped 3×3
// (group width 16).
var convBenchCases = []convBenchCase{
	{"dense16_28x28", 16, 32, 28, 16, 3, 1, 1},
	{"dense64_7x7", 64, 32, 7, 64, 3, 1, 1},
	{"depthwise32_56x56_s1", 32, 32, 56, 32, 3, 1, 32},
	{"depthwise32_56x56_s2", 32, 32, 56, 32, 3, 2, 32},
	{"depthwise32_112x112_b8_s1", 32, 8, 112, 32, 3, 1, 32},
	{"depthwise96_112x112_b8_s2", 96, 8, 112, 96, 3, 2, 96},
	{"grouped48g3_28x28", 48, 32, 28, 48, 3, 1, 3},
}

// convBenchPaths are the paths timed for case c: "patches", and "shiftdot" (dense 3×3 stride 1
// only), "banded" and "batched" (the two depthwise routes of ConvPatches, forced; depthwise
// only), "native".
func convBenchPaths(c convBenchCase) []convBenchPath {
	var out []convBenchPath
	for _, p := range []convBenchPath{{"patches", ConvPatches}, {"shiftdot", convShiftDot}, {"flat", convFlatPath}, {"banded", convBanded}, {"batched", convBatched}, {"native", ConvNative}} {
		if (p.path == convBanded || p.path == convBatched) && (c.groups != c.C || c.O != c.C) {
			continue
		}
		if (p.path == convShiftDot || p.path == convFlatPath) && (c.groups != 1 || c.k != 3 || c.stride != 1) {
			continue
		}
		out = append(out, p)
	}
	return out
}

type convBenchPath struct {
	name string
	path ConvPath
}

// convFwdBwd compiles one forward and backward pass (y, dL/dx, dL/dw for L = Σ y²) of case c
// on path p, runs it once (compilation), and returns a function running it again and the
// executable's finaliser. The native path runs on nativeBackend (on the Go backend: ops one
// at a time, see there).
func convFwdBwd(tb testing.TB, c convBenchCase, p convBenchPath) (run func(), finalize func()) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randTensor(r, c.C, c.N, c.H, c.H)
	w := randTensor(r, c.O, c.C/c.groups, c.k, c.k)
	be := goBackend(tb)
	if p.path == ConvNative {
		be = nativeBackend(tb)
	}
	x, w = local(x), local(w)
	e := graph.MustNewExec(be, func(in []*graph.Node) []*graph.Node {
		y := Conv2D(in[0], in[1], c.stride, c.groups, p.path)
		loss := graph.ReduceAllSum(graph.Mul(y, y))
		grads := graph.Gradient(loss, in[0], in[1])
		return []*graph.Node{loss, grads[0], grads[1]}
	})
	e.MustCall(x, w)
	return func() { e.MustCall(x, w) }, e.Finalize
}

// BenchmarkConvFwdBwd times one forward and backward pass per case and path (see
// convBenchPaths, convFwdBwd); the metric ms/op is one such pass.
func BenchmarkConvFwdBwd(b *testing.B) {
	for _, c := range convBenchCases {
		for _, p := range convBenchPaths(c) {
			b.Run(fmt.Sprintf("%s/%s", c.name, p.name), func(b *testing.B) {
				run, finalize := convFwdBwd(b, c, p)
				defer finalize()
				for b.Loop() {
					run()
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/op")
			})
		}
	}
}

// TestBenchConvFwdBwd times the passes of BenchmarkConvFwdBwd with go-benchmarks (median and
// 10th/90th percentiles of one pass; one table, a case's paths compiled together):
//
//	go test -v -run TestBenchConvFwdBwd ./brecq/nn/ -bench_duration 2s
func TestBenchConvFwdBwd(t *testing.T) {
	microbench.Enabled(t)
	width := 0 // One table: names padded to the longest (go-benchmarks pads per call).
	for _, c := range convBenchCases {
		for _, p := range convBenchPaths(c) {
			width = max(width, len(c.name+"/"+p.name))
		}
	}
	for i, c := range convBenchCases {
		var fns []benchmarks.NamedFunction
		var finalizers []func()
		for _, p := range convBenchPaths(c) {
			run, finalize := convFwdBwd(t, c, p)
			finalizers = append(finalizers, finalize)
			fns = append(fns, microbench.Named(fmt.Sprintf("%-*s", width, c.name+"/"+p.name), run))
		}
		microbench.Run(t, i == 0, 1, fns...)
		for _, f := range finalizers {
			f()
		}
	}
}

// unitInputPatches sets up the two ways a unit's first 3×3 stride-1
// convolution can read its cached input in a weight iteration (forward and
// dL/dw for L = Σ y²; the input is data, so no dL/dx): "slices" draws a
// minibatch of N images from a host cache of 8·N images as [C, N, H, W] and
// builds the patches in the graph (ConvPatches), "precomputed" keeps every
// image's patches [9·C, H, W] on the host, computed once, and draws the
// minibatch as [9·C, N·H·W] for one matrix multiply. Each call draws the
// same fresh minibatch both ways; the returned check runs both once on the
// same draw and returns their largest difference in dL/dw.
func unitInputPatches(tb testing.TB, c convBenchCase) (slices, precomputed func(), check func() float64, finalize func()) {
	const pool = 8
	r := rand.New(rand.NewPCG(1, 2))
	C, N, H, O := c.C, c.N, c.H, c.O
	img := make([]float32, pool*N*C*H*H) // image-major: [n][c][i][j]
	for i := range img {
		img[i] = float32(r.NormFloat64())
	}
	// patch[n][(u,v,c)][i][j] = x̃[c, n, i+u, j+v] (zero outside the image).
	per := 9 * C * H * H
	patch := make([]float32, pool*N*per)
	for n := 0; n < pool*N; n++ {
		for u := 0; u < 3; u++ {
			for v := 0; v < 3; v++ {
				for ch := 0; ch < C; ch++ {
					row := ((u*3+v)*C + ch) * H * H
					for i := 0; i < H; i++ {
						for j := 0; j < H; j++ {
							si, sj := i+u-1, j+v-1
							if si >= 0 && si < H && sj >= 0 && sj < H {
								patch[n*per+row+i*H+j] = img[((n*C+ch)*H+si)*H+sj]
							}
						}
					}
				}
			}
		}
	}
	w := local(randTensor(r, O, C, 3, 3))
	be := goBackend(tb)
	eS := graph.MustNewExec(be, func(x, w *graph.Node) []*graph.Node {
		y := Conv2D(x, w, 1, 1, ConvPatches)
		return []*graph.Node{graph.Gradient(graph.ReduceAllSum(graph.Mul(y, y)), w)[0]}
	})
	eP := graph.MustNewExec(be, func(p, w *graph.Node) []*graph.Node {
		wm := graph.Reshape(graph.TransposeAllAxes(w, 0, 2, 3, 1), O, 9*C)
		y := graph.DotGeneral(wm, []int{1}, nil, p, []int{0}, nil)
		return []*graph.Node{graph.Gradient(graph.ReduceAllSum(graph.Mul(y, y)), w)[0]}
	})
	idx := make([]int, N)
	draw := func() {
		for k := range idx {
			idx[k] = r.IntN(pool * N)
		}
	}
	// gather copies, for each of rows channels-or-patch-rows of size hw, the
	// rows of the drawn images into a [rows, N, hw] tensor, as cache.batch does.
	gather := func(src []float32, rows int, dims ...int) *tensors.Tensor {
		hw := H * H
		out := make([]float32, rows*N*hw)
		for k, n := range idx {
			for ch := 0; ch < rows; ch++ {
				copy(out[(ch*N+k)*hw:(ch*N+k+1)*hw], src[(n*rows+ch)*hw:(n*rows+ch+1)*hw])
			}
		}
		return tensors.FromFlatDataAndDimensions(out, dims...)
	}
	runS := func() *tensors.Tensor { return eS.MustCall(gather(img, C, C, N, H, H), w)[0] }
	runP := func() *tensors.Tensor { return eP.MustCall(gather(patch, 9*C, 9*C, N*H*H), w)[0] }
	check = func() float64 {
		draw()
		a, b := tensors.MustCopyFlatData[float32](runS()), tensors.MustCopyFlatData[float32](runP())
		d := 0.0
		for i := range a {
			d = max(d, math.Abs(float64(a[i]-b[i]))/(1+math.Abs(float64(a[i]))))
		}
		return d
	}
	return func() { draw(); runS() }, func() { draw(); runP() }, check, func() { eS.Finalize(); eP.Finalize() }
}

// TestBenchUnitInputPatches times hypothesis 2 of the calibration-speed work:
// a unit's first 3×3 convolution reading patches computed once per image
// ("precomputed", 9× the cache memory) instead of building them from the
// cached input each iteration ("slices"), forward + dL/dw at batch 32 on the
// dense shapes of ResNet-20's stages 1 and 3 (see unitInputPatches):
//
//	go test -v -run TestBenchUnitInputPatches ./brecq/nn/ -bench_duration 5s
func TestBenchUnitInputPatches(t *testing.T) {
	microbench.Enabled(t)
	for i, c := range convBenchCases[:2] {
		s, p, check, finalize := unitInputPatches(t, c)
		if d := check(); d > 1e-4 {
			t.Fatalf("%s: precomputed patches give dL/dw differing by %g (relative)", c.name, d)
		}
		microbench.Run(t, i == 0, 1, microbench.Named(c.name+"/slices", s), microbench.Named(c.name+"/precomputed", p))
		finalize()
	}
}

// TestUnitInputPatchesAgree: the two forms TestBenchUnitInputPatches times
// give the same dL/dw on the same minibatch.
func TestUnitInputPatchesAgree(t *testing.T) {
	for _, c := range convBenchCases[:2] {
		_, _, check, finalize := unitInputPatches(t, c)
		if d := check(); d > 1e-4 {
			t.Errorf("%s: precomputed patches give dL/dw differing by %g (relative)", c.name, d)
		}
		finalize()
	}
}
