package brecq

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteForceRange is an independent recomputation of the L_p range search of the authors' code, written from
// the formula (not from the package's helpers): try the 80 candidates (min·(1−0.01i), max·(1−0.01i)),
// quantize with x_q = (clamp(round(x/s) + z, 0, 2^b−1) − z)·s, keep the first lowest Σ|x − x_q|^p.
func bruteForceRange(x []float32, bits int, p float64) (lo, hi float32, best int) {
	lo, hi, best, _ = bruteForceScores(x, bits, p)
	return lo, hi, best
}

// bruteForceScores is bruteForceRange also returning the score of every candidate.
func bruteForceScores(x []float32, bits int, p float64) (lo, hi float32, best int, scores []float64) {
	mn, mx := x[0], x[0]
	for _, v := range x {
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
	}
	levels := float32(int(1)<<bits - 1)
	bestScore := math.Inf(1)
	for i := 0; i < 80; i++ {
		f := float32(1 - 0.01*float64(i))
		cmin, cmax := mn*f, mx*f
		wmin, wmax := cmin, cmax
		if wmin > 0 {
			wmin = 0
		}
		if wmax < 0 {
			wmax = 0
		}
		delta := (wmax - wmin) / levels
		if delta < 1e-8 {
			delta = 1e-8
		}
		zp := float32(math.RoundToEven(float64(-wmin / delta)))
		var score float64
		for _, v := range x {
			q := float32(math.RoundToEven(float64(v/delta))) + zp
			if q < 0 {
				q = 0
			}
			if q > levels {
				q = levels
			}
			xq := (q - zp) * delta
			score += math.Pow(math.Abs(float64(v-xq)), p)
		}
		scores = append(scores, score)
		if score < bestScore {
			bestScore, best, lo, hi = score, i, cmin, cmax
		}
	}
	return lo, hi, best, scores
}

// sameOrTie reports whether the range (lo, hi) is the brute-force optimum (blo, bhi) or another
// candidate whose brute-force score is within 1e-6 (relative) of the optimum: the search may use an
// interpolated |e|^p (relative error ~1e-7), so exact near-ties may resolve differently.
func sameOrTie(x []float32, lo, hi float32, bits int, p float64) bool {
	blo, bhi, best, scores := bruteForceScores(x, bits, p)
	if lo == blo && hi == bhi {
		return true
	}
	for i, sc := range scores {
		f := float32(1 - 0.01*float64(i))
		if lo == x0min(x)*f && hi == x0max(x)*f {
			return sc <= scores[best]*(1+1e-6)
		}
	}
	return false
}

func x0min(x []float32) float32 {
	m := x[0]
	for _, v := range x {
		m = min(m, v)
	}
	return m
}

