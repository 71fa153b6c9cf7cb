package brecq

import (
	"fmt"
	"time"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/optim"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// activationStage initialises activation ranges point by point (L_p search
// with everything upstream quantized, weights rounded by w) and, when learn
// is set, learns the step sizes with LSQ unit by unit.
func (r *Quantizer) activationStage(w RoundingMode, learn, resumable bool) error {
	o := r.opt
	net := r.Q.Net
	on := map[string]bool{}
	// switchOn marks the points of a finished step as quantized.
	switchOn := func(points []string) {
		for _, p := range points {
			if r.Q.ABits[p] < 32 {
				on[p] = true
			}
		}
	}
	// step records a finished step (resumable runs only).
	step := func(k int) error {
		if !resumable {
			return nil
		}
		r.progress.ActSteps = k
		return r.checkpoint()
	}
	// The stem output — or, with ActInitNetwork, every point in network
	// order — gets its range from the calibration images.
	stem := net.Blocks[0].Name
	first := &Unit{Name: stem, ActPoints: []string{stem}, InLayer: stem, first: 0, last: 0,
		forward: func(ops models.Ops, x *graph.Node) *graph.Node { return net.ForwardRange(ops, x, 0, 1) }}
	networkInit := resumable && o.ActInit == ActInitNetwork
	if networkInit {
		last := net.LastBodyBlock()
		first = &Unit{Name: "network", ActPoints: ActPoints(net), InLayer: stem, first: 0, last: last,
			forward: func(ops models.Ops, x *graph.Node) *graph.Node { return net.ForwardRange(ops, x, 0, last+1) }}
	}
	if resumable && r.progress.ActSteps >= 1 {
		switchOn(first.ActPoints)
	} else {
		if err := r.initActPoints(first, nil, on, w, true); err != nil {
			return err
		}
		if err := step(1); err != nil {
			return err
		}
	}
	units, err := ActUnits(net, o.Granularity)
	if err != nil {
		return err
	}
	qs, err := r.imageStream()
	if err != nil {
		return err
	}
	fs := &stream{block: 0, x: qs.x.share()}
	defer func() { qs.x.close(); fs.x.close() }()
	for i, u := range units {
		if resumable && i+2 <= r.progress.ActSteps {
			switchOn(u.ActPoints)
			continue
		}
		if len(u.ActPoints) == 0 {
			if err := step(i + 2); err != nil {
				return err
			}
			continue
		}
		t0 := time.Now()
		needQ := !networkInit || o.ActInput != ActInputFP
		if needQ {
			if err := r.advance(qs, u.first, r.actMode(on, w)); err != nil {
				return err
			}
		}
		if err := r.advance(fs, u.first, FPMode()); err != nil {
			return err
		}
		if err := r.actUnit(u, qs, fs, on, w, learn, needQ, networkInit, t0); err != nil {
			return err
		}
		if err := step(i + 2); err != nil {
			return err
		}
	}
	return nil
}

// actUnit initialises (unless networkInit) and learns (with learn) the
// step sizes of unit u's activation points from the streams qs and fs at the
// unit's first block, freeing its caches when done.
func (r *Quantizer) actUnit(u *Unit, qs, fs *stream, on map[string]bool, w RoundingMode, learn, needQ, networkInit bool, t0 time.Time) error {
	o := r.opt
	var xin *cache
	var err error
	if needQ {
		if xin, _, err = r.capture(r.actMode(on, w), u, false, qs, nil, true, false); err != nil {
			return err
		}
		defer xin.close()
	}
	if !networkInit {
		if err := r.initActPoints(u, xin, on, w, false); err != nil {
			return err
		}
	}
	if learn && o.ActIters > 0 {
		fpIn, yfp, err := r.capture(FPMode(), u, false, fs, nil, o.ActInput == ActInputFP, true)
		if err != nil {
			return err
		}
		defer yfp.close()
		if fpIn != nil {
			defer fpIn.close()
			if xin != nil {
				xin.close() // the quantized inputs served the range search only
			}
			xin = fpIn
		}
		return r.learnStepSizes(u, xin, yfp, on, w, t0)
	}
	return nil
}

// actCalibImages is how many cached inputs the activation range search
// uses (Options.ActInitImages, default 256).
func (r *Quantizer) actCalibImages() int {
	if r.opt.ActInitImages > 0 {
		return r.opt.ActInitImages
	}
	return 256
}

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
			x := in[len(f.keys)]
			if fromImages {
				x = models.ToCNHW(x)
			}
			u.forward(ops, x)
			return []*graph.Node{got}
		})
		if err != nil {
			return err
		}
		// The values at p for the first actCalibImages images, in chunks
		// gathered in the layout one call over all of them would return.
		n := min(r.actCalibImages(), r.calib.Shape().Dimensions[0])
		var per int64
		if fromImages {
			d := r.calib.Shape().Dimensions
			per = int64(d[1] * d[2] * d[3] * 4)
		} else {
			n = min(n, xin.n)
			per = xin.imageBytes()
		}
		vals := newCache(n, nil, "")
		err = chunks(n, chunkSize(per, n), func(idx []int) error {
			var x *tensors.Tensor
			if fromImages {
				x = sliceImages(r.calib, idx[0], idx[len(idx)-1]+1)
			} else {
				var err error
				if x, err = xin.batch(idx); err != nil {
					return err
				}
			}
			res, err := call(exec, f.args(x), len(f.keys))
			if err != nil {
				return err
			}
			defer finalize(res)
			return vals.appendTensor(res[0], 1)
		})
		exec.Finalize()
		if err != nil {
			return errorf("activation range of %s: %w", p, err)
		}
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		got, err := vals.batch(all)
		vals.close()
		if err != nil {
			return errorf("activation range of %s: %w", p, err)
		}
		aq, err := SearchActivationQParams(tensors.MustCopyFlatData[float32](got), bits)
		if err != nil {
			return errorf("activation range of %s: %w", p, err)
		}
		r.Q.AQ[p] = aq
		on[p] = true
	}
	return nil
}

