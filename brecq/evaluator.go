package brecq

import (
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// Evaluator compiles the network under mode once and returns a function
// from images [N, C, H, W] to logits [N, K] (any N, one compilation per
// shape) and the function that frees the compiled graph.
func (r *Quantizer) Evaluator(mode Mode) (func(*tensors.Tensor) (*tensors.Tensor, error), func()) {
	f := r.Q.feed(nil)
	exec := graph.MustNewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
		return []*graph.Node{r.Q.Net.Forward(ops, in[len(f.keys)])}
	})
	return func(x *tensors.Tensor) (*tensors.Tensor, error) {
		res, err := exec.Call(f.args(x)...)
		if err != nil {
			return nil, err
		}
		return res[0], nil
	}, exec.Finalize
}
