package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
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
	for _, p := range []convBenchPath{{"patches", ConvPatches}, {"shiftdot", convShiftDot}, {"banded", convBanded}, {"batched", convBatched}, {"native", ConvNative}} {
		if (p.path == convBanded || p.path == convBatched) && (c.groups != c.C || c.O != c.C) {
			continue
		}
		if p.path == convShiftDot && (c.groups != 1 || c.k != 3 || c.stride != 1) {
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
