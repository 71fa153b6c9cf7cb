package brecq

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// refAdam is a hand-rolled float64 Adam (PyTorch's formulation).
type refAdam struct {
	m, v []float64
	t    int
}

func (a *refAdam) step(p, g []float64, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	if a.m == nil {
		a.m, a.v = make([]float64, len(p)), make([]float64, len(p))
	}
	a.t++
	for i := range p {
		a.m[i] = b1*a.m[i] + (1-b1)*g[i]
		a.v[i] = b2*a.v[i] + (1-b2)*g[i]*g[i]
		mHat := a.m[i] / (1 - math.Pow(b1, float64(a.t)))
		vHat := a.v[i] / (1 - math.Pow(b2, float64(a.t)))
		p[i] -= lr * mHat / (math.Sqrt(vHat) + eps)
	}
}

// TestAdamQuadratic runs Adam on f(p) = Σ c_i (p_i − a_i)² with the gradient taken in-graph, and
// compares every step with the float64 reference.
func TestAdamQuadratic(t *testing.T) {
	a := []float64{3, -1, 0.5}
	c := []float64{1, 10, 0.1}
	p0 := []float64{0, 0, 0.5} // last one starts at the optimum: zero gradient, v = 0.
	exec := graph.MustNewExec(qtBackend(t), func(in []*graph.Node) []*graph.Node {
		p, m, v, lr, step := in[0], in[1], in[2], in[3], in[4]
		g := p.Graph()
		d := graph.Sub(p, graph.Const(g, []float32{3, -1, 0.5}))
		loss := graph.ReduceAllSum(graph.Mul(graph.Const(g, []float32{1, 10, 0.1}), graph.Mul(d, d)))
		grad := graph.Gradient(loss, p)[0]
		np, nm, nv := AdamUpdate(p, grad, m, v, lr, step, DefaultAdamConfig())
		return []*graph.Node{np, nm, nv}
	})
	p := tensors.FromValue([]float32{0, 0, 0.5})
	m := tensors.FromValue([]float32{0, 0, 0})
	v := tensors.FromValue([]float32{0, 0, 0})
	ref := &refAdam{}
	rp := append([]float64(nil), p0...)
	for step := 1; step <= 6; step++ {
		lr := 0.1 * float64(step) // varying lr: it is a graph input
		rg := make([]float64, 3)
		for i := range rp {
			rg[i] = 2 * c[i] * (rp[i] - a[i])
		}
		ref.step(rp, rg, lr)
		out := exec.MustCall(p, m, v, float32(lr), int32(step))
		p, m, v = out[0], out[1], out[2]
		got := tensors.MustCopyFlatData[float32](p)
		for i := range rp {
			if !qtClose(float64(got[i]), rp[i], 2e-6) {
				t.Errorf("step %d p[%d] = %g, reference %g", step, i, got[i], rp[i])
			}
		}
	}
}

func TestAdamUpdateAll(t *testing.T) {
	out := qtRun(t, func(in []*graph.Node) []*graph.Node {
		ps := []*graph.Node{in[0], in[1]}
		gs := []*graph.Node{graph.OnesLike(in[0]), graph.MulScalar(graph.OnesLike(in[1]), -2)}
		ms := []*graph.Node{graph.ZerosLike(in[0]), graph.ZerosLike(in[1])}
		vs := []*graph.Node{graph.ZerosLike(in[0]), graph.ZerosLike(in[1])}
		lr := graph.Scalar(in[0].Graph(), in[0].DType(), 0.01)
		step := graph.Scalar(in[0].Graph(), in[0].DType(), 1)
		np, nm, nv := AdamUpdateAll(ps, gs, ms, vs, lr, step, DefaultAdamConfig())
		return append(append(np, nm...), nv...)
	}, qtTensor([]float32{1, 2}, 2), qtTensor([]float32{5}, 1))
	// First step: m̂ = g, v̂ = g², so p −= lr·g/(|g| + ε) ≈ lr·sign(g).
	checks := []struct {
		got  []float32
		want []float64
	}{
		{out[0], []float64{0.99, 1.99}},
		{out[1], []float64{5.01}},
		{out[2], []float64{0.1, 0.1}},
		{out[3], []float64{-0.2}},
		{out[4], []float64{0.001, 0.001}},
		{out[5], []float64{0.004}},
	}
	for k, c := range checks {
		for i := range c.want {
			if !qtClose(float64(c.got[i]), c.want[i], 1e-6) {
				t.Errorf("output %d[%d] = %g, want %g", k, i, c.got[i], c.want[i])
			}
		}
	}
}
