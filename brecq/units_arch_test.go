package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
)

// TestUnitsCoverEveryArchitecture: at every granularity, the units of every
// architecture hold each weight layer but the stem's exactly once, and the
// activation-stage units own each declared activation point but the stem's
// exactly once; layer units read a layer with a point at that point.
func TestUnitsCoverEveryArchitecture(t *testing.T) {
	for _, arch := range models.Archs() {
		net, err := models.New(arch, 3, 32, 32, 10)
		if err != nil {
			t.Fatal(err)
		}
		stem := net.Blocks[0]
		for _, g := range []Granularity{Layer, Block, Stage, Net} {
			units, err := Units(net, g)
			if err != nil {
				t.Fatalf("%s %s: %v", arch, g, err)
			}
			seen := map[string]int{}
			for _, u := range units {
				for _, l := range u.Layers {
					seen[l.Name]++
				}
				if g == Layer && len(u.Layers) == 1 && u.Layers[0].Point && (u.outKind != outAct || u.outName != u.Layers[0].Name) {
					t.Errorf("%s layer unit %s: output not read at its activation point", arch, u.Name)
				}
			}
			for _, l := range net.Layers() {
				want := 1
				if l == stem.Layers[0] {
					want = 0
				}
				if seen[l.Name] != want {
					t.Errorf("%s %s: layer %s in %d units, want %d", arch, g, l.Name, seen[l.Name], want)
				}
			}
			aunits, err := ActUnits(net, g)
			if err != nil {
				t.Fatal(err)
			}
			pts := map[string]int{}
			for _, u := range aunits {
				for _, p := range u.ActPoints {
					pts[p]++
				}
			}
			for _, p := range ActPoints(net) {
				want := 1
				if p == stem.Name {
					want = 0
				}
				if pts[p] != want {
					t.Errorf("%s %s: activation point %s in %d units, want %d", arch, g, p, pts[p], want)
				}
			}
		}
	}
}

// TestQuantizeMobileNetV2 runs BRECQ block reconstruction at W8A8 (a few
// iterations) on a random MobileNetV2: every declared activation point gets
// a quantizer; the output of an inverted residual (linear projection, no
// ReLU) gets a grid with levels below zero; at 8 bits the quantized
// network's logits are finite, and its BN-folded FP network equals the
// BatchNorm one.
func TestQuantizeMobileNetV2(t *testing.T) {
	b := testBackend(t)
	net, err := models.New("mobilenetv2", 3, 32, 32, 10)
	if err != nil {
		t.Fatal(err)
	}
	p := fptrain.Init(net, 5)
	r := rand.New(rand.NewPCG(5, 6))
	for _, l := range net.Layers() {
		if l.BN == "" {
			continue
		}
		for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
			v := make([]float32, l.Out)
			for i := range v {
				switch s {
				case "weight", "running_var":
					v[i] = float32(0.5 + r.Float64())
				default:
					v[i] = float32(0.1 * r.NormFloat64())
				}
			}
			p[l.BN+"."+s] = tensors.FromFlatDataAndDimensions(v, l.Out)
		}
	}
	x := make([]float32, 8*3*32*32)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	calib := tensors.FromFlatDataAndDimensions(x, 8, 3, 32, 32)
	opt := DefaultOptions(8, 8)
	opt.WeightIters, opt.ActIters, opt.Batch = 2, 2, 4
	q, err := NewQuantizer(b, net, p, calib, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Run(); err != nil {
		t.Fatal(err)
	}
	for _, pt := range ActPoints(net) {
		if _, ok := q.Q.AQ[pt]; !ok {
			t.Errorf("activation point %s has no quantizer", pt)
		}
	}
	for _, blk := range net.Blocks {
		if blk.Kind == models.InvertedResidual {
			if z := q.Q.AQ[blk.Name].ZeroPoint[0]; !(z > 0) {
				t.Errorf("inverted residual %s: zero point %g, want > 0 (signed output)", blk.Name, z)
			}
		}
	}
	eval := func(m Mode) []float32 {
		f, done := q.Evaluator(m)
		defer done()
		y, err := f(calib)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](y)
	}
	// The BN-folded FP network of the quantizer equals the BatchNorm network.
	ev, err := fptrain.NewEvaluator(b, net, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ev.Logits(calib)
	if err != nil {
		t.Fatal(err)
	}
	fp := eval(FPMode())
	if d := maxRelDiff(fp, tensors.MustCopyFlatData[float32](want)); d > 1e-5 {
		t.Errorf("folded FP logits differ from the BatchNorm network's by %.3g (relative)", d)
	}
	qv := eval(q.EvalMode())
	d := maxRelDiff(qv, fp)
	// A random MobileNetV2 (BatchNorm statistics not those of its activations)
	// is very sensitive: 8-bit weights alone move its logits by ~10 %.
	t.Logf("W8A8 logits vs FP: max relative difference %.4f", d)
	if math.IsNaN(d) || math.IsInf(d, 0) {
		t.Errorf("W8A8 logits not finite")
	}
}
