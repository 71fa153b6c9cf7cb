package brecq

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
)

// BenchmarkBlockWeightIter times block weight reconstruction (W2A32, MSE,
// batch 32) on a ResNet-8 at 28×28 — one block per stage, the shapes of the
// shipped ResNet-20's first block of each stage — with random weights and 256
// random calibration images. Each op is a whole Run of 60 iterations per unit;
// the metrics are the median ms per iteration of the three blocks and of the
// classifier. Profile with
//
//	go test -run '^$' -bench BlockWeightIter -benchtime 1x -cpuprofile cpu.out ./brecq/
func BenchmarkBlockWeightIter(b *testing.B) {
	be := testBackend(b)
	net, err := models.CIFARResNet(8, 1, 1, 28, 28, 10)
	if err != nil {
		b.Fatal(err)
	}
	p := fptrain.Init(net, 1)
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 256*28*28)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	calib := tensors.FromFlatDataAndDimensions(x, 256, 1, 28, 28)
	opt := DefaultOptions(2, 32)
	opt.WeightIters = 60
	var blockMS, fcMS float64
	for b.Loop() {
		q, err := NewQuantizer(be, net, p, calib, opt)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Run(); err != nil {
			b.Fatal(err)
		}
		blockMS, fcMS = 0, 0
		nb := 0
		for _, u := range q.Report.Units {
			if u.Stage != "weights" {
				continue
			}
			if u.Unit == "fc" {
				fcMS = u.IterMS
				continue
			}
			blockMS += u.IterMS
			nb++
			b.Logf("%s: %.2f ms/iter (p10 %.2f, p90 %.2f)", u.Unit, u.IterMS, u.IterMSLo, u.IterMSHi)
		}
		blockMS /= float64(max(nb, 1))
	}
	b.ReportMetric(blockMS, "block-ms/iter")
	b.ReportMetric(fcMS, "fc-ms/iter")
}

// BenchmarkRoundingRegularizer times the rounding regulariser's value and gradient on the V of a
// stage-3 ResNet block (2×64×64×3×3 elements): RoundingRegularizer against the direct Pow form.
func BenchmarkRoundingRegularizer(b *testing.B) {
	for _, c := range []struct {
		name string
		fn   func(v, beta *graph.Node) *graph.Node
	}{{"exp-log", RoundingRegularizer}, {"pow", regularizerPow}} {
		b.Run(c.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			v := make([]float32, 2*64*64*9)
			for i := range v {
				v[i] = float32(2 * r.NormFloat64())
			}
			vt := tensors.FromFlatDataAndDimensions(v, 2*64, 64, 3, 3)
			exec := graph.MustNewExec(testBackend(b), func(in []*graph.Node) []*graph.Node {
				reg := c.fn(in[0], in[1])
				return []*graph.Node{reg, graph.Gradient(reg, in[0])[0]}
			})
			defer exec.Finalize()
			exec.MustCall(vt, float32(7.5))
			for b.Loop() {
				exec.MustCall(vt, float32(7.5))
			}
		})
	}
}

// BenchmarkStepCallOverhead times what a step-graph call costs besides the
// unit's arithmetic (issue: per-call overhead), on the shapes of
// BenchmarkBlockWeightIter's first block (ResNet-8, 28×28, batch 32):
//
//	feed              the whole QNet feed (every layer's weight, bias,
//	                  scales, zero points, V; every activation point's step
//	                  size and zero point) into a graph that reads one tiny input
//	minibatch-reused  input and target [16, 32, 28, 28] passed as the same
//	                  tensors every call, graph = ReduceAllSum(x − y)
//	minibatch-fresh   the same with new host tensors every call, as the
//	                  loop does with each drawn minibatch (cache.batch)
//
// Compare each ns/op with BenchmarkBlockWeightIter's block-ms/iter.
func BenchmarkStepCallOverhead(b *testing.B) {
	be := testBackend(b)
	net, err := models.CIFARResNet(8, 1, 1, 28, 28, 10)
	if err != nil {
		b.Fatal(err)
	}
	p := fptrain.Init(net, 1)
	calib := tensors.FromShape(shapes.Make(dtypes.Float32, 64, 1, 28, 28))
	q, err := NewQuantizer(be, net, p, calib, DefaultOptions(2, 4))
	if err != nil {
		b.Fatal(err)
	}
	for _, pt := range ActPoints(net) { // every point with a quantizer, as in the activation stage
		q.Q.AQ[pt] = QParams{Bits: 4, Scale: []float32{0.1}, ZeroPoint: []float32{0}}
	}
	for _, l := range net.Layers() {
		if wq, ok := q.Q.WQ[l.Name]; ok {
			q.Q.V[l.Name] = InitAdaRoundV(tensors.MustCopyFlatData[float32](q.Q.FP[l.Name+".weight"]), wq)
		}
	}
	f := q.Q.feed(nil)
	tiny := tensors.FromShape(shapes.Make(dtypes.Float32, 4))
	b.Run("feed", func(b *testing.B) {
		exec, err := graph.NewExec(be, func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{graph.ReduceAllSum(in[len(f.keys)])}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer exec.Finalize()
		b.ReportMetric(float64(len(f.keys)), "inputs")
		for b.Loop() {
			if _, err := exec.Call(f.args(tiny)...); err != nil {
				b.Fatal(err)
			}
		}
	})
	mb := shapes.Make(dtypes.Float32, 16, 32, 28, 28)
	for _, fresh := range []bool{false, true} {
		name := "minibatch-reused"
		if fresh {
			name = "minibatch-fresh"
		}
		b.Run(name, func(b *testing.B) {
			exec := graph.MustNewExec(be, func(x, y *graph.Node) *graph.Node { return graph.ReduceAllSum(graph.Sub(x, y)) })
			defer exec.Finalize()
			x, y := tensors.FromShape(mb), tensors.FromShape(mb)
			for b.Loop() {
				if fresh {
					x, y = tensors.FromShape(mb), tensors.FromShape(mb)
				}
				exec.MustCall(x, y)
			}
		})
	}
}
