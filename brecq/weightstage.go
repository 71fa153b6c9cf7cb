package brecq

import (
	"fmt"
	"math"
	"time"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// reconstructWeights is the weight stage of one unit (BRECQ (Li et al., 2021)
// §3.2 at the unit's granularity; AdaRound (Nagel et al., 2020) at layer
// granularity): Adam on the AdaRound variables V of the unit's layers,
// minimising the reconstruction loss ‖ŷ − y‖² of the unit's output against
// the FP network's (Fisher-weighted with LossFisher), plus λ times the
// rounding regulariser with β annealed (BetaSchedule), the unit's input taken
// from the network with every earlier unit hard-rounded. Under QDrop the
// unit's activation step sizes are learned with V and activation quantization
// is dropped element-wise.
func (r *Quantizer) reconstructWeights(u *Unit, done map[string]bool, qs, fs *stream) error {
	o := r.opt
	qdrop := o.Method == MethodQDrop
	t0 := time.Now()
	// Input from the partly quantized network, target from the FP network.
	xin, _, err := r.capture(r.prefixMode(done), u, false, qs, nil, true, false)
	if err != nil {
		return err
	}
	defer xin.close()
	xfp, yfp, err := r.capture(FPMode(), u, false, fs, nil, qdrop, true)
	if err != nil {
		return err
	}
	defer yfp.close()
	if xfp != nil {
		defer xfp.close()
	}
	var wts *cache
	rep := UnitReport{Unit: u.Name, Stage: "weights", Iters: o.WeightIters, CacheSeconds: time.Since(t0).Seconds()}
	if o.Loss == LossFisher {
		tf := time.Now()
		_, g2, err := r.capture(r.unitMode(done, u, RoundNearest), u, true, qs, fs, false, true)
		rep.FisherSeconds = time.Since(tf).Seconds()
		if err != nil {
			return err
		}
		defer g2.close()
		mean, err := g2.mean()
		if err != nil {
			return err
		}
		rep.FisherMean = mean
		if math.IsNaN(mean) {
			return errorf("unit %s: Fisher weights are NaN", u.Name)
		}
		err = g2.apply(func(v float32) float32 {
			switch {
			case o.FisherDamped:
				return float32(math.Pow(math.Sqrt(float64(v))+1, 2))
			case mean > 0:
				return float32((1 - o.FisherMix) + o.FisherMix*float64(v)/mean)
			default:
				return 1
			}
		})
		if err != nil {
			return err
		}
		wts = g2
	}
	for _, c := range []*cache{xin, yfp, wts, xfp} {
		if c != nil {
			rep.CacheMB += float64(c.bytes()) / 1e6
			rep.CacheOnDisk = rep.CacheOnDisk || c.onDisk()
		}
	}

	// The step graph: V of the unit's layers and, under QDrop, the step sizes
	// of the unit's quantized activation points, each group with its Adam
	// moments; then the minibatch and the iteration's scalars.
	var vKeys, sKeys []key
	skip := map[key]bool{}
	for _, l := range u.Layers {
		vKeys = append(vKeys, key{roundVT, l.Name})
	}
	if qdrop {
		for _, p := range u.ActPoints {
			if _, ok := r.Q.AQ[p]; ok && r.Q.ABits[p] < 32 {
				sKeys = append(sKeys, key{aScaleT, p})
			}
		}
	}
	for _, k := range append(append([]key{}, vKeys...), sKeys...) {
		skip[k] = true
	}
	f := r.Q.feed(skip)
	in := newStepInputs(f)
	groups := []*adamGroup{newAdamGroup(in, r.Q, vKeys, 0)}
	if len(sKeys) > 0 {
		groups = append(groups, newAdamGroup(in, r.Q, sKeys, MinScale))
	}
	xSlot, ySlot := in.one(), in.one()
	var wSlot, xfpSlot, rngSlot slot
	if wts != nil {
		wSlot = in.one()
	}
	if qdrop {
		xfpSlot, rngSlot = in.one(), in.one()
	}
	stepSlot, betaSlot, lamSlot := in.one(), in.one(), in.one()
	mode := r.unitMode(done, u, RoundSoft)
	if qdrop {
		mode.DropProb = o.DropProb
	}
	exec, err := graph.NewExec(r.backend, func(inputs []*graph.Node) []*graph.Node {
		nodes := f.nodes(inputs)
		for _, g := range groups {
			g.bind(inputs, nodes)
		}
		x, y := xSlot.node(inputs), ySlot.node(inputs)
		var w *graph.Node
		if wts != nil {
			w = wSlot.node(inputs)
		}
		ops := &qOps{q: r.Q, n: nodes, mode: mode}
		if qdrop {
			// The unit's input: quantized where the draw keeps it, FP elsewhere.
			ops.rng = rngSlot.node(inputs)
			x = ops.drop(x, xfpSlot.node(inputs))
		}
		yhat := u.forward(ops, x)
		rec := LpLoss(yhat, y, w, 2, u.channelAxis())
		var reg *graph.Node
		for _, v := range groups[0].p.nodes(inputs) {
			t := RoundingRegularizer(v, betaSlot.node(inputs))
			if reg == nil {
				reg = t
			} else {
				reg = graph.Add(reg, t)
			}
		}
		total := graph.Add(rec, graph.Mul(lamSlot.node(inputs), reg))
		out := append(adamSteps(inputs, total, stepSlot.node(inputs), groups...), rec, reg)
		if qdrop {
			out = append(out, ops.rng)
		}
		return out
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	var rng *tensors.Tensor
	if qdrop {
		if rng, err = graph.RNGStateFromSeed(int64(r.rng.Uint64() >> 1)); err != nil {
			return err
		}
	}
	sched := BetaSchedule{Iters: o.WeightIters, Warmup: o.WarmUp, Start: o.BetaStart, End: o.BetaEnd}
	args := in.args()
	groups[0].lr.set(args, float32(o.WeightLR))
	if len(groups) > 1 {
		groups[1].lr.set(args, float32(o.QDropActLR))
	}
	if err := r.recordCacheLoss(&rep, &rep.LossBefore, u, r.unitMode(done, u, RoundNearest), xin, yfp, 2); err != nil {
		return err
	}
	idx := make([]int, o.Batch)
	lam, lastReg := 0.0, 0.0
	nv := 0 // rounding variables of the unit
	for _, k := range vKeys {
		nv += r.Q.tensor(k).Shape().Size()
	}
	err = r.adamLoop(exec, args, groups, o.WeightIters, xin.n, idx, &rep,
		func(it int, args []any) error {
			lam = 0
			if sched.RegActive(it) {
				lam = o.Lambda
			}
			if err := fillXY(args, idx, xin, yfp, xSlot, ySlot); err != nil {
				return err
			}
			if wts != nil {
				wb, err := wts.batch(idx)
				if err != nil {
					return err
				}
				wSlot.set(args, wb)
			}
			if qdrop {
				xfb, err := xfp.batch(idx)
				if err != nil {
					return err
				}
				xfpSlot.set(args, xfb)
				rngSlot.set(args, rng)
			}
			stepSlot.set(args, float32(it+1))
			betaSlot.set(args, float32(sched.Beta(it)))
			lamSlot.set(args, float32(lam))
			return nil
		},
		func(it int, out []*tensors.Tensor, st *IterStats) string {
			rec := float64(tensors.ToScalar[float32](out[0]))
			reg := float64(tensors.ToScalar[float32](out[1]))
			lastReg = reg
			if qdrop {
				rng = out[2]
			}
			rep.RoundLoss = reg * lam
			st.Rec = rec
			if o.OnIter != nil {
				st.Round, st.Lambda, st.Beta = reg/float64(nv), lam, sched.Beta(it)
				st.Decided = decided(hostVs(groups[0])...)
			}
			return fmt.Sprintf("rec %.4g round %.4g β %.1f", rec, reg*lam, sched.Beta(it))
		})
	if err != nil {
		return err
	}
	var vs [][]float32
	for _, k := range vKeys {
		vs = append(vs, tensors.MustCopyFlatData[float32](r.Q.tensor(k)))
	}
	if o.WeightIters > 0 && nv > 0 {
		rep.HDecided, rep.RoundPerWeight = ptr(decided(vs...)), ptr(lastReg/float64(nv))
	}
	if err := r.recordCacheLoss(&rep, &rep.LossAfter, u, r.unitMode(done, u, RoundHard), xin, yfp, 2); err != nil {
		return err
	}
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}
