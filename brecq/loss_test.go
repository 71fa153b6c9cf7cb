package brecq

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
)

// TestLpLossByHand checks the authors' lp_loss(reduction='none') semantics: |·|^p summed over axis 1
// only, averaged over all other axes.
func TestLpLossByHand(t *testing.T) {
	// pred − target for a [2, 3, 2] tensor (N=2, C=3, W=2), row-major.
	diff := []float32{
		1, -2, // n0 c0
		0, 0.5, // n0 c1
		-1, 3, // n0 c2
		2, 0, // n1 c0
		0.25, -1, // n1 c1
		0, 1.5, // n1 c2
	}
	target := make([]float32, len(diff))
	pred := make([]float32, len(diff))
	for i, d := range diff {
		target[i] = float32(i) * 0.1
		pred[i] = target[i] + d
	}
	byHand := func(p float64) float64 {
		// Σ_c |d|^p for each (n, w), then mean over the 4 (n, w) pairs.
		var total float64
		for n := range 2 {
			for w := range 2 {
				for c := range 3 {
					d := float64(pred[n*6+c*2+w] - target[n*6+c*2+w])
					total += math.Pow(math.Abs(d), p)
				}
			}
		}
		return total / 4
	}
	for _, p := range []float64{2, 2.4, 1} {
		out := qtRun(t, func(in []*graph.Node) []*graph.Node {
			l := LpLoss(in[0], in[1], nil, p, 1)
			g := graph.Gradient(l, in[0])
			return []*graph.Node{l, g[0]}
		}, qtTensor(pred, 2, 3, 2), qtTensor(target, 2, 3, 2))
		if want := byHand(p); !qtClose(float64(out[0][0]), want, 1e-5*want) {
			t.Errorf("p=%g: LpLoss = %g, want %g", p, out[0][0], want)
		}
		for i, g := range out[1] {
			d := float64(pred[i] - target[i])
			if d == 0 && p <= 1 {
				continue // Subgradient at 0: GoMLX's Abs takes +1, torch 0 (documented).
			}
			want := 0.0
			if d != 0 {
				want = p * math.Pow(math.Abs(d), p-1) * math.Copysign(1, d) / 4
			}
			if math.IsNaN(float64(g)) || !qtClose(float64(g), want, 1e-5) {
				t.Errorf("p=%g element %d (d=%g): gradient %g, want %g", p, i, d, g, want)
			}
		}
	}
	// Rank 2 [N, F]: sum over features, mean over the batch; MSE is p = 2.
	out := qtRun(t, func(in []*graph.Node) []*graph.Node {
		return []*graph.Node{LpLoss(in[0], in[1], nil, 2, 1), LpLoss(in[0], in[1], nil, 3, 1)}
	}, qtTensor([]float32{1, 2, 3, 4}, 2, 2), qtTensor([]float32{0, 0, 1, 1}, 2, 2))
	if want := (1.0 + 4 + 4 + 9) / 2; !qtClose(float64(out[0][0]), want, 1e-6) {
		t.Errorf("LpLoss(p=2) rank 2 = %g, want %g", out[0][0], want)
	}
	if want := (1.0 + 8 + 8 + 27) / 2; !qtClose(float64(out[1][0]), want, 1e-5) {
		t.Errorf("LpLoss(p=3) rank 2 = %g, want %g", out[1][0], want)
	}
}
