package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// TestRecLossLp: LpLoss with p = 2.4 equals Σ_channels |ŷ − y|^p averaged
// over the rest, computed on the host, and its gradient equals
// p·|d|^(p−1)·sign(d)/count, also on the host.
func TestRecLossLp(t *testing.T) {
	b := testBackend(t)
	const c, n = 3, 50
	r := rand.New(rand.NewPCG(1, 2))
	pred, target := make([]float32, c*n), make([]float32, c*n)
	for i := range pred {
		pred[i], target[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	target[4] = pred[4] // d = 0 exactly: gradient 0, not NaN
	const p = 2.4
	exec := graph.MustNewExec(b, func(x, y *graph.Node) []*graph.Node {
		l := LpLoss(x, y, nil, p, 0)
		return []*graph.Node{l, graph.Gradient(l, x)[0]}
	})
	res := exec.MustCall(tensors.FromFlatDataAndDimensions(pred, c, n), tensors.FromFlatDataAndDimensions(target, c, n))
	got := float64(tensors.ToScalar[float32](res[0]))
	grad := tensors.MustCopyFlatData[float32](res[1])
	want := 0.0
	for i := range pred {
		want += math.Pow(math.Abs(float64(pred[i]-target[i])), p)
	}
	want /= n // sum over the c channels, mean over the n positions
	if math.Abs(got-want) > 1e-5*want {
		t.Errorf("loss %g, want %g", got, want)
	}
	for i := range pred {
		d := float64(pred[i] - target[i])
		wg := 0.0
		if d != 0 {
			wg = p * math.Pow(math.Abs(d), p-1) * math.Copysign(1, d) / n
		}
		if g := float64(grad[i]); math.IsNaN(g) || math.Abs(g-wg) > 1e-5+1e-4*math.Abs(wg) {
			t.Errorf("gradient %d: %g, want %g", i, g, wg)
		}
	}
}
