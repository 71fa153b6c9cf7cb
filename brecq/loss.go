package brecq

import (
	"math"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/support/exceptions"
)

// LpLoss is the reconstruction loss of BRECQ (Li et al., 2021) §3 and of the
// authors' lp_loss(pred, tgt, p): the p-th power of the error summed over the
// channel axis chAxis, optionally weighted element-wise, averaged over every
// other axis (batch and positions):
//
//	L = mean_{other axes} Σ_c w·|ŷ − y|^p
//
// Channel-first unit outputs ([C, N, …]) use chAxis 0, logits ([N, K])
// chAxis 1. weights (the Fisher weights of the unit's output, same shape)
// may be nil (w = 1). p = 2 is the MSE loss of the weight stage, computed as
// a square; otherwise |ŷ − y|^p is computed as exp(p·log(|ŷ − y| + 1e-12)),
// whose gradient is 0 where ŷ = y for p > 1 (the Go backend's Pow and its
// gradient cost several times Exp and Log). It panics (GoMLX style) on
// p ≤ 0, on mismatched shapes or on a rank below 2.
func LpLoss(pred, target, weights *graph.Node, p float64, chAxis int) *graph.Node {
	if !(p > 0) || math.IsInf(p, 0) {
		exceptions.Panicf("brecq: LpLoss: invalid norm p = %g, must be finite and > 0", p)
	}
	if !pred.Shape().Equal(target.Shape()) || (weights != nil && !weights.Shape().Equal(pred.Shape())) {
		exceptions.Panicf("brecq: LpLoss: shapes of prediction %s, target %s and weights differ", pred.Shape(), target.Shape())
	}
	if pred.Rank() < 2 {
		exceptions.Panicf("brecq: LpLoss: prediction of rank %d, want ≥ 2 (a channel axis and a batch axis)", pred.Rank())
	}
	d := graph.Sub(pred, target)
	var e *graph.Node
	if p == 2 {
		e = graph.Square(d)
	} else {
		e = graph.Exp(graph.MulScalar(graph.Log(graph.AddScalar(graph.Abs(d), 1e-12)), p))
	}
	if weights != nil {
		e = graph.Mul(e, weights)
	}
	return graph.ReduceAllMean(graph.ReduceSum(e, chAxis))
}
