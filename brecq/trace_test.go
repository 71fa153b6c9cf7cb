package brecq

import (
	"math"
	"testing"
)

// TestOnIterTrace: Options.OnIter is called once per iteration of every unit
// and stage, in order, with the values the run reports (first and last
// minibatch loss, rounding penalty per weight and h decided at the end, β and
// λ of the schedule); its first rounding penalty equals the regulariser
// (1/n) Σ (1 − |2h(V) − 1|^β) computed on the host in float64 from the
// initial V at β = 20; and the run is value-identical to one without it
// (same V, same step sizes, same reported losses).
func TestOnIterTrace(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 64)
	opt := DefaultOptions(2, 4)
	opt.WeightIters, opt.ActIters, opt.Batch = 30, 10, 16
	plain := runQuantizer(t, b, net, p, x, opt)

	var trace []IterStats
	opt.OnIter = func(s IterStats) { trace = append(trace, s) }
	q, err := NewQuantizer(b, net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	units, err := Units(net, Block)
	if err != nil {
		t.Fatal(err)
	}
	var v0 [][]float32 // initial V of the first block
	for _, l := range units[0].Layers {
		v0 = append(v0, append([]float32(nil), q.Q.V[l.Name]...))
	}
	if err := q.Run(); err != nil {
		t.Fatal(err)
	}

	for name, v := range plain.Q.V {
		for i, w := range q.Q.V[name] {
			if w != v[i] {
				t.Fatalf("OnIter changed V of %s at %d: %g vs %g", name, i, w, v[i])
			}
		}
	}
	for pt, a := range plain.Q.AQ {
		if c := q.Q.AQ[pt]; c.Scale[0] != a.Scale[0] {
			t.Fatalf("OnIter changed the step size of %s: %g vs %g", pt, c.Scale[0], a.Scale[0])
		}
	}

	sched := BetaSchedule{Iters: opt.WeightIters, Warmup: opt.WarmUp, Start: opt.BetaStart, End: opt.BetaEnd}
	at := 0
	for ui, rep := range q.Report.Units {
		if pr := plain.Report.Units[ui]; pr.RecLoss0 != rep.RecLoss0 || pr.RecLoss != rep.RecLoss || pr.RoundLoss != rep.RoundLoss {
			t.Fatalf("unit %s %s: reported losses differ with OnIter: %+v vs %+v", rep.Unit, rep.Stage, rep, pr)
		}
		if at+rep.Iters > len(trace) {
			t.Fatalf("trace has %d iterations, the report needs more at unit %s %s", len(trace), rep.Unit, rep.Stage)
		}
		tr := trace[at : at+rep.Iters]
		at += rep.Iters
		for it, s := range tr {
			if s.Unit != rep.Unit || s.Stage != rep.Stage || s.Iter != it || s.Iters != rep.Iters {
				t.Fatalf("unit %s %s iteration %d: traced as %s %s %d of %d", rep.Unit, rep.Stage, it, s.Unit, s.Stage, s.Iter, s.Iters)
			}
			if !(s.Rec > 0) || math.IsInf(s.Rec, 0) {
				t.Fatalf("unit %s %s iteration %d: loss %g", rep.Unit, rep.Stage, it, s.Rec)
			}
			if rep.Stage == "weights" {
				wantLam := 0.0
				if float64(it) >= opt.WarmUp*float64(opt.WeightIters) {
					wantLam = opt.Lambda
				}
				if s.Lambda != wantLam || s.Beta != sched.Beta(it) || s.Round < 0 || s.Round > 1 || s.Decided < 0 || s.Decided > 1 {
					t.Fatalf("unit %s iteration %d: λ %g β %g round %g decided %g; want λ %g β %g, both fractions in [0, 1]",
						rep.Unit, it, s.Lambda, s.Beta, s.Round, s.Decided, wantLam, sched.Beta(it))
				}
			} else if s.Round != 0 || s.Lambda != 0 || s.Beta != 0 || s.Decided != 0 {
				t.Fatalf("unit %s activations iteration %d: rounding fields set: %+v", rep.Unit, it, s)
			}
		}
		first, last := tr[0], tr[len(tr)-1]
		if first.Rec != rep.RecLoss0 || last.Rec != rep.RecLoss {
			t.Fatalf("unit %s %s: traced loss %g → %g, reported %g → %g", rep.Unit, rep.Stage, first.Rec, last.Rec, rep.RecLoss0, rep.RecLoss)
		}
		if rep.Stage == "weights" && (last.Round != *rep.RoundPerWeight || last.Decided != *rep.HDecided) {
			t.Fatalf("unit %s: last traced round %g decided %g, reported %g and %g", rep.Unit, last.Round, last.Decided, *rep.RoundPerWeight, *rep.HDecided)
		}
	}
	if at != len(trace) {
		t.Fatalf("trace has %d iterations, the report %d", len(trace), at)
	}

	// The first iteration's penalty from the initial V, on the host.
	if trace[0].Unit != units[0].Name || trace[0].Stage != "weights" {
		t.Fatalf("first traced iteration is %s %s, want %s weights", trace[0].Unit, trace[0].Stage, units[0].Name)
	}
	sum, n := 0.0, 0
	for _, v := range v0 {
		for _, x := range v {
			h := math.Min(1, math.Max(0, (AdaRoundZeta-AdaRoundGamma)/(1+math.Exp(-float64(x)))+AdaRoundGamma))
			sum += 1 - math.Pow(math.Abs(2*h-1), opt.BetaStart)
			n++
		}
	}
	if want := sum / float64(n); math.Abs(trace[0].Round-want) > 1e-4*want {
		t.Fatalf("first rounding penalty per weight %g, host %g", trace[0].Round, want)
	}
}
