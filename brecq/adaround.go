package brecq

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/support/exceptions"
)

// AdaRound stretch parameters of the rectified sigmoid (AdaRound, Nagel et al., 2020, §3; docs/algorithm.md §5).
const (
	AdaRoundZeta  = 1.1
	AdaRoundGamma = -0.1
)

// RectifiedSigmoid returns h(V) = clip(σ(V)·(ζ − γ) + γ, 0, 1) with ζ = 1.1, γ = −0.1
// (AdaRound, Nagel et al., 2020, §3; docs/algorithm.md §5). Its gradient is σ'(V)·(ζ − γ) where 0 < h < 1 and 0 where clipped.
func RectifiedSigmoid(v *graph.Node) *graph.Node {
	h := graph.AddScalar(graph.MulScalar(graph.Sigmoid(v), AdaRoundZeta-AdaRoundGamma), AdaRoundGamma)
	return graph.ClipScalar(h, 0, 1)
}

// InitAdaRoundV returns the initial rounding variables V (one per weight) such that h(V) equals the
// fractional part of w/s (AdaRound, Nagel et al., 2020; the authors' init_alpha):
//
//	frac = w/s − ⌊w/s⌋ ∈ [0, 1),  V = −log((ζ − γ)/(frac − γ) − 1)
//
// so that σ(V) = (frac − γ)/(ζ − γ). V is always finite since frac − γ ≥ 0.1 and frac < 1.
// w is flat row-major with the output channel on axis 0 when q is per-channel. It panics if q is
// inconsistent with w.
func InitAdaRoundV(w []float32, q QParams) []float32 {
	mustBitsHost(q.Bits)
	chLen := q.channelLen(len(w))
	v := make([]float32, len(w))
	for i, x := range w {
		s := q.Scale[i/max(chLen, 1)]
		u := x / s // float32, as in the graph.
		frac := float64(u) - math.Floor(float64(u))
		v[i] = float32(-math.Log((AdaRoundZeta-AdaRoundGamma)/(frac-AdaRoundGamma) - 1))
	}
	return v
}

// RoundingMode selects how AdaRoundWeight rounds the weights; it is fixed when a graph is built.
type RoundingMode int

const (
	// RoundNearest is round-to-nearest: Ŵ = s·(clip(⌊W/s⌉ + z, 0, 2^b − 1) − z) (V unused).
	RoundNearest RoundingMode = iota
	// RoundSoft is the relaxed AdaRound weight used during optimisation, h = RectifiedSigmoid(V).
	RoundSoft
	// RoundHard is the final AdaRound weight, h = 1 where V ≥ 0 else 0.
	RoundHard
	// RoundOff leaves the weights unquantized: Ŵ = W.
	RoundOff
)

// String implements fmt.Stringer.
func (m RoundingMode) String() string {
	switch m {
	case RoundNearest:
		return "nearest"
	case RoundSoft:
		return "soft"
	case RoundHard:
		return "hard"
	case RoundOff:
		return "off"
	}
	return fmt.Sprintf("RoundingMode(%d)", int(m))
}

// AdaRoundWeight returns the quantized weight of AdaRound (AdaRound §3, docs/algorithm.md §5, with the asymmetric grid of
// the authors' code; AdaRound, Nagel et al., 2020):
//
//	Ŵ = s·(clip(⌊W/s⌋ + h(V) + z, 0, 2^b − 1) − z)
//
// with h = RectifiedSigmoid(V) for RoundSoft and h = [V ≥ 0] for RoundHard; RoundNearest uses ⌊W/s⌉
// (round half to even) in place of ⌊W/s⌋ + h(V); RoundOff returns W unchanged. v may be nil for
// RoundNearest and RoundOff. Since z is an integer the value is computed as s·clip(⌊W/s⌋ + h, −z, 2^b−1−z).
// W, s and z are frozen: no gradient flows through ⌊W/s⌋ (Floor/Round have none), only to V through h
// in RoundSoft mode (the clip passes it where 0 ≤ ⌊W/s⌋ + h + z ≤ 2^b − 1, bounds inclusive) and to s
// through the leading multiplication. It panics on unsupported bits or an unknown mode.
func AdaRoundWeight(w, v, scale, zeroPoint *graph.Node, bits int, mode RoundingMode) *graph.Node {
	if mode == RoundOff {
		return w
	}
	mustBits(bits)
	u := graph.StopGradient(graph.Div(w, scale))
	var r *graph.Node
	switch mode {
	case RoundNearest:
		r = graph.StopGradient(graph.Round(u))
	case RoundSoft, RoundHard:
		if v == nil {
			exceptions.Panicf("brecq: AdaRoundWeight: mode %s needs the rounding variables V", mode)
		}
		var h *graph.Node
		if mode == RoundSoft {
			h = RectifiedSigmoid(v)
		} else {
			h = hardRounding(v)
		}
		r = graph.Add(graph.StopGradient(graph.Floor(u)), h)
	default:
		exceptions.Panicf("brecq: AdaRoundWeight: unknown rounding mode %d", int(mode))
	}
	lo := graph.Neg(zeroPoint)
	hi := graph.Sub(graph.Scalar(w.Graph(), zeroPoint.DType(), QMax(bits)), zeroPoint)
	return graph.Mul(scale, clipInclusive(r, lo, hi))
}

