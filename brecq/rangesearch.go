package brecq

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Range search knobs (the authors' code). They are package-level defaults read by every search; change them
// only before starting a run (they are not synchronised).
var (
	// RangeSearchCandidates is the number of shrunk ranges tried: i = 0 … RangeSearchCandidates−1
	// (80 in the paper's code).
	RangeSearchCandidates = 80
	// RangeSearchShrinkStep is the relative shrink per candidate: candidate i is
	// (min·(1 − step·i), max·(1 − step·i)) (0.01 in the paper's code).
	RangeSearchShrinkStep = 0.01
)

// DefaultLpNorm is the exponent p of the L_p error minimised by the range search and used by the
// activation-stage loss (p = 2.4, as in the authors' code, which follows LAPQ, Nahshan et al. 2019).
const DefaultLpNorm = 2.4

// parallelMinWork is the number of element-candidate evaluations below which a search stays on
// the calling goroutine.
const parallelMinWork = 1 << 16

// SearchRangePerTensor returns the quantization range of x chosen by the L_p range search of the authors' code:
// with m = min(x), M = max(x), candidate i = 0 … RangeSearchCandidates−1 is
//
//	(m·(1 − RangeSearchShrinkStep·i), M·(1 − RangeSearchShrinkStep·i)),
//
// each is turned into (s, z) by QParamsFromRange (range widened to include 0), x is fake-quantized
// with FakeQuantHost's arithmetic, and the candidate with the smallest Σ|x − x̂|^p (float64 sum) is
// kept; ties keep the smaller shrink, like the authors' strict "<". The returned (lo, hi) is the
// unwidened candidate; pass it to QParamsFromRange. The authors score with the mean instead of the
// sum (same argmin) and do not widen the candidate to include 0, which differs only when the range
// lies entirely on one side of 0 (never after ReLU, where min = 0).
//
// It is deterministic; candidates are evaluated in parallel when x is large. It panics on
// unsupported bits, p ≤ 0 or an empty x. For p = 2, |e|^p is computed as e·e; for other p in [1, 4]
// with a table-driven power (relative error < ~1e-7, see powTable) several times faster than
// math.Pow; only exact near-ties can resolve differently from an exact computation.
func SearchRangePerTensor(x []float32, bits int, p float64) (lo, hi float32) {
	mustSearchArgs(bits, p)
	if len(x) == 0 {
		panic("brecq: SearchRangePerTensor: empty tensor")
	}
	mn, mx := minMax(x)
	n := RangeSearchCandidates
	if n < 1 {
		panic(fmt.Sprintf("brecq: RangeSearchCandidates = %d, must be ≥ 1", n))
	}
	scores := make([]float64, n)
	pw := newPowTable(p)
	// Exact zeros (half of a ReLU output) all cost |q(0)|^p: score them once
	// per candidate instead of element by element.
	zeros := 0
	for _, v := range x {
		if v == 0 {
			zeros++
		}
	}
	if zeros > 0 {
		nz := make([]float32, 0, len(x)-zeros)
		for _, v := range x {
			if v != 0 {
				nz = append(nz, v)
			}
		}
		x = nz
	}
	score := func(i int) float64 {
		sc := candidateScore(x, mn, mx, i, bits, pw)
		if zeros > 0 {
			sc += float64(zeros) * candidateScore([]float32{0}, mn, mx, i, bits, pw)
		}
		return sc
	}
	workers := runtime.GOMAXPROCS(0)
	if len(x)*n < parallelMinWork || workers < 2 {
		for i := range n {
			scores[i] = score(i)
		}
	} else {
		var wg sync.WaitGroup
		next := make(chan int, n)
		for i := range n {
			next <- i
		}
		close(next)
		for range min(workers, n) {
			wg.Go(func() {
				for i := range next {
					scores[i] = score(i)
				}
			})
		}
		wg.Wait()
	}
	best := 0
	for i := 1; i < n; i++ {
		if scores[i] < scores[best] {
			best = i
		}
	}
	return shrink(mn, best), shrink(mx, best)
}

// SearchRangePerChannel runs the L_p range search of SearchRangePerTensor independently on each of
// the `channels` equal consecutive slices of w (per output channel for a weight in PyTorch layout,
// the authors' code) and returns one (lo, hi) per channel. Channels are processed in parallel when w is
// large; the result is deterministic. It panics on unsupported bits, p ≤ 0, channels ≤ 0 or a
// length of w that is not a positive multiple of channels.
func SearchRangePerChannel(w []float32, channels int, bits int, p float64) (lo, hi []float32) {
	mustSearchArgs(bits, p)
	if channels <= 0 || len(w) == 0 || len(w)%channels != 0 {
		panic(fmt.Sprintf("brecq: SearchRangePerChannel: %d elements can't be split in %d channels", len(w), channels))
	}
	n := RangeSearchCandidates
	if n < 1 {
		panic(fmt.Sprintf("brecq: RangeSearchCandidates = %d, must be ≥ 1", n))
	}
	chLen := len(w) / channels
	pw := newPowTable(p)
	lo, hi = make([]float32, channels), make([]float32, channels)
	one := func(c int) {
		x := w[c*chLen : (c+1)*chLen]
		mn, mx := minMax(x)
		best, bestScore := 0, math.Inf(1)
		for i := range n {
			if s := candidateScore(x, mn, mx, i, bits, pw); s < bestScore {
				best, bestScore = i, s
			}
		}
		lo[c], hi[c] = shrink(mn, best), shrink(mx, best)
	}
	workers := runtime.GOMAXPROCS(0)
	if len(w)*n < parallelMinWork || workers < 2 || channels < 2 {
		for c := range channels {
			one(c)
		}
		return lo, hi
	}
	var wg sync.WaitGroup
	next := make(chan int, channels)
	for c := range channels {
		next <- c
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for c := range next {
				one(c)
			}
		})
	}
	wg.Wait()
	return lo, hi
}

