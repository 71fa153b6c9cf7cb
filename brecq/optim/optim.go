// Package optim holds the optimisation pieces shared by FP training
// (package fptrain) and post-training quantization (package brecq): the
// cosine learning-rate schedule and the softmax cross-entropy.
package optim

import (
	"math"

	"github.com/gomlx/gomlx/core/graph"
)

// CosineLR is the cosine-annealed learning rate (torch CosineAnnealingLR with
// T_max = iters, eta_min = 0):
//
//	lr(t) = base·½·(1 + cos(π·t/iters)),
//
// so lr(0) = base and lr(iters) = 0. t is clamped to [0, iters]; iters ≤ 0
// returns base. brecq uses it for the activation step sizes (LSQ stage),
// fptrain for SGD.
func CosineLR(base float64, iter, iters int) float64 {
	if iters <= 0 {
		return base
	}
	t := min(max(iter, 0), iters)
	return base * 0.5 * (1 + math.Cos(math.Pi*float64(t)/float64(iters)))
}

// CrossEntropyPerImage is −log softmax(logits_i)[label_i] for every row i of
// logits [N, K], with integer labels [N]: a [N] node.
func CrossEntropyPerImage(logits, labels *graph.Node) *graph.Node {
	logp := graph.LogSoftmax(logits, -1)
	onehot := graph.OneHot(labels, logits.Shape().Dimensions[1], logp.DType())
	return graph.Neg(graph.ReduceSum(graph.Mul(logp, onehot), -1))
}

// CrossEntropy is the mean over the batch of CrossEntropyPerImage: the
// training loss of the FP network.
func CrossEntropy(logits, labels *graph.Node) *graph.Node {
	return graph.ReduceAllMean(CrossEntropyPerImage(logits, labels))
}