// hardRounding returns [V ≥ 0] as a float of V's dtype, without gradient.
func hardRounding(v *graph.Node) *graph.Node {
	ge := graph.GreaterOrEqual(v, graph.ScalarZero(v.Graph(), v.DType()))
	return graph.StopGradient(graph.ConvertDType(ge, v.DType()))
}

// RoundingRegularizer returns the AdaRound rounding regulariser (AdaRound, Nagel et al., 2020, §3; docs/algorithm.md §5)
//
//	f_reg(V) = Σ_i (1 − |2h(V_i) − 1|^β),  h = RectifiedSigmoid,
//
// summed over all elements of v (the caller multiplies by λ). beta is a scalar node (so that the
// annealed β can change every iteration without recompiling); use graph.Scalar for a constant.
//
// It is evaluated as |s|^β = exp((β/2)·log(s² + ε)) with s = 2h − 1 and ε = 1e-38: on the Go backend
// one Exp and one Log per element, where graph.Pow costs a Pow for the value, another for the
// gradient and a branchy Sign (value and gradient take well under half the time). ε changes nothing
// for s ≠ 0 (s is a multiple of 2⁻²⁴, so s² ≥ 2⁻⁴⁸ and s² + ε rounds to s²); at s = 0 (h = 0.5) the
// term is 1 − ε^(β/2), which rounds to 1 in float32 for β ≥ 0.5, and the gradient is 0, finite for
// every β > 0. Elsewhere the gradient is ∂f_reg/∂h = −2β·|s|^(β−1)·sign(s), as for the direct form.
func RoundingRegularizer(v, beta *graph.Node) *graph.Node {
	h := RectifiedSigmoid(v)
	s := graph.AddScalar(graph.MulScalar(h, 2), -1)
	b := beta
	if b.DType() != s.DType() {
		b = graph.ConvertDType(b, s.DType())
	}
	logS2 := graph.Log(graph.AddScalar(graph.Mul(s, s), regEpsilon))
	p := graph.Exp(graph.Mul(logS2, graph.MulScalar(b, 0.5)))
	return graph.ReduceAllSum(graph.OneMinus(p))
}

// regEpsilon keeps log(s²) finite at s = 0 in RoundingRegularizer; it is below half an ulp of the
// smallest non-zero s² = 2⁻⁴⁸, and a normal float32.
const regEpsilon = 1e-38

// BetaSchedule is the annealing of the regulariser exponent β (AdaRound, Nagel et al., 2020, §4.1; the authors'
// LinearTempDecay): β stays at Start during a warm-up of Warmup·Iters iterations, during which the
// rounding term is switched off, then decays linearly to End at iteration Iters.
type BetaSchedule struct {
	Iters      int     // Total iterations T.
	Warmup     float64 // Fraction of T without the rounding term (0.2).
	Start, End float64 // β range (20 → 2).
}

// DefaultBetaSchedule returns the paper's schedule (AdaRound, Nagel et al., 2020) for iters iterations: warm-up 0.2, β 20 → 2.
func DefaultBetaSchedule(iters int) BetaSchedule {
	return BetaSchedule{Iters: iters, Warmup: 0.2, Start: 20, End: 2}
}

// Beta returns β at iteration t (the authors count iterations from 1): with warm = Warmup·Iters,
//
//	β = Start                                       if t < warm
//	β = End + (Start − End)·max(0, 1 − rel_t)       with rel_t = (t − warm)/(Iters − warm), otherwise
//
// so β(warm) = Start, β(Iters) = End and β = End for t > Iters.
func (b BetaSchedule) Beta(t int) float64 {
	warm := b.Warmup * float64(b.Iters)
	ft := float64(t)
	if ft < warm {
		return b.Start
	}
	if ft > float64(b.Iters) || float64(b.Iters) <= warm {
		return b.End
	}
	rel := (ft - warm) / (float64(b.Iters) - warm)
	return b.End + (b.Start-b.End)*math.Max(0, 1-rel)
}

// RegActive reports whether the rounding regulariser is on at iteration t: false during the warm-up
// (t < Warmup·Iters), when the loss is the reconstruction term alone (AdaRound, Nagel et al., 2020).
func (b BetaSchedule) RegActive(t int) bool {
	return float64(t) >= b.Warmup*float64(b.Iters)
}

// HardRoundedWeights returns the final AdaRound weights on the host, Ŵ = s·(clip(⌊W/s⌋ + [V ≥ 0] + z,
// 0, 2^b − 1) − z) (AdaRound, Nagel et al., 2020), bit-identical to AdaRoundWeight(…, RoundHard). w and v are flat
// row-major with the output channel on axis 0 when q is per-channel. It panics if the lengths of w
// and v differ or q is inconsistent with w.
func HardRoundedWeights(w, v []float32, q QParams) []float32 {
	mustBitsHost(q.Bits)
	if len(w) != len(v) {
		panic(fmt.Sprintf("brecq: HardRoundedWeights: %d weights but %d rounding variables", len(w), len(v)))
	}
	chLen := q.channelLen(len(w))
	qmax := float32(QMax(q.Bits))
	out := make([]float32, len(w))
	for i, x := range w {
		c := i / max(chLen, 1)
		s, z := q.Scale[c], q.ZeroPoint[c]
		r := float32(math.Floor(float64(x / s)))
		if v[i] >= 0 {
			r++
		}
		out[i] = s * min(max(r, -z), qmax-z)
	}
	return out
}
