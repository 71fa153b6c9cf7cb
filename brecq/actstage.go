package brecq

import (
	"fmt"
	"math"
	"time"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/internal/progress"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// activationStage initialises activation ranges point by point (L_p search
// with everything upstream quantized, weights rounded by w) and, when learn
// is set, learns the step sizes with LSQ unit by unit.
func (r *Quantizer) activationStage(w RoundingMode, learn bool) error {
	o := r.Opt
	net := r.Q.Net
	on := map[string]bool{}
	// The stem output: range from the calibration images.
	stem := net.Blocks[0].Name
	if err := r.initActPoints(&Unit{Name: stem, ActPoints: []string{stem}, InLayer: stem, first: 0, last: 0,
		forward: func(ops models.Ops, x *graph.Node) *graph.Node { return net.ForwardRange(ops, x, 0, 1) }}, nil, on, w, true); err != nil {
		return err
	}
	units, err := ActUnits(net, o.Granularity)
	if err != nil {
		return err
	}
	qs, err := r.imageStream()
	if err != nil {
		return err
	}
	fs := &stream{block: 0, x: qs.x}
	for _, u := range units {
		if len(u.ActPoints) == 0 {
			continue
		}
		t0 := time.Now()
		if err := r.advance(qs, u.first, r.actMode(on, w)); err != nil {
			return err
		}
		if err := r.advance(fs, u.first, FPMode()); err != nil {
			return err
		}
		xin, _, err := r.capture(r.actMode(on, w), u, false, qs, nil)
		if err != nil {
			return err
		}
		if err := r.initActPoints(u, xin, on, w, false); err != nil {
			return err
		}
		if !learn || o.ActIters == 0 {
			continue
		}
		_, yfp, err := r.capture(FPMode(), u, false, fs, nil)
		if err != nil {
			return err
		}
		if err := r.learnStepSizes(u, xin, yfp, on, w, t0); err != nil {
			return err
		}
	}
	return nil
}

// actCalibImages is how many cached inputs the activation range search uses.
const actCalibImages = 256

// initActPoints sets the range of each activation point of u in order, from
// the values reaching it with the points before it already quantized.
func (r *Quantizer) initActPoints(u *Unit, xin *cache, on map[string]bool, w RoundingMode, fromImages bool) error {
	for _, p := range u.ActPoints {
		bits := r.Q.ABits[p]
		if bits >= 32 {
			continue
		}
		f := r.Q.feed(nil)
		mode := r.actMode(on, w)
		exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
			var got *graph.Node
			ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
			ops.onAct = func(point string, x *graph.Node) *graph.Node {
				if point == p && got == nil {
					got = x
				}
				return nil
			}
			x := in[len(f.names)]
			if fromImages {
				x = models.ToCNHW(x)
			}
			u.forward(ops, x)
			return []*graph.Node{got}
		})
		if err != nil {
			return err
		}
		var x *tensors.Tensor
		if fromImages {
			x = sliceImages(r.calib, 0, min(actCalibImages, r.calib.Shape().Dimensions[0]))
		} else {
			idx := make([]int, min(actCalibImages, xin.n))
			for i := range idx {
				idx[i] = i
			}
			x = xin.batch(idx)
		}
		res, err := exec.Exec(f.args(x)...)
		exec.Finalize()
		if err != nil {
			return fmt.Errorf("activation range of %s: %w", p, err)
		}
		aq, err := SearchActivationQParams(tensors.MustCopyFlatData[float32](res[0]), bits)
		if err != nil {
			return fmt.Errorf("activation range of %s: %w", p, err)
		}
		r.Q.AQ[p] = aq
		on[p] = true
	}
	return nil
}

// learnStepSizes is the LSQ stage of one unit: Adam (cosine learning rate
// to 0) on the step sizes of the unit's activation points, loss ‖ŷ − y‖_p^p
// with p = ActP against the FP output, weights final.
func (r *Quantizer) learnStepSizes(u *Unit, xin, yfp *cache, on map[string]bool, w RoundingMode, t0 time.Time) error {
	o := r.Opt
	cacheSec := time.Since(t0).Seconds()
	var names []string
	skip := map[string]bool{}
	for _, p := range u.ActPoints {
		if r.Q.ABits[p] < 32 {
			names = append(names, "as:"+p)
			skip["as:"+p] = true
		}
	}
	k := len(names)
	f := r.Q.feed(skip)
	mode := r.actMode(on, w)
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		nodes := f.nodes(in)
		rest := in[len(f.names):]
		ss, ms, vs := rest[:k], rest[k:2*k], rest[2*k:3*k]
		for i, n := range names {
			nodes[n] = ss[i]
		}
		x, y, lr, step := rest[3*k], rest[3*k+1], rest[3*k+2], rest[3*k+3]
		yhat := u.forward(&qOps{q: r.Q, n: nodes, mode: mode}, x)
		loss := recLoss(yhat, y, nil, o.ActP, u.channelAxis())
		grads := graph.Gradient(loss, ss...)
		ns, nm, nv := AdamUpdateAll(ss, grads, ms, vs, lr, step, DefaultAdamConfig())
		for i := range ns {
			ns[i] = graph.MaxScalar(ns[i], MinScale)
		}
		out := append(append(append([]*graph.Node{}, ns...), nm...), nv...)
		return append(out, loss)
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	state := make([]*tensors.Tensor, 3*k)
	for i, n := range names {
		state[i] = tensors.FromScalar(r.Q.AQ[n[3:]].Scale[0])
		state[k+i] = tensors.FromScalar(float32(0))
		state[2*k+i] = tensors.FromScalar(float32(0))
	}
	rep := UnitReport{Unit: u.Name, Stage: "activations", Iters: o.ActIters, CacheMB: float64(xin.bytes()+yfp.bytes()) / 1e6,
		CacheSeconds: cacheSec}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, fmt.Sprintf("A %-16s", u.Name), o.ActIters)
	}
	idx := make([]int, o.Batch)
	times := make(iterTimes, 0, o.ActIters)
	for it := 0; it < o.ActIters; it++ {
		ti := time.Now()
		for j := range idx {
			idx[j] = r.rng.IntN(xin.n)
		}
		args := f.args()
		for _, s := range state {
			args = append(args, s)
		}
		args = append(args, xin.batch(idx), yfp.batch(idx), float32(CosineLR(o.ActLR, it, o.ActIters)), float32(it+1))
		res, err := exec.Exec(args...)
		if err != nil {
			return fmt.Errorf("unit %s activation iteration %d: %w", u.Name, it, err)
		}
		copy(state, res[:3*k])
		loss := float64(tensors.ToScalar[float32](res[3*k]))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("unit %s activation iteration %d: loss is %v", u.Name, it, loss)
		}
		if it == 0 {
			rep.RecLoss0 = loss
		}
		rep.RecLoss = loss
		times = append(times, float64(time.Since(ti).Microseconds())/1e3)
		if bar != nil {
			bar.Update(it+1, fmt.Sprintf("lp %.4g", loss))
		}
	}
	for i, n := range names {
		aq := r.Q.AQ[n[3:]]
		aq.Scale = []float32{tensors.ToScalar[float32](state[i])}
		r.Q.AQ[n[3:]] = aq
	}
	times.record(&rep)
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}
