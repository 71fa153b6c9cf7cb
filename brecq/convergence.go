package brecq

import (
	"math"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Convergence records of a unit (UnitReport.HDecided, RoundPerWeight,
// LossBefore, LossAfter): what a single minibatch's loss cannot show — whether
// the rounding has decided, and the stage's effect on the whole calibration
// cache.

// cacheLoss is LpLoss(u(x), y, p) over the whole cache: the unit run under
// mode on every cached input, averaged over images (chunks weighted by their
// size, so equal to the loss of one batch holding every image).
func (r *Quantizer) cacheLoss(u *Unit, mode Mode, xin, y *cache, p float64) (float64, error) {
	f := r.Q.feed(nil)
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		n := len(f.keys)
		yhat := u.forward(&qOps{q: r.Q, n: f.nodes(in), mode: mode}, in[n])
		return []*graph.Node{LpLoss(yhat, in[n+1], nil, p, u.channelAxis())}
	})
	if err != nil {
		return 0, err
	}
	defer exec.Finalize()
	sum := 0.0
	err = chunks(xin.n, chunkSize(xin.imageBytes(), maxChunk), func(idx []int) error {
		xb, yb, err := xyBatch(idx, xin, y)
		if err != nil {
			return err
		}
		res, err := exec.Call(append(f.args(xb), yb)...)
		if err != nil {
			return errorf("unit %s: loss over the cache: %w", u.Name, err)
		}
		sum += float64(tensors.ToScalar[float32](res[0])) * float64(len(idx))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return sum / float64(xin.n), nil
}

// recordCacheLoss, with Options.UnitLosses, sets *dst to cacheLoss(u, mode,
// xin, y, p) and rep.LossP to p; without it, it does nothing.
func (r *Quantizer) recordCacheLoss(rep *UnitReport, dst **float64, u *Unit, mode Mode, xin, y *cache, p float64) error {
	if !r.opt.UnitLosses {
		return nil
	}
	l, err := r.cacheLoss(u, mode, xin, y, p)
	if err != nil {
		return err
	}
	*dst, rep.LossP = ptr(l), p
	return nil
}

// decided returns the fraction of the rounding variables v whose rectified
// sigmoid h(V) = clip(σ(V)(ζ − γ) + γ, 0, 1) is exactly 0 or 1, computed in
// float32 as RectifiedSigmoid does.
func decided(vs ...[]float32) float64 {
	n, d := 0, 0
	for _, v := range vs {
		for _, x := range v {
			s := float32(1 / (1 + math.Exp(-float64(x))))
			h := s*float32(AdaRoundZeta-AdaRoundGamma) + float32(AdaRoundGamma)
			if h <= 0 || h >= 1 {
				d++
			}
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(d) / float64(n)
}

// hostVs copies the current parameters of an Adam group (its first k state
// tensors) to the host.
func hostVs(g *adamGroup) [][]float32 {
	vs := make([][]float32, g.p.n)
	for i := range vs {
		vs[i] = tensors.MustCopyFlatData[float32](g.state[i])
	}
	return vs
}

func ptr(v float64) *float64 { return &v }
