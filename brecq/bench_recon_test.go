package brecq

import (
	"math/rand/v2"
	"testing"

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