func x0max(x []float32) float32 {
	m := x[0]
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// outlierTensor builds non-negative data whose best range is provably the candidate iStar: `copies`
// copies of every level of the 4-bit grid of candidate iStar (zero error there) plus one outlier at
// `top`. Shrinking less than iStar mis-places all grid points (error growing with the copies),
// shrinking more clips both the grid's top and the outlier further.
func outlierTensor(top float32, iStar, copies int) []float32 {
	s := top * float32(1-0.01*float64(iStar)) / 15
	x := make([]float32, 0, 16*copies+1)
	for range copies {
		for k := range 16 {
			x = append(x, float32(k)*s)
		}
	}
	return append(x, top)
}

func TestRangeSearchOutlierOptimum(t *testing.T) {
	for _, tc := range []struct {
		iStar  int
		top    float32
		copies int
	}{{50, 10, 400}, {20, 10, 200}, {35, 3, 400}} {
		x := outlierTensor(tc.top, tc.iStar, tc.copies)
		lo, hi := SearchRangePerTensor(x, 4, DefaultLpNorm)
		blo, bhi, bi := bruteForceRange(x, 4, DefaultLpNorm)
		if bi != tc.iStar {
			t.Errorf("i*=%d: brute force picked %d (test construction is wrong)", tc.iStar, bi)
		}
		if lo != blo || hi != bhi {
			t.Errorf("i*=%d: SearchRangePerTensor = [%g, %g], brute force [%g, %g]", tc.iStar, lo, hi, blo, bhi)
		}
		wantHi := tc.top * float32(1-0.01*float64(tc.iStar))
		if lo != 0 || hi != wantHi {
			t.Errorf("i*=%d: got [%g, %g], want [0, %g]", tc.iStar, lo, hi, wantHi)
		}
	}
}

// TestRangeSearchPerChannelOutliers puts two differently built channels in one weight: each must get
// its own optimum, and the parallel per-channel path must agree with the per-tensor search of each
// slice and with the brute force.
func TestRangeSearchPerChannelOutliers(t *testing.T) {
	c0 := outlierTensor(10, 50, 400)
	c1 := outlierTensor(10, 20, 400)
	// Mirror channel 1 to negative values: the optimum shrink is the same by symmetry of the search
	// (the grid then hangs from max = 0).
	for i := range c1 {
		c1[i] = -c1[i]
	}
	w := append(append([]float32{}, c0...), c1...)
	lo, hi := SearchRangePerChannel(w, 2, 4, DefaultLpNorm)
	for c, x := range [][]float32{c0, c1} {
		blo, bhi, _ := bruteForceRange(x, 4, DefaultLpNorm)
		tlo, thi := SearchRangePerTensor(x, 4, DefaultLpNorm)
		if lo[c] != blo || hi[c] != bhi || tlo != blo || thi != bhi {
			t.Errorf("channel %d: per-channel [%g, %g], per-tensor [%g, %g], brute force [%g, %g]",
				c, lo[c], hi[c], tlo, thi, blo, bhi)
		}
	}
	if want := float32(10) * float32(0.5); hi[0] != want || lo[0] != 0 {
		t.Errorf("channel 0: [%g, %g], want [0, %g]", lo[0], hi[0], want)
	}
	if want := float32(-10) * float32(0.8); lo[1] != want || hi[1] != 0 {
		t.Errorf("channel 1: [%g, %g], want [%g, 0]", lo[1], hi[1], want)
	}
}

func TestRangeSearchMatchesBruteForceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, bits := range []int{2, 3, 4, 8} {
		for _, p := range []float64{2, 2.4} {
			const channels, chLen = 8, 200 // 8·200·80 > parallel threshold.
			w := make([]float32, channels*chLen)
			for i := range w {
				w[i] = float32(rng.NormFloat64() * (0.1 + float64(i/chLen)*0.05))
			}
			w[5] = 2.5             // outlier in channel 0
			w[chLen+7] = -1.7      // outlier in channel 1
			for i := range chLen { // channel 2 all positive (tests widening to 0)
				w[2*chLen+i] = float32(math.Abs(float64(w[2*chLen+i]))) + 0.3
			}
			lo, hi := SearchRangePerChannel(w, channels, bits, p)
			lo2, hi2 := SearchRangePerChannel(w, channels, bits, p)
			for c := range channels {
				x := w[c*chLen : (c+1)*chLen]
				if !sameOrTie(x, lo[c], hi[c], bits, p) {
					blo, bhi, _ := bruteForceRange(x, bits, p)
					t.Errorf("bits=%d p=%g channel %d: [%g, %g], brute force [%g, %g]", bits, p, c, lo[c], hi[c], blo, bhi)
				}
				if lo[c] != lo2[c] || hi[c] != hi2[c] {
					t.Errorf("bits=%d p=%g channel %d: not deterministic", bits, p, c)
				}
			}
			tlo, thi := SearchRangePerTensor(w, bits, p)
			if !sameOrTie(w, tlo, thi, bits, p) {
				blo, bhi, _ := bruteForceRange(w, bits, p)
				t.Errorf("bits=%d p=%g per-tensor: [%g, %g], brute force [%g, %g]", bits, p, tlo, thi, blo, bhi)
			}
		}
	}
}

