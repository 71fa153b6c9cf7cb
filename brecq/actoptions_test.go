package brecq

import (
	"math"
	"testing"
)

// TestNetworkInitEqualsUnitInitWithoutLSQ: without LSQ between units
// (nearest rounding), initialising every activation range in one pass over
// the network (the authors' order) sees exactly the values the unit-by-unit
// initialisation sees, so both give the same ranges.
func TestNetworkInitEqualsUnitInitWithoutLSQ(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 32)
	opt := DefaultOptions(2, 4)
	opt.Method, opt.ActInitImages = MethodNearest, 16
	unit := runQuantizer(t, b, net, p, x, opt)
	opt.ActInit = ActInitNetwork
	whole := runQuantizer(t, b, net, p, x, opt)
	if len(unit.Q.AQ) == 0 || len(unit.Q.AQ) != len(whole.Q.AQ) {
		t.Fatalf("%d vs %d activation quantizers", len(unit.Q.AQ), len(whole.Q.AQ))
	}
	for name, a := range unit.Q.AQ {
		w := whole.Q.AQ[name]
		if len(w.Scale) != 1 || math.Abs(float64(w.Scale[0]-a.Scale[0])) > 1e-6*math.Abs(float64(a.Scale[0])) || w.ZeroPoint[0] != a.ZeroPoint[0] {
			t.Errorf("%s: network init s=%v z=%v, unit init s=%v z=%v", name, w.Scale, w.ZeroPoint, a.Scale, a.ZeroPoint)
		}
	}
}

// TestAuthorsActivationStage: LSQ on FP inputs with the network-wide
// initialisation runs, is deterministic, and learns other step sizes than
// LSQ on the quantized network's inputs; bad option values are refused.
func TestAuthorsActivationStage(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 32)
	opt := DefaultOptions(2, 2)
	opt.WeightIters, opt.ActIters, opt.Batch = 4, 30, 8
	ours := runQuantizer(t, b, net, p, x, opt)
	aopt := opt.AuthorsActivationStage()
	if aopt.ActInput != ActInputFP || aopt.ActInit != ActInitNetwork || aopt.ActInitImages != 64 || aopt.ClassifierInputBits != 0 {
		t.Fatalf("AuthorsActivationStage gave %+v", aopt)
	}
	a1 := runQuantizer(t, b, net, p, x, aopt)
	a2 := runQuantizer(t, b, net, p, x, aopt)
	differ := 0
	for name, q := range a1.Q.AQ {
		if q.Scale[0] != a2.Q.AQ[name].Scale[0] {
			t.Errorf("%s: same seed, step sizes %v and %v", name, q.Scale, a2.Q.AQ[name].Scale)
		}
		if q.Scale[0] != ours.Q.AQ[name].Scale[0] {
			differ++
		}
	}
	if differ == 0 {
		t.Error("the authors' activation stage learned exactly our step sizes")
	}
	for _, bad := range []Options{{ActInput: "fpx"}, {ActInit: "global"}, {ActInitImages: -1}} {
		o := DefaultOptions(2, 4)
		o.ActInput, o.ActInit, o.ActInitImages = bad.ActInput, bad.ActInit, bad.ActInitImages
		if err := o.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", bad)
		}
	}
}
