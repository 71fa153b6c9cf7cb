package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
)

// TestActivationQuantizerSignedValues: an inverted residual's output (a
// linear projection plus the input, no ReLU) is signed. The activation
// quantizer's range search and asymmetric grid must then put levels below
// zero: z > 0, every value inside [−z·s, (2^b−1−z)·s] is reproduced within
// s/2 by the graph's FakeQuant, negative values stay negative, and the error
// is far below that of a grid clipped at zero (what an unsigned quantizer
// would give).
func TestActivationQuantizerSignedValues(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(r.NormFloat64()*0.8 - 0.3)
	}
	for _, bits := range []int{2, 4, 8} {
		q, err := SearchActivationQParams(x, bits)
		if err != nil {
			t.Fatal(err)
		}
		s, z := float64(q.Scale[0]), float64(q.ZeroPoint[0])
		qmax := float64(QMax(bits))
		if !(z > 0 && z < qmax) {
			t.Fatalf("%d bits: zero point %g, want strictly inside (0, %g) for signed data", bits, z, qmax)
		}
		got := qtRun(t, func(in []*graph.Node) []*graph.Node {
			return []*graph.Node{FakeQuant(in[0], in[1], in[2], bits)}
		}, qtTensor(x, len(x)), q.ScaleTensor(), q.ZeroPointTensor())[0]
		var errSigned, errClipped float64
		for i, v := range x {
			xv, g := float64(v), float64(got[i])
			// Independent of FakeQuant: the grid point nearest to x, clamped to the grid.
			want := s * (math.Min(math.Max(math.RoundToEven(xv/s)+z, 0), qmax) - z)
			if math.Abs(g-want) > 1e-6*math.Max(1, math.Abs(want)) {
				t.Fatalf("%d bits: x=%g → %g, want %g", bits, xv, g, want)
			}
			if xv >= -z*s && xv <= (qmax-z)*s && math.Abs(g-xv) > s/2+1e-6 {
				t.Fatalf("%d bits: in-range x=%g → %g, error above s/2 = %g", bits, xv, g, s/2)
			}
			if xv < -s && g >= 0 {
				t.Fatalf("%d bits: negative x=%g quantized to %g", bits, xv, g)
			}
			errSigned += (g - xv) * (g - xv)
			clipped := math.Min(math.Max(xv, 0), qmax*s)
			errClipped += (clipped - xv) * (clipped - xv)
		}
		t.Logf("%d bits: s=%.4g z=%g, MSE %.3g (clipped at 0: %.3g)", bits, s, z, errSigned/float64(len(x)), errClipped/float64(len(x)))
		if errSigned > 0.5*errClipped {
			t.Errorf("%d bits: squared error %.3g not well below the zero-clipped grid's %.3g", bits, errSigned, errClipped)
		}
	}
}