// learnStepSizes is the LSQ stage of one unit: Adam (cosine learning rate
// to 0, optim.CosineLR) on the step sizes of the unit's activation points, loss
// ‖ŷ − y‖_p^p with p = ActP against the FP output (LpLoss), weights final.
func (r *Quantizer) learnStepSizes(u *Unit, xin, yfp *cache, on map[string]bool, w RoundingMode, t0 time.Time) error {
	o := r.opt
	cacheSec := time.Since(t0).Seconds()
	var keys []key
	skip := map[key]bool{}
	for _, p := range u.ActPoints {
		if r.Q.ABits[p] < 32 {
			keys = append(keys, key{aScaleT, p})
			skip[key{aScaleT, p}] = true
		}
	}
	f := r.Q.feed(skip)
	in := newStepInputs(f)
	steps := newAdamGroup(in, r.Q, keys, MinScale)
	xSlot, ySlot, stepSlot := in.one(), in.one(), in.one()
	mode := r.actMode(on, w)
	exec, err := graph.NewExec(r.backend, func(inputs []*graph.Node) []*graph.Node {
		nodes := f.nodes(inputs)
		steps.bind(inputs, nodes)
		yhat := u.forward(&qOps{q: r.Q, n: nodes, mode: mode}, xSlot.node(inputs))
		loss := LpLoss(yhat, ySlot.node(inputs), nil, o.ActP, u.channelAxis())
		return append(adamSteps(inputs, loss, stepSlot.node(inputs), steps), loss)
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	rep := UnitReport{Unit: u.Name, Stage: "activations", Iters: o.ActIters, CacheMB: float64(xin.bytes()+yfp.bytes()) / 1e6,
		CacheSeconds: cacheSec}
	if err := r.recordCacheLoss(&rep, &rep.LossBefore, u, mode, xin, yfp, o.ActP); err != nil {
		return err
	}
	idx := make([]int, o.Batch)
	err = r.adamLoop(exec, in.args(), []*adamGroup{steps}, o.ActIters, xin.n, idx, &rep,
		func(it int, args []any) error {
			if err := fillXY(args, idx, xin, yfp, xSlot, ySlot); err != nil {
				return err
			}
			steps.lr.set(args, float32(optim.CosineLR(o.ActLR, it, o.ActIters)))
			stepSlot.set(args, float32(it+1))
			return nil
		},
		func(_ int, out []*tensors.Tensor, st *IterStats) string {
			st.Rec = float64(tensors.ToScalar[float32](out[0]))
			return fmt.Sprintf("lp %.4g", st.Rec)
		})
	if err != nil {
		return err
	}
	if err := r.recordCacheLoss(&rep, &rep.LossAfter, u, mode, xin, yfp, o.ActP); err != nil {
		return err
	}
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}
