package brecq

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestDropKeepsQuantizedWithProbability: under QDrop every element is either
// its quantized or its FP value, and the fraction quantized is DropProb
// within sampling error (binomial, 5 standard deviations).
func TestDropKeepsQuantizedWithProbability(t *testing.T) {
	b := testBackend(t)
	const n = 20000
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%97)*0.013 + 0.0031 // no value sits on the grid
	}
	aq := QParams{Bits: 2, Scale: []float32{0.25}, ZeroPoint: []float32{0}}
	q := &QNet{AQ: map[string]QParams{"p": aq}, ABits: map[string]int{"p": 2}}
	for _, p := range []float64{0.5, 0.2} {
		rng, err := graph.RNGStateFromSeed(11)
		if err != nil {
			t.Fatal(err)
		}
		exec := graph.MustNewExec(b, func(xn, s, z, st *graph.Node) []*graph.Node {
			ops := &qOps{q: q, n: map[key]*graph.Node{{aScaleT, "p"}: s, {aZeroT, "p"}: z}, rng: st,
				mode: Mode{Acts: map[string]bool{"p": true}, DropProb: p}}
			return []*graph.Node{ops.Act("p", xn), ops.rng}
		})
		res := exec.MustCall(tensors.FromFlatDataAndDimensions(x, n), float32(0.25), float32(0), rng)
		got := tensors.MustCopyFlatData[float32](res[0])
		exec.Finalize()
		quant := 0
		wantQ := FakeQuantHost(x, aq)
		for i, v := range got {
			want := wantQ[i]
			switch {
			case v == want:
				quant++
			case v != x[i]:
				t.Fatalf("p=%g element %d: %g is neither FP %g nor quantized %g", p, i, v, x[i], want)
			}
		}
		frac := float64(quant) / n
		sd := math.Sqrt(p * (1 - p) / n)
		if math.Abs(frac-p) > 5*sd {
			t.Errorf("p=%g: fraction quantized %.4f, want %.4f ± %.4f", p, frac, p, 5*sd)
		}
	}
}

// TestQDropRunsAndIsDeterministic: QDrop quantizes end to end, learns the
// step sizes of the reconstructed blocks' activation points (they move from
// their L_p initialisation), ends closer to FP than nearest rounding, and
// the same seed gives the same rounding and step sizes.
func TestQDropRunsAndIsDeterministic(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 64)
	run := func() *Quantizer {
		opt := DefaultOptions(2, 4)
		opt.Method, opt.WeightIters, opt.Batch = MethodQDrop, 120, 16
		opt.QDropActLR = 1e-2 // a short budget; the paper's 4e-5 barely moves in 120 steps
		return runQuantizer(t, b, net, p, x, opt)
	}
	q1, q2 := run(), run()
	for name, v := range q1.Q.V {
		if maxRelDiff(v, q2.Q.V[name]) != 0 {
			t.Errorf("layer %s: V differs between two runs with the same seed", name)
		}
	}
	for pt, a := range q1.Q.AQ {
		if a.Scale[0] != q2.Q.AQ[pt].Scale[0] {
			t.Errorf("point %s: step size %g vs %g with the same seed", pt, a.Scale[0], q2.Q.AQ[pt].Scale[0])
		}
	}
	// Step sizes moved away from the range search's: compare with a run
	// that only initialises them.
	nopt := q1.Options()
	nopt.Method = MethodNearest
	nq := runQuantizer(t, b, net, p, x, nopt)
	moved := 0
	for _, pt := range ActPoints(net)[1:] { // the stem output is not in any unit
		if q1.Q.AQ[pt].Scale[0] != nq.Q.AQ[pt].Scale[0] {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no activation step size was learned during QDrop's weight stage")
	}
	fp := logitsOf(t, q1, FPMode(), x)
	got, near := mse(logitsOf(t, q1, q1.EvalMode(), x), fp), mse(logitsOf(t, nq, nq.EvalMode(), x), fp)
	t.Logf("QDrop W2A4: logit MSE to FP %.4g (nearest %.4g)", got, near)
	if !(got < near) {
		t.Errorf("QDrop (%g) not closer to FP than nearest rounding (%g)", got, near)
	}
}

// TestStemAndClassifierInputBits: at W2A2 the stem output and the
// classifier input are quantized at 8 bits by default and at the
// activation bits when switched off (0).
func TestStemAndClassifierInputBits(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 8)
	for _, tc := range []struct{ stem, cls, wantStem, wantCls int }{{8, 8, 8, 8}, {0, 0, 2, 2}, {4, 0, 4, 2}} {
		opt := DefaultOptions(2, 2)
		opt.StemOutputBits, opt.ClassifierInputBits = tc.stem, tc.cls
		q, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		pts := ActPoints(net)
		stem, last := pts[0], net.Blocks[net.LastBodyBlock()].Name
		if q.Q.ABits[stem] != tc.wantStem || q.Q.ABits[last] != tc.wantCls {
			t.Errorf("stem %d, classifier input %d: got %d and %d bits", tc.stem, tc.cls, q.Q.ABits[stem], q.Q.ABits[last])
		}
		for _, pt := range pts[1 : len(pts)-1] {
			if q.Q.ABits[pt] != 2 {
				t.Errorf("point %s at %d bits, want 2", pt, q.Q.ABits[pt])
			}
		}
	}
}
