package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// adaroundFixture returns a small per-channel conv weight [3, 2, 2, 2] and its 3-bit QParams, with a
// few weights pushed outside the grid (so that clipping is exercised).
func adaroundFixture(t *testing.T) ([]float32, []int, QParams) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 5))
	shape := []int{3, 2, 2, 2}
	w := make([]float32, 24)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * float32(0.5+float64(i/8))
	}
	q, err := SearchWeightQParams(w, shape, 3)
	if err != nil {
		t.Fatal(err)
	}
	return w, shape, q
}

func TestAdaRoundInitReproducesWeights(t *testing.T) {
	w, shape, q := adaroundFixture(t)
	v := InitAdaRoundV(w, q)
	out := qtRun(t, func(in []*graph.Node) []*graph.Node {
		wn, vn, s, z := in[0], in[1], in[2], in[3]
		return []*graph.Node{
			RectifiedSigmoid(vn),
			AdaRoundWeight(wn, vn, s, z, q.Bits, RoundSoft),
			AdaRoundWeight(wn, vn, s, z, q.Bits, RoundHard),
			AdaRoundWeight(wn, nil, s, z, q.Bits, RoundNearest),
			AdaRoundWeight(wn, nil, s, z, q.Bits, RoundOff),
		}
	}, qtTensor(w, shape...), qtTensor(v, shape...), q.ScaleTensor(), q.ZeroPointTensor())
	h, soft, hard, nearest, off := out[0], out[1], out[2], out[3], out[4]
	hostHard := HardRoundedWeights(w, v, q)
	hostNearest := FakeQuantHost(w, q)
	qmax := float64(QMax(q.Bits))
	clipped := 0
	for i, x := range w {
		s, z := float64(q.Scale[i/8]), float64(q.ZeroPoint[i/8])
		u := float64(x) / s
		fl := math.Floor(u)
		if frac := u - fl; math.Abs(float64(h[i])-frac) > 1e-5 {
			t.Errorf("w[%d]: h(V) = %g, want frac(w/s) = %g", i, h[i], frac)
		}
		inside := fl+z >= 0 && fl+1+z <= qmax
		if inside {
			if math.Abs(float64(soft[i]-x)) > 1e-5 {
				t.Errorf("w[%d] = %g: soft AdaRound weight %g, want ≈ w", i, x, soft[i])
			}
		} else {
			clipped++
			if math.Abs(float64(soft[i]-x)) > s {
				t.Errorf("w[%d] = %g: soft AdaRound weight %g more than one step s = %g away", i, x, soft[i], s)
			}
		}
		// Hard rounding: ⌊w/s⌋ or ⌈w/s⌉ (then clipped to the grid), and exactly the host export.
		lo := s * (math.Max(math.Min(fl, qmax-z), -z))
		hi := s * (math.Max(math.Min(fl+1, qmax-z), -z))
		if d := float64(hard[i]); math.Abs(d-lo) > 1e-6 && math.Abs(d-hi) > 1e-6 {
			t.Errorf("w[%d]: hard weight %g is neither s·⌊w/s⌋ = %g nor s·⌈w/s⌉ = %g", i, hard[i], lo, hi)
		}
		if hard[i] != hostHard[i] {
			t.Errorf("w[%d]: hard weight %g != HardRoundedWeights %g", i, hard[i], hostHard[i])
		}
		if nearest[i] != hostNearest[i] {
			t.Errorf("w[%d]: nearest %g != FakeQuantHost %g", i, nearest[i], hostNearest[i])
		}
		if off[i] != x {
			t.Errorf("w[%d]: RoundOff %g != w %g", i, off[i], x)
		}
	}
	if clipped == 0 || clipped == len(w) {
		t.Logf("fixture has %d clipped weights (want a mix)", clipped)
	}
	// At initialisation h = frac, so hard rounding (h ≥ 0.5 ⇔ V ≥ V(0.5) = 0 since σ(0)·1.2 − 0.1 = 0.5)
	// is round-to-nearest except for exact ties.
	for i := range w {
		if hard[i] != nearest[i] {
			t.Errorf("w[%d]: at init hard %g != nearest %g", i, hard[i], nearest[i])
		}
	}
}

