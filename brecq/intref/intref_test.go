package intref

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/brecq-go/brecq/brecq/models"
)

// The fixed-point multiplier reproduces x·M to the nearest integer for
// multipliers over many orders of magnitude.
func TestMultiplier(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		m := math.Exp(rng.Float64()*30 - 20) // e^−20 … e^10
		k, err := newMultiplier(m, "test")
		if err != nil {
			t.Fatal(err)
		}
		x := rng.Int64N(1<<27) - 1<<26
		got, want := k.apply(x), float64(x)*m
		if math.Abs(float64(got)-want) > 0.5+1e-6*math.Abs(want)+1e-9 {
			t.Fatalf("%d·%g: got %d, want %.3f", x, m, got, want)
		}
	}
	for _, bad := range []float64{0, -1, math.Inf(1), math.NaN(), 1e30} {
		if _, err := newMultiplier(bad, "layerX"); err == nil {
			t.Errorf("multiplier %g accepted", bad)
		}
	}
}

// The integer convolution equals a float reference on random codes: every
// geometry ResNet uses (3×3 stride 1 and 2, 1×1 stride 2), borders included.
func TestSumsMatchFloatConv(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, g := range []struct{ in, out, k, st, h int }{{3, 4, 3, 1, 7}, {4, 5, 3, 2, 8}, {4, 6, 1, 2, 7}} {
		l := &layer{l: &models.Layer{Name: "t"}, out: g.out, in: g.in, kernel: g.k, stride: g.st, groups: 1, w: make([]int32, g.out*g.in*g.k*g.k)}
		for i := range l.w {
			l.w[i] = rng.Int32N(31) - 15
		}
		x := fmap{c: g.in, h: g.h, w: g.h, v: make([]int32, g.in*g.h*g.h), s: 1}
		for i := range x.v {
			x.v[i] = rng.Int32N(256) - 30
		}
		got, ho, wo, err := l.sums(x)
		if err != nil {
			t.Fatal(err)
		}
		p := (g.k - 1) / 2
		for o := 0; o < g.out; o++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					want := 0.0
					for c := 0; c < g.in; c++ {
						for ky := 0; ky < g.k; ky++ {
							for kx := 0; kx < g.k; kx++ {
								iy, ix := oy*g.st+ky-p, ox*g.st+kx-p
								if iy < 0 || ix < 0 || iy >= g.h || ix >= g.h {
									continue
								}
								want += float64(x.v[(c*g.h+iy)*g.h+ix]) * float64(l.w[((o*g.in+c)*g.k+ky)*g.k+kx])
							}
						}
					}
					if float64(got[(o*ho+oy)*wo+ox]) != want {
						t.Fatalf("%+v: output (%d,%d,%d) = %d, want %g", g, o, oy, ox, got[(o*ho+oy)*wo+ox], want)
					}
				}
			}
		}
	}
}