// SearchWeightQParams is the weight initialisation of BRECQ's code: per-output-channel range search
// (p = DefaultLpNorm) followed by QParamsFromRange, with Shape [out, 1, …, 1] for a weight of the
// given shape (PyTorch layout, output channel on axis 0).
func SearchWeightQParams(w []float32, shape []int, bits int) (QParams, error) {
	if err := ValidateBits(bits); err != nil {
		return QParams{}, err
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	if len(shape) == 0 || n != len(w) || n == 0 {
		return QParams{}, errorf("SearchWeightQParams: shape %v doesn't match %d weights", shape, len(w))
	}
	mn, mx := SearchRangePerChannel(w, shape[0], bits, DefaultLpNorm)
	q, err := QParamsFromRange(mn, mx, bits)
	if err != nil {
		return QParams{}, err
	}
	return q.WithShape(ChannelShape(shape[0], len(shape))...)
}

// SearchActivationQParams is the activation initialisation of BRECQ's code: per-tensor range search
// (p = DefaultLpNorm) on a calibration batch x, followed by QParamsFromRange (Shape []).
func SearchActivationQParams(x []float32, bits int) (QParams, error) {
	if err := ValidateBits(bits); err != nil {
		return QParams{}, err
	}
	if len(x) == 0 {
		return QParams{}, errorf("SearchActivationQParams: empty tensor")
	}
	mn, mx := SearchRangePerTensor(x, bits, DefaultLpNorm)
	return QParamsFromRange([]float32{mn}, []float32{mx}, bits)
}

func mustSearchArgs(bits int, p float64) {
	mustBitsHost(bits)
	if !(p > 0) || math.IsInf(p, 0) {
		panic(fmt.Sprintf("brecq: range search: invalid norm p = %g, must be finite and > 0", p))
	}
}

// shrink returns v·(1 − RangeSearchShrinkStep·i) in float32.
func shrink(v float32, i int) float32 {
	return v * float32(1-RangeSearchShrinkStep*float64(i))
}

func minMax(x []float32) (mn, mx float32) {
	mn, mx = x[0], x[0]
	for _, v := range x[1:] {
		mn = min(mn, v)
		mx = max(mx, v)
	}
	return mn, mx
}

// candidateScore returns Σ|x − x̂|^p for candidate i of the range [mn, mx].
func candidateScore(x []float32, mn, mx float32, i, bits int, pw *powTable) float64 {
	s, z := scaleZeroPoint(shrink(mn, i), shrink(mx, i), bits)
	qmax := float32(QMax(bits))
	var sum float64
	switch {
	case pw.p == 2:
		for _, v := range x {
			e := float64(v - fakeQuant1(v, s, z, qmax))
			sum += e * e
		}
	case pw.mant != nil:
		for _, v := range x {
			sum += pw.pow(math.Abs(float64(v - fakeQuant1(v, s, z, qmax))))
		}
	default:
		for _, v := range x {
			if e := math.Abs(float64(v - fakeQuant1(v, s, z, qmax))); e != 0 {
				sum += math.Pow(e, pw.p)
			}
		}
	}
	return sum
}

// Layout of powTable.
const (
	powMantSize = 4096 // Intervals of the mantissa table on [½, 1).
	powExpMin   = -200 // Binary exponents of the exponent table; float32 errors span 2^-149 … 2^128,
	powExpMax   = 200  // anything below 2^powExpMin counts as 0.
)

// powTable computes e^p quickly for the range search, where math.Pow dominated the run time:
// e = m·2^k with m ∈ [½, 1), e^p = m^p·2^(k·p), m^p linearly interpolated on powMantSize intervals
// (relative error < ~1e-7 for 1 ≤ p ≤ 4, i.e. float32 precision like the authors' GPU computation)
// and 2^(k·p) tabulated. It is deterministic. p = 2 uses e·e, and p outside [1, 4] uses math.Pow.
type powTable struct {
	p    float64
	mant []float64 // (½ + j/(2·powMantSize))^p, j = 0 … powMantSize; nil when not used.
	expo []float64 // 2^(k·p), k = powExpMin … powExpMax; expo[0] = 0 (underflow, including e = 0).
}

func newPowTable(p float64) *powTable {
	pw := &powTable{p: p}
	if p == 2 || p < 1 || p > 4 {
		return pw
	}
	pw.mant = make([]float64, powMantSize+1)
	for j := range pw.mant {
		pw.mant[j] = math.Pow(0.5+float64(j)/(2*powMantSize), p)
	}
	pw.expo = make([]float64, powExpMax-powExpMin+1)
	for k := 1; k < len(pw.expo); k++ {
		pw.expo[k] = math.Pow(2, float64(k+powExpMin)*p)
	}
	return pw
}

// pow returns e^p for e ≥ 0 (see powTable). It is branch-free except for huge, Inf or NaN inputs:
// zero and anything below 2^powExpMin map to expo[0] = 0.
func (pw *powTable) pow(e float64) float64 {
	b := math.Float64bits(e)
	ki := int(b>>52&0x7ff) - 1022 - powExpMin
	if ki >= len(pw.expo) {
		return math.Pow(e, pw.p)
	}
	ki = max(ki, 0)
	m := math.Float64frombits(b&(1<<52-1) | 1022<<52) // e = m·2^(k−1022), m ∈ [½, 1).
	t := (m - 0.5) * (2 * powMantSize)
	j := int(t)
	return (pw.mant[j] + (t-float64(j))*(pw.mant[j+1]-pw.mant[j])) * pw.expo[ki]
}
