package brecq

import (
	"math"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/support/exceptions"
)

// LpLoss returns the reconstruction loss of the authors' lp_loss(pred, tgt, p, reduction='none'),
//
//	(pred − tgt).abs().pow(p).sum(1).mean(),
//
// i.e. |pred − target|^p summed over axis 1 only (the channel axis of [N, C, …] activations, the
// features of [N, F] outputs) and averaged over everything else (batch and spatial positions):
//
//	L = 1/(N·H·W) Σ_{n,h,w} Σ_c |ŷ_{n,c,h,w} − y_{n,c,h,w}|^p      (SPEC §4).
//
// A rank-1 or scalar input is simply averaged (there is no axis 1 to sum). For p = 2 the error is
// squared with a multiplication (this is MSELoss); otherwise Pow(Abs(·), p) is used, whose gradient
// p·|e|^(p−1)·sign(e) is 0 at e = 0 for p > 1 (for p ≤ 1 GoMLX's Abs takes sign(0) = +1, where
// torch takes 0; p ≤ 1 is not used by BRECQ). pred and target must have the same shape.
// It panics (GoMLX style) on p ≤ 0 or mismatched shapes.
func LpLoss(pred, target *graph.Node, p float64) *graph.Node {
	if !(p > 0) || math.IsInf(p, 0) {
		exceptions.Panicf("brecq: LpLoss: invalid norm p = %g, must be finite and > 0", p)
	}
	if !pred.Shape().Equal(target.Shape()) {
		exceptions.Panicf("brecq: LpLoss: pred shape %s != target shape %s", pred.Shape(), target.Shape())
	}
	d := graph.Sub(pred, target)
	var e *graph.Node
	if p == 2 {
		e = graph.Mul(d, d)
	} else {
		e = graph.Pow(graph.Abs(d), graph.Scalar(d.Graph(), d.DType(), p))
	}
	if e.Rank() >= 2 {
		e = graph.ReduceSum(e, 1)
	}
	return graph.ReduceAllMean(e)
}

// MSELoss is the MSE reconstruction loss of SPEC §4, LpLoss with p = 2: ‖ŷ − y‖² summed over
// channels (axis 1) and averaged over batch and positions.
func MSELoss(pred, target *graph.Node) *graph.Node { return LpLoss(pred, target, 2) }

// CosineLR returns the cosine-annealed learning rate used for the activation step sizes (SPEC §4;
// torch CosineAnnealingLR with T_max = iters, eta_min = 0):
//
//	lr(t) = base·½·(1 + cos(π·t/iters)),
//
// so lr(0) = base and lr(iters) = 0. t is clamped to [0, iters]; iters ≤ 0 returns base.
func CosineLR(base float64, iter, iters int) float64 {
	if iters <= 0 {
		return base
	}
	t := min(max(iter, 0), iters)
	return base * 0.5 * (1 + math.Cos(math.Pi*float64(t)/float64(iters)))
}
