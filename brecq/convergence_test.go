package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestDecidedMatchesGraph: the host's count of h(V) at exactly 0 or 1 equals
// the one of RectifiedSigmoid evaluated by the backend, on V spread over the
// whole range where h saturates and where it does not.
func TestDecidedMatchesGraph(t *testing.T) {
	b := testBackend(t)
	r := rand.New(rand.NewPCG(5, 6))
	v := make([]float32, 4000)
	for i := range v {
		v[i] = float32(8 * r.NormFloat64())
	}
	v[0], v[1] = float32(math.Log(1.0/11)), float32(math.Log(11)) // σ = 1/12 and 11/12: h = 0 and 1 in exact arithmetic
	h := graph.MustExecOnce(b, RectifiedSigmoid, tensors.FromFlatDataAndDimensions(v, len(v)))
	d := 0
	for _, x := range tensors.MustCopyFlatData[float32](h) {
		if x == 0 || x == 1 {
			d++
		}
	}
	want := float64(d) / float64(len(v))
	if got := decided(v[:1000], v[1000:]); got != want {
		t.Fatalf("decided = %v, backend's h gives %v", got, want)
	}
	if want < 0.3 || want > 0.95 {
		t.Fatalf("test data should mix decided and undecided variables, got %v decided", want)
	}
}

// TestUnitLossesAreCacheLossesAndChangeNothing: with UnitLosses the run is
// identical (same V, same step sizes), and the first block's recorded
// weight-stage losses equal C × the mean squared output error measured
// independently at nearest and at hard rounding; 160 images make the cache
// pass use a short last chunk.
func TestUnitLossesAreCacheLossesAndChangeNothing(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 160)
	opt := DefaultOptions(2, 4)
	opt.WeightIters, opt.ActIters, opt.Batch = 60, 20, 16
	plain := runQuantizer(t, b, net, p, x, opt)
	opt.UnitLosses = true
	q := runQuantizer(t, b, net, p, x, opt)
	for name, v := range plain.Q.V {
		w := q.Q.V[name]
		for i := range v {
			if v[i] != w[i] {
				t.Fatalf("UnitLosses changed V of %s at %d: %g vs %g", name, i, v[i], w[i])
			}
		}
	}
	for pt, a := range plain.Q.AQ {
		if c := q.Q.AQ[pt]; c.Scale[0] != a.Scale[0] {
			t.Fatalf("UnitLosses changed the step size of %s: %g vs %g", pt, a.Scale[0], c.Scale[0])
		}
	}
	units, err := Units(net, Block)
	if err != nil {
		t.Fatal(err)
	}
	u := units[0]
	var wrep *UnitReport
	for i, rep := range q.Report.Units {
		if rep.LossBefore == nil || rep.LossAfter == nil || !(*rep.LossBefore > 0) || math.IsInf(*rep.LossAfter, 0) {
			t.Fatalf("unit %s %s: losses before/after not recorded: %+v", rep.Unit, rep.Stage, rep)
		}
		if rep.Stage == "weights" {
			if rep.HDecided == nil || *rep.HDecided < 0 || *rep.HDecided > 1 || rep.RoundPerWeight == nil || *rep.RoundPerWeight < 0 || *rep.RoundPerWeight > 1 {
				t.Fatalf("unit %s: h decided / rounding per weight out of [0, 1]: %+v", rep.Unit, rep)
			}
			if rep.Unit == u.Name {
				wrep = &q.Report.Units[i]
			}
		}
		if plain.Report.Units[i].LossBefore != nil {
			t.Fatalf("unit %s: losses recorded without UnitLosses", rep.Unit)
		}
	}
	if wrep == nil {
		t.Fatalf("no weight-stage report for %s", u.Name)
	}
	c := float64(u.Layers[len(u.Layers)-1].Out)
	// unitOutputError is the mean over every element; the loss sums the channels.
	near, hard := c*unitOutputError(t, q, u, RoundNearest), c*unitOutputError(t, q, u, RoundHard)
	t.Logf("%s: loss before %.6g (independent %.6g), after %.6g (independent %.6g), h decided %.3f",
		u.Name, *wrep.LossBefore, near, *wrep.LossAfter, hard, *wrep.HDecided)
	if math.Abs(*wrep.LossBefore-near) > 1e-4*near || math.Abs(*wrep.LossAfter-hard) > 1e-4*hard {
		t.Fatalf("%s: recorded losses %g → %g, independently %g → %g", u.Name, *wrep.LossBefore, *wrep.LossAfter, near, hard)
	}
}
