package brecq

import (
	"slices"
	"testing"
)

// TestResumeIsBitIdentical: a run resumed from the state saved after any
// finished unit (weight stage, activation stage, QDrop's initialisation)
// ends with exactly the values of the uninterrupted run — rounding
// variables, weight and activation quantizers — and the same unit reports
// up to timing.
func TestResumeIsBitIdentical(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 32)
	for _, method := range []Method{MethodBRECQ, MethodQDrop} {
		opt := DefaultOptions(2, 4)
		opt.Method, opt.WeightIters, opt.ActIters, opt.Batch = method, 6, 4, 8
		if method == MethodQDrop {
			opt.DropProb = 0.5
		}
		full, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		var states []*RunState
		full.OnUnit = func(s *RunState) error { states = append(states, s); return nil }
		if err := full.Run(); err != nil {
			t.Fatal(err)
		}
		if len(states) < 4 {
			t.Fatalf("%s: %d states saved, want one per unit", method, len(states))
		}
		// Resume from an early weight unit, a late one and (BRECQ) the middle of the activation stage.
		for _, k := range []int{0, len(states) / 2, len(states) - 2} {
			s := states[k]
			q, err := NewQuantizer(b, net, p, x, opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Resume(s); err != nil {
				t.Fatal(err)
			}
			if err := q.Run(); err != nil {
				t.Fatal(err)
			}
			for name, v := range full.Q.V {
				if !slices.Equal(v, q.Q.V[name]) {
					t.Errorf("%s resumed after state %d (weights %d, act %d): V of %s differs", method, k, s.WeightUnits, s.ActSteps, name)
				}
			}
			for name, a := range full.Q.AQ {
				if got := q.Q.AQ[name]; !slices.Equal(a.Scale, got.Scale) || !slices.Equal(a.ZeroPoint, got.ZeroPoint) {
					t.Errorf("%s resumed after state %d: activation quantizer of %s %v, want %v", method, k, name, got, a)
				}
			}
			if len(q.Report.Units) != len(full.Report.Units) {
				t.Errorf("%s resumed after state %d: %d unit reports, want %d", method, k, len(q.Report.Units), len(full.Report.Units))
			}
			for i := range min(len(q.Report.Units), len(full.Report.Units)) {
				if a, b := q.Report.Units[i], full.Report.Units[i]; a.Unit != b.Unit || a.RecLoss != b.RecLoss || a.RoundLoss != b.RoundLoss {
					t.Errorf("%s resumed after state %d: unit report %d %s %g/%g, want %s %g/%g", method, k, i, a.Unit, a.RecLoss, a.RoundLoss, b.Unit, b.RecLoss, b.RoundLoss)
				}
			}
		}
	}
}

// TestResumeRefusesAnotherNetwork: a state whose layers or bit-widths do
// not fit the Quantizer is refused with the tensor named.
func TestResumeRefusesAnotherNetwork(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 8)
	opt := DefaultOptions(2, 4)
	opt.WeightIters, opt.ActIters, opt.Batch = 1, 1, 4
	q, err := NewQuantizer(b, net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := q.state()
	if err != nil {
		t.Fatal(err)
	}
	opt3 := opt
	opt3.WBits = 3
	q3, err := NewQuantizer(b, net, p, x, opt3)
	if err != nil {
		t.Fatal(err)
	}
	if err := q3.Resume(s); err == nil {
		t.Error("a W2 state resumed into a W3 run")
	}
	s.V["nope"] = []float32{1}
	if err := q.Resume(s); err == nil || !contains(err.Error(), `"nope"`) {
		t.Errorf("foreign layer: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}