func TestAdaRoundSoftGradient(t *testing.T) {
	// One weight per channel, s = 1, z = 1, 2 bits (grid [−1, 2]). V = 0 ⇒ h = 0.5, h' = σ'(0)·1.2 = 0.3.
	w := []float32{0.3, 5.0, -4.0, 1.2}
	v := []float32{0, 0, 0, 3}
	out := qtRun(t, func(in []*graph.Node) []*graph.Node {
		wn, vn, s, z := in[0], in[1], in[2], in[3]
		y := AdaRoundWeight(wn, vn, s, z, 2, RoundSoft)
		g := graph.Gradient(graph.ReduceAllSum(y), vn, s)
		return []*graph.Node{y, g[0], g[1]}
	}, qtTensor(w, 4, 1), qtTensor(v, 4, 1), qtTensor(qtFill(4, 1), 4, 1), qtTensor(qtFill(4, 1), 4, 1))
	sig3 := 1 / (1 + math.Exp(-3))
	h3 := math.Min(1, sig3*1.2-0.1)
	dh3 := 0.0
	if sig3*1.2-0.1 < 1 {
		dh3 = sig3 * (1 - sig3) * 1.2
	}
	want := []struct{ y, dv, ds float64 }{
		{0.5, 0.3, 0.5},       // ⌊0.3⌋ + 0.5 = 0.5 inside
		{2, 0, 2},             // clipped above: s·(qmax − z)
		{-1, 0, -1},           // clipped below: −s·z
		{1 + h3, dh3, 1 + h3}, // ⌊1.2⌋ + h(3) inside
	}
	for i, wv := range want {
		if !qtClose(float64(out[0][i]), wv.y, 1e-6) || !qtClose(float64(out[1][i]), wv.dv, 1e-6) ||
			!qtClose(float64(out[2][i]), wv.ds, 1e-6) {
			t.Errorf("w=%g V=%g: (Ŵ, ∂/∂V, ∂/∂s) = (%g, %g, %g), want (%g, %g, %g)",
				w[i], v[i], out[0][i], out[1][i], out[2][i], wv.y, wv.dv, wv.ds)
		}
	}
}

func TestAdaRoundRegularizerByHand(t *testing.T) {
	// h = 0.25 ⇔ σ(V) = 0.35/1.2.
	sig := 0.35 / 1.2
	v25 := float32(math.Log(sig / (1 - sig)))
	v := []float32{0, 10, -10, v25}
	for _, tc := range []struct {
		beta float32
		want float64
	}{
		{2, 1 + 0 + 0 + (1 - 0.25)},  // |2h−1| = 0, 1, 1, 0.5
		{3, 1 + 0 + 0 + (1 - 0.125)}, // 0.5³
		{20, 1 + 0 + 0 + (1 - math.Pow(0.5, 20))},
	} {
		out := qtRun(t, func(in []*graph.Node) []*graph.Node {
			r := RoundingRegularizer(in[0], in[1])
			g := graph.Gradient(r, in[0])
			return []*graph.Node{r, g[0]}
		}, qtTensor(v, 4), tensors.FromScalar(tc.beta))
		if !qtClose(float64(out[0][0]), tc.want, 1e-5) {
			t.Errorf("β=%g: regulariser %g, want %g", tc.beta, out[0][0], tc.want)
		}
		// Gradient at h = 0.5 is 0 (|2h−1|^β has a flat minimum there), at clipped h it is 0,
		// at h = 0.25: −β·0.5^(β−1)·(−2)·h'(V) with h' = σ'·1.2 (d|2h−1|/dh = −2 for h < 0.5).
		dh := sig * (1 - sig) * 1.2
		wantG := []float64{0, 0, 0, float64(tc.beta) * math.Pow(0.5, float64(tc.beta)-1) * 2 * dh}
		for i := range v {
			if g := float64(out[1][i]); math.IsNaN(g) || !qtClose(g, wantG[i], 1e-5) {
				t.Errorf("β=%g V=%g: ∂reg/∂V = %g, want %g", tc.beta, v[i], g, wantG[i])
			}
		}
	}
}