func TestRangeSearchKnobsAndQParams(t *testing.T) {
	x := outlierTensor(10, 50, 50)
	saved := RangeSearchCandidates
	RangeSearchCandidates = 1
	lo, hi := SearchRangePerTensor(x, 4, DefaultLpNorm)
	RangeSearchCandidates = saved
	if lo != 0 || hi != 10 {
		t.Errorf("1 candidate: [%g, %g], want the full range [0, 10]", lo, hi)
	}

	q, err := SearchActivationQParams(outlierTensor(10, 50, 400), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Shape) != 0 || q.ZeroPoint[0] != 0 || !qtClose(float64(q.Scale[0]), 5.0/15, 1e-7) {
		t.Errorf("activation qparams %+v, want s = 1/3, z = 0", q)
	}
	if _, err := SearchActivationQParams(x, 1); err == nil {
		t.Error("bits 1: want error")
	}
	if _, err := SearchWeightQParams(x, []int{3, 5}, 4); err == nil {
		t.Error("wrong shape: want error")
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("SearchRangePerChannel with 7 channels on 801 elements: want panic")
		}
	}()
	SearchRangePerChannel(x[:800], 7, 4, 2.4)
}

// TestRangeSearchPowTable checks the interpolated |e|^p of the search against math.Pow on every
// candidate of a random tensor (relative error of the score below 1e-6).
func TestRangeSearchPowTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	x := make([]float32, 2000)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	x[3] = 6
	mn, mx := minMax(x)
	for _, p := range []float64{1, 1.5, 2.4, 3, 4} {
		table := newPowTable(p)
		exact := &powTable{p: p}
		for _, bits := range []int{2, 4, 8} {
			for i := range 80 {
				a := candidateScore(x, mn, mx, i, bits, table)
				b := candidateScore(x, mn, mx, i, bits, exact)
				if math.Abs(a-b) > 1e-6*b {
					t.Fatalf("p=%g bits=%d candidate %d: table score %g, math.Pow score %g", p, bits, i, a, b)
				}
			}
		}
	}
}

// TestRangeSearchPowTableValues checks powTable.pow against math.Pow from subnormal to huge inputs.
func TestRangeSearchPowTableValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	for _, p := range []float64{1, 1.3, 2.4, 3.7, 4, 0.5, 6} {
		pw := newPowTable(p)
		if (pw.mant == nil) != (p < 1 || p > 4) {
			t.Fatalf("p=%g: table in use = %v", p, pw.mant != nil)
		}
		if pw.mant == nil {
			continue // math.Pow is used for these p.
		}
		if pw.pow(0) != 0 || pw.pow(1e-300) != 0 {
			t.Errorf("p=%g: pow(0) = %g, pow(1e-300) = %g, want 0", p, pw.pow(0), pw.pow(1e-300))
		}
		for range 20000 {
			e := math.Exp(rng.Float64()*200 - 120) // e^-120 … e^80
			if rng.IntN(50) == 0 {
				e = float64(math.Float32frombits(uint32(rng.IntN(1 << 23)))) // float32 subnormals
			}
			want := math.Pow(e, p)
			if got := pw.pow(e); math.Abs(got-want) > 1e-7*want {
				t.Fatalf("p=%g: pow(%g) = %g, math.Pow %g", p, e, got, want)
			}
		}
	}
}

// TestRangeSearchReLUZeros: on ReLU-like data (60 % exact zeros, which the
// per-tensor search scores in one go) the search still picks the brute-force
// optimum.
func TestRangeSearchReLUZeros(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 9))
	for _, bits := range []int{2, 4, 8} {
		x := make([]float32, 20000)
		for i := range x {
			if rng.Float64() >= 0.6 {
				x[i] = float32(math.Abs(rng.NormFloat64()) * (1 + 3*rng.Float64()*rng.Float64()))
			}
		}
		lo, hi := SearchRangePerTensor(x, bits, 2.4)
		if !sameOrTie(x, lo, hi, bits, 2.4) {
			blo, bhi, _ := bruteForceRange(x, bits, 2.4)
			t.Errorf("bits=%d: [%g, %g], brute force [%g, %g]", bits, lo, hi, blo, bhi)
		}
	}
}
