package brecq

import (
	"fmt"
	"math"
	"time"

	"github.com/brecq-go/brecq/internal/progress"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func (r *Quantizer) reconstructWeights(u *Unit, done map[string]bool, qs, fs *stream) error {
	o := r.Opt
	qdrop := o.Method == MethodQDrop
	t0 := time.Now()
	// Input from the partly quantized network, target from the FP network.
	xin, _, err := r.capture(r.prefixMode(done), u, false, qs, nil)
	if err != nil {
		return err
	}
	xfp, yfp, err := r.capture(FPMode(), u, false, fs, nil)
	if err != nil {
		return err
	}
	if !qdrop {
		xfp = nil
	}
	var wts *cache
	rep := UnitReport{Unit: u.Name, Stage: "weights", Iters: o.WeightIters, CacheSeconds: time.Since(t0).Seconds()}
	if o.Loss == LossFisher {
		tf := time.Now()
		_, g2, err := r.capture(r.unitMode(done, u, RoundNearest), u, true, qs, fs)
		rep.FisherSeconds = time.Since(tf).Seconds()
		if err != nil {
			return err
		}
		mean := g2.mean()
		rep.FisherMean = mean
		if math.IsNaN(mean) {
			return fmt.Errorf("unit %s: Fisher weights are NaN", u.Name)
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
			if c != qs.x && c != fs.x {
				defer c.close()
			}
		}
	}

	// The step graph's trainables: V of the unit's layers and, under QDrop,
	// the step sizes of the unit's quantized activation points; each with its
	// Adam moments.
	var names, acts []string
	skip := map[string]bool{}
	for _, l := range u.Layers {
		names = append(names, "v:"+l.Name)
	}
	if qdrop {
		for _, p := range u.ActPoints {
			if _, ok := r.Q.AQ[p]; ok && r.Q.ABits[p] < 32 {
				acts = append(acts, "as:"+p)
			}
		}
	}
	for _, n := range append(append([]string{}, names...), acts...) {
		skip[n] = true
	}
	f := r.Q.feed(skip)
	k, ka := len(names), len(acts)
	mode := r.unitMode(done, u, RoundSoft)
	if qdrop {
		mode.DropProb = o.DropProb
	}
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		nodes := f.nodes(in)
		rest := in[len(f.names):]
		vs, ms, ss := rest[:k], rest[k:2*k], rest[2*k:3*k]
		rest = rest[3*k:]
		as, am, av := rest[:ka], rest[ka:2*ka], rest[2*ka:3*ka]
		rest = rest[3*ka:]
		for i, n := range names {
			nodes[n] = vs[i]
		}
		for i, n := range acts {
			nodes[n] = as[i]
		}
		x, y := rest[0], rest[1]
		rest = rest[2:]
		var w *graph.Node
		if wts != nil {
			w, rest = rest[0], rest[1:]
		}
		ops := &qOps{q: r.Q, n: nodes, mode: mode}
		if qdrop {
			// The unit's input: quantized where the draw keeps it, FP elsewhere.
			ops.rng = rest[1]
			x = ops.drop(x, rest[0])
			rest = rest[2:]
		}
		lr, step, beta, lam := rest[0], rest[1], rest[2], rest[3]
		yhat := u.forward(ops, x)
		rec := recLoss(yhat, y, w, 2, u.channelAxis())
		var reg *graph.Node
		for _, v := range vs {
			t := RoundingRegularizer(v, beta)
			if reg == nil {
				reg = t
			} else {
				reg = graph.Add(reg, t)
			}
		}
		total := graph.Add(rec, graph.Mul(lam, reg))
		grads := graph.Gradient(total, append(append([]*graph.Node{}, vs...), as...)...)
		nv, nm, ns := AdamUpdateAll(vs, grads[:k], ms, ss, lr, step, DefaultAdamConfig())
		out := append(append(append([]*graph.Node{}, nv...), nm...), ns...)
		if ka > 0 {
			na, nam, nav := AdamUpdateAll(as, grads[k:], am, av, rest[4], step, DefaultAdamConfig())
			for i := range na {
				na[i] = graph.MaxScalar(na[i], MinScale)
			}
			out = append(append(append(out, na...), nam...), nav...)
		}
		out = append(out, rec, reg)
		if qdrop {
			out = append(out, ops.rng)
		}
		return out
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	ns := 3*k + 3*ka
	state := make([]*tensors.Tensor, ns)
	for i, l := range u.Layers {
		shape := r.Q.FP[l.Name+".weight"].Shape()
		state[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), r.Q.V[l.Name]...), shape.Dimensions...)
		state[k+i] = tensors.FromShape(shape)
		state[2*k+i] = tensors.FromShape(shape)
	}
	for i, n := range acts {
		state[3*k+i] = tensors.FromScalar(r.Q.AQ[n[3:]].Scale[0])
		state[3*k+ka+i] = tensors.FromScalar(float32(0))
		state[3*k+2*ka+i] = tensors.FromScalar(float32(0))
	}
	var rng *tensors.Tensor
	if qdrop {
		if rng, err = graph.RNGStateFromSeed(int64(r.rng.Uint64() >> 1)); err != nil {
			return err
		}
	}
	sched := BetaSchedule{Iters: o.WeightIters, Warmup: o.WarmUp, Start: o.BetaStart, End: o.BetaEnd}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, fmt.Sprintf("W %-16s", u.Name), o.WeightIters)
	}
	idx := make([]int, o.Batch)
	times := make(iterTimes, 0, o.WeightIters)
	for it := 0; it < o.WeightIters; it++ {
		ti := time.Now()
		for j := range idx {
			idx[j] = r.rng.IntN(xin.n)
		}
		lam := 0.0
		if sched.RegActive(it) {
			lam = o.Lambda
		}
		args := make([]any, 0, len(f.vals)+ns+9)
		args = append(args, f.args()...)
		for _, s := range state {
			args = append(args, s)
		}
		args = append(args, xin.batch(idx), yfp.batch(idx))
		if wts != nil {
			args = append(args, wts.batch(idx))
		}
		if qdrop {
			args = append(args, xfp.batch(idx), rng)
		}
		args = append(args, float32(o.WeightLR), float32(it+1), float32(sched.Beta(it)), float32(lam))
		if ka > 0 {
			args = append(args, float32(o.QDropActLR))
		}
		res, err := exec.Exec(args...)
		if err != nil {
			return fmt.Errorf("unit %s iteration %d: %w", u.Name, it, err)
		}
		copy(state, res[:ns])
		rec := float64(tensors.ToScalar[float32](res[ns]))
		reg := float64(tensors.ToScalar[float32](res[ns+1]))
		if qdrop {
			rng = res[ns+2]
		}
		if math.IsNaN(rec) || math.IsInf(rec, 0) {
			return fmt.Errorf("unit %s iteration %d: reconstruction loss is %v", u.Name, it, rec)
		}
		if it == 0 {
			rep.RecLoss0 = rec
		}
		rep.RecLoss, rep.RoundLoss = rec, reg*lam
		times = append(times, float64(time.Since(ti).Microseconds())/1e3)
		if bar != nil {
			bar.Update(it+1, fmt.Sprintf("rec %.4g round %.4g β %.1f", rec, reg*lam, sched.Beta(it)))
		}
	}
	for i, l := range u.Layers {
		r.Q.V[l.Name] = tensors.MustCopyFlatData[float32](state[i])
	}
	for i, n := range acts {
		aq := r.Q.AQ[n[3:]]
		aq.Scale = []float32{tensors.ToScalar[float32](state[3*k+i])}
		r.Q.AQ[n[3:]] = aq
	}
	times.record(&rep)
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}