// regularizerPow is the direct form of the rounding regulariser, Σ(1 − |2h(V) − 1|^β) with graph.Pow,
// which RoundingRegularizer replaced; the reference for its value and gradient.
func regularizerPow(v, beta *graph.Node) *graph.Node {
	d := graph.Abs(graph.AddScalar(graph.MulScalar(RectifiedSigmoid(v), 2), -1))
	return graph.ReduceAllSum(graph.OneMinus(graph.Pow(d, graph.ConvertDType(beta, d.DType()))))
}

// TestRoundingRegularizerMatchesPowForm compares RoundingRegularizer with the direct Pow form, value
// and gradient, on random V and on the edge elements h = 0 and h = 1 (|2h − 1| = 1, clipped) and
// h = 0.5 (|2h − 1| = 0, where the gradient must be 0, not NaN).
func TestRoundingRegularizerMatchesPowForm(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	v := []float32{0, 10, -10, 50, -50, 0}
	for len(v) < 4096 {
		v = append(v, float32(3*r.NormFloat64()))
	}
	h := qtRun(t, func(in []*graph.Node) []*graph.Node { return []*graph.Node{RectifiedSigmoid(in[0])} },
		qtTensor(v, len(v)))[0]
	if h[0] != 0.5 || h[1] != 1 || h[2] != 0 || h[3] != 1 || h[4] != 0 {
		t.Fatalf("edge elements: h = %v, want 0.5, 1, 0, 1, 0", h[:5])
	}
	for _, beta := range []any{float32(2), float32(3.7), float32(11), float32(20), float64(2)} {
		out := qtRun(t, func(in []*graph.Node) []*graph.Node {
			got, want := RoundingRegularizer(in[0], in[1]), regularizerPow(in[0], in[1])
			return []*graph.Node{got, want, graph.Gradient(got, in[0])[0], graph.Gradient(want, in[0])[0]}
		}, qtTensor(v, len(v)), beta)
		got, want := float64(out[0][0]), float64(out[1][0])
		if math.Abs(got-want) > 1e-6*math.Abs(want) {
			t.Errorf("β=%v: regulariser %.9g, Pow form %.9g", beta, got, want)
		}
		gmax := 0.0
		for _, g := range out[3] {
			gmax = math.Max(gmax, math.Abs(float64(g)))
		}
		for i, g := range out[2] {
			w := float64(out[3][i])
			if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) || math.Abs(float64(g)-w) > 1e-5*math.Abs(w)+1e-7*gmax {
				t.Errorf("β=%v V=%g (h=%g): ∂reg/∂V = %g, Pow form %g", beta, v[i], h[i], g, w)
			}
			if i < 6 && g != 0 {
				t.Errorf("β=%v V=%g (h=%g): ∂reg/∂V = %g, want 0", beta, v[i], h[i], g)
			}
		}
	}
}

func TestBetaSchedule(t *testing.T) {
	b := DefaultBetaSchedule(1000)
	for _, tc := range []struct {
		iter   int
		beta   float64
		active bool
	}{
		{0, 20, false},
		{199, 20, false},
		{200, 20, true},  // 0.2·T: decay starts at Start
		{600, 11, true},  // 0.6·T: halfway, 2 + 18·0.5
		{800, 6.5, true}, // 2 + 18·0.25
		{1000, 2, true},  // T
		{1200, 2, true},  // beyond T
	} {
		if got := b.Beta(tc.iter); !qtClose(got, tc.beta, 1e-12) {
			t.Errorf("Beta(%d) = %g, want %g", tc.iter, got, tc.beta)
		}
		if got := b.RegActive(tc.iter); got != tc.active {
			t.Errorf("RegActive(%d) = %v, want %v", tc.iter, got, tc.active)
		}
	}
	if b.Warmup != 0.2 || b.Start != 20 || b.End != 2 || b.Iters != 1000 {
		t.Errorf("DefaultBetaSchedule = %+v", b)
	}
}

func TestAdaRoundModeString(t *testing.T) {
	for m, s := range map[RoundingMode]string{RoundNearest: "nearest", RoundSoft: "soft", RoundHard: "hard", RoundOff: "off"} {
		if m.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(m), m.String(), s)
		}
	}
}
