package brecq

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/support/exceptions"
)

// AdamConfig holds the Adam hyper-parameters (Kingma & Ba, ICLR 2015, Algorithm 1).
type AdamConfig struct {
	Beta1, Beta2, Epsilon float64
}

// DefaultAdamConfig returns PyTorch's defaults: β1 = 0.9, β2 = 0.999, ε = 1e-8.
func DefaultAdamConfig() AdamConfig {
	return AdamConfig{Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8}
}

// AdamUpdate builds one Adam step for one parameter (Kingma & Ba 2015, Algorithm 1, in PyTorch's
// arrangement of ε; AdaRound and BRECQ use Adam for V and for the activation step sizes):
//
//	m' = β1·m + (1 − β1)·g
//	v' = β2·v + (1 − β2)·g²
//	p' = p − lr·m̂/(√v̂ + ε),  m̂ = m'/(1 − β1^t),  v̂ = v'/(1 − β2^t)
//
// lr and step (t, 1-based) are scalar nodes of any numeric dtype (lr is converted to param's dtype;
// the bias corrections are computed in float64 from step, as PyTorch does on the host), so they can
// change every iteration without recompiling. param, grad, m and v have the same shape;
// the caller keeps (p', m', v') between steps (m and v start at zero). It panics on shape mismatch.
func AdamUpdate(param, grad, m, v, lr, step *graph.Node, cfg AdamConfig) (newParam, newM, newV *graph.Node) {
	for _, n := range []*graph.Node{grad, m, v} {
		if !n.Shape().Equal(param.Shape()) {
			exceptions.Panicf("brecq: AdamUpdate: shape %s doesn't match parameter shape %s", n.Shape(), param.Shape())
		}
	}
	g := param.Graph()
	dt := param.DType()
	if lr.DType() != dt {
		lr = graph.ConvertDType(lr, dt)
	}
	// Scalar bias corrections 1 − β^t, computed in float64 like PyTorch does on the host: in float32,
	// 1 − 0.999^t loses ~1e-5 relative precision to cancellation for small t.
	t := step
	if t.DType() != dtypes.Float64 {
		t = graph.ConvertDType(t, dtypes.Float64)
	}
	bc1 := graph.OneMinus(graph.Pow(graph.Scalar(g, dtypes.Float64, cfg.Beta1), t))
	bc2 := graph.OneMinus(graph.Pow(graph.Scalar(g, dtypes.Float64, cfg.Beta2), t))
	stepSize := graph.Div(lr, graph.ConvertDType(bc1, dt))                  // lr/(1 − β1^t)
	invSqrtBC2 := graph.ConvertDType(graph.Reciprocal(graph.Sqrt(bc2)), dt) // 1/√(1 − β2^t)

	newM = graph.Add(graph.MulScalar(m, cfg.Beta1), graph.MulScalar(grad, 1-cfg.Beta1))
	newV = graph.Add(graph.MulScalar(v, cfg.Beta2), graph.MulScalar(graph.Mul(grad, grad), 1-cfg.Beta2))
	denom := graph.AddScalar(graph.Mul(graph.Sqrt(newV), invSqrtBC2), cfg.Epsilon) // √v̂ + ε
	newParam = graph.Sub(param, graph.Mul(stepSize, graph.Div(newM, denom)))
	return newParam, newM, newV
}

// AdamUpdateAll applies AdamUpdate to each parameter of a list with shared lr and step; the four
// slices must have the same length. It returns the new parameters and moments in the same order.
func AdamUpdateAll(params, grads, ms, vs []*graph.Node, lr, step *graph.Node, cfg AdamConfig) (newParams, newMs, newVs []*graph.Node) {
	if len(grads) != len(params) || len(ms) != len(params) || len(vs) != len(params) {
		exceptions.Panicf("brecq: AdamUpdateAll: %d params, %d grads, %d first and %d second moments",
			len(params), len(grads), len(ms), len(vs))
	}
	newParams = make([]*graph.Node, len(params))
	newMs = make([]*graph.Node, len(params))
	newVs = make([]*graph.Node, len(params))
	for i := range params {
		newParams[i], newMs[i], newVs[i] = AdamUpdate(params[i], grads[i], ms[i], vs[i], lr, step, cfg)
	}
	return newParams, newMs, newVs
}
