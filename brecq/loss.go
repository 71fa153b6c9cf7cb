package brecq

import "github.com/gomlx/gomlx/core/graph"

// recLoss is the reconstruction loss of SPEC §4: Σ over channels of
// w·|ŷ − y|^p, averaged over the batch and positions. Channel-first
// outputs ([C,N,…]) sum over axis 0; logits ([N,K]) over axis 1. weights may be nil.
func recLoss(pred, target, weights *graph.Node, p float64, chAxis int) *graph.Node {
	d := graph.Sub(pred, target)
	var e *graph.Node
	if p == 2 {
		e = graph.Square(d)
	} else {
		// (|d| + ε)^p as exp(p·log(|d| + ε)): the Go backend's Pow (and its
		// gradient) costs several times Exp and Log.
		e = graph.Exp(graph.MulScalar(graph.Log(graph.AddScalar(graph.Abs(d), 1e-12)), p))
	}
	if weights != nil {
		e = graph.Mul(e, weights)
	}
	return graph.ReduceAllMean(graph.ReduceSum(e, chAxis))
}
