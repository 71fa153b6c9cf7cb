package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
)

// TestIntegerCodesMatchEvaluation: the codes `quantize --out` saves
// dequantize to exactly the weights the tool evaluates with (FakeQuantHost,
// HardRoundedWeights, both bit-identical to the graph), also for weights
// whose quotient w/s lies within float32 rounding of a .5 tie, where
// dividing in float64 rounds the other way.
func TestIntegerCodesMatchEvaluation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const out, per = 4, 4096
	w := make([]float32, out*per)
	v := make([]float32, out*per)
	q, err := QParamsFromRange([]float32{-1, -0.7, -1.3, -0.2}, []float32{1, 0.9, 0.4, 1.1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	ties := 0
	for i := range w {
		s := q.Scale[i/per]
		x := float32(r.NormFloat64() * 0.6)
		if i%2 == 0 { // near a tie: (k + 0.5)·s, nudged by one float32 ulp
			k := math.Round(float64(x / s))
			x = float32((k + 0.5) * float64(s))
			x = math.Nextafter32(x, float32(math.Inf(int(r.IntN(2))*2-1)))
		}
		if math.RoundToEven(float64(x)/float64(s)) != math.RoundToEven(float64(x/s)) {
			ties++
		}
		w[i], v[i] = x, float32(r.NormFloat64())
	}
	if ties == 0 {
		t.Fatal("no weight where float32 and float64 division round differently: the test does not probe the case")
	}
	qn := &QNet{FP: models.Params{"l.weight": tensors.FromFlatDataAndDimensions(w, out, per)},
		WQ: map[string]QParams{"l": q}, V: map[string][]float32{"l": v}}
	for _, m := range []RoundingMode{RoundNearest, RoundHard} {
		codes, err := qn.IntegerCodes("l", m)
		if err != nil {
			t.Fatal(err)
		}
		want := FakeQuantHost(w, q)
		if m == RoundHard {
			want = HardRoundedWeights(w, v, q)
		}
		bad := 0
		for i, c := range codes {
			ch := i / per
			if got := q.Scale[ch] * (float32(c) - q.ZeroPoint[ch]); got != want[i] {
				bad++
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d codes dequantize to another weight than the evaluation's (%d near-tie weights)", m, bad, len(w), ties)
		}
	}
}
