package brecq

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/support/exceptions"
)

// MinBits and MaxBits bound the supported bit-widths b of the uniform affine quantizers (BRECQ, Li et al., 2021).
const (
	MinBits = 2
	MaxBits = 8
)

// MinScale is the floor applied to every step size s computed from a range, so that s > 0 even for
// an all-zero channel (the authors' code would divide by zero there).
const MinScale = 1e-8

// ValidateBits returns an error unless MinBits ≤ bits ≤ MaxBits.
func ValidateBits(bits int) error {
	if bits < MinBits || bits > MaxBits {
		return errorf("unsupported bit-width %d: must be in [%d, %d]", bits, MinBits, MaxBits)
	}
	return nil
}

// mustBits panics (GoMLX style, inside graph building) if bits is not supported.
func mustBits(bits int) {
	if err := ValidateBits(bits); err != nil {
		exceptions.Panicf("%v", err)
	}
}

// QMax returns the largest integer level 2^b − 1 of a b-bit unsigned grid {0, …, 2^b − 1} (BRECQ, Li et al., 2021).
// It does not validate bits.
func QMax(bits int) int { return (1 << bits) - 1 }

// FakeQuant returns the uniform affine fake quantization of x (BRECQ, Li et al., 2021):
//
//	x̂ = s·(clip(⌊x/s⌉ + z, 0, 2^b − 1) − z)
//
// with ⌊·⌉ implemented as the straight-through estimator round_ste(v) = v + StopGradient(Round(v) − v)
// (round half to even, like torch.round). scale (s) and zeroPoint (z) are either scalars (per-tensor)
// or shaped [out, 1, …, 1] (per output channel, broadcast against x whose axis 0 is the output channel).
// z must hold integers; since z is an integer, the formula is evaluated in the equivalent form
// x̂ = s·clip(⌊x/s⌉, −z, 2^b − 1 − z), which is bit-identical in value and saves two full-size ops.
//
// Gradients, as autograd gives them for the formula above (this is the LSQ gradient of Esser et al.,
// ICLR 2020, §2 — docs/algorithm.md §6 —, extended to an asymmetric grid; the authors' BRECQ code obtains it the same way):
//
//	∂x̂/∂x = 1 if 0 ≤ ⌊x/s⌉ + z ≤ 2^b − 1 (clip bounds inclusive, like torch.clamp), else 0
//	∂x̂/∂s = ⌊x/s⌉ − x/s   inside the grid
//	       = −z            below the grid (x̂ = −s·z)
//	       = 2^b − 1 − z   above the grid (x̂ = s·(2^b − 1 − z))
//
// (the z terms cancel inside the grid). z also receives a gradient (0 inside, −s outside); callers
// keep z frozen (pass a constant or ignore that gradient), as the authors do.
//
// It panics (GoMLX style) if bits is not in [MinBits, MaxBits].
func FakeQuant(x, scale, zeroPoint *graph.Node, bits int) *graph.Node {
	mustBits(bits)
	u := graph.Div(x, scale)
	r := graph.Add(u, graph.StopGradient(graph.Sub(graph.Round(u), u))) // round_ste: exact value Round(u), gradient 1.
	lo := graph.Neg(zeroPoint)
	hi := graph.Sub(graph.Scalar(x.Graph(), zeroPoint.DType(), QMax(bits)), zeroPoint)
	return graph.Mul(scale, clipInclusive(r, lo, hi))
}

// clipInclusive returns clip(v, lo, hi) = min(hi, max(v, lo)); the argument order is chosen so that
// GoMLX's Max/Min VJPs pass the gradient to v also when v equals a bound, like torch.clamp does.
// (GoMLX's Max sends the tie to its first operand and Min to its second.)
func clipInclusive(v, lo, hi *graph.Node) *graph.Node {
	return graph.Min(hi, graph.Max(v, lo))
}

// QParams holds host-side quantizer parameters (BRECQ, Li et al., 2021): bit-width, step sizes s and zero points z.
// Per-tensor quantizers have one value and Shape [] (a scalar); per-channel quantizers have one value
// per output channel and Shape [out, 1, …, 1] (set it with WithShape) or [out].
type QParams struct {
	Bits             int
	Scale, ZeroPoint []float32
	Shape            []int
}

// QParamsFromRange builds quantizer parameters from one (min, max) range per channel (BRECQ, Li et al., 2021):
// the range is first widened to include 0 (min ← min(min, 0), max ← max(max, 0)), then
//
//	s = max((max − min)/(2^b − 1), MinScale),  z = ⌊−min/s⌉ (round half to even, like torch.round)
//
// evaluated in float32 like the authors' code. With one range the result is per-tensor (Shape []);
// with n > 1 ranges it is per-channel with Shape [n] (use WithShape for [n, 1, …, 1]).
// It returns an error for unsupported bits, mismatched or empty slices and NaN bounds.
func QParamsFromRange(min, max []float32, bits int) (QParams, error) {
	if err := ValidateBits(bits); err != nil {
		return QParams{}, err
	}
	if len(min) != len(max) {
		return QParams{}, errorf("QParamsFromRange: %d minima but %d maxima", len(min), len(max))
	}
	if len(min) == 0 {
		return QParams{}, errorf("QParamsFromRange: empty range")
	}
	q := QParams{Bits: bits, Scale: make([]float32, len(min)), ZeroPoint: make([]float32, len(min))}
	for i := range min {
		if isNaN32(min[i]) || isNaN32(max[i]) {
			return QParams{}, errorf("QParamsFromRange: NaN in range %d: [%g, %g]", i, min[i], max[i])
		}
		q.Scale[i], q.ZeroPoint[i] = scaleZeroPoint(min[i], max[i], bits)
	}
	if len(min) == 1 {
		q.Shape = []int{}
	} else {
		q.Shape = []int{len(min)}
	}
	return q, nil
}

// scaleZeroPoint implements the per-range formula of QParamsFromRange without validation.
func scaleZeroPoint(mn, mx float32, bits int) (s, z float32) {
	mn = float32(math.Min(float64(mn), 0))
	mx = float32(math.Max(float64(mx), 0))
	s = (mx - mn) / float32(QMax(bits))
	if !(s >= MinScale) { // Also catches NaN.
		s = MinScale
	}
	z = float32(math.RoundToEven(float64(-mn / s)))
	return s, z
}

func isNaN32(v float32) bool { return v != v }

// Channels returns the number of (s, z) pairs: 1 for per-tensor quantizers.
func (q QParams) Channels() int { return len(q.Scale) }

// Validate checks that bits are supported, Scale and ZeroPoint have the same non-zero length, every
// s > 0, every z is an integer in [0, 2^b − 1], and Shape (if set) has as many elements as Scale.
func (q QParams) Validate() error {
	if err := ValidateBits(q.Bits); err != nil {
		return err
	}
	if len(q.Scale) == 0 || len(q.Scale) != len(q.ZeroPoint) {
		return errorf("QParams: %d scales and %d zero points", len(q.Scale), len(q.ZeroPoint))
	}
	for i, s := range q.Scale {
		z := q.ZeroPoint[i]
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return errorf("QParams: scale[%d] = %g, must be finite and > 0", i, s)
		}
		if z != float32(math.Round(float64(z))) || z < 0 || int(z) > QMax(q.Bits) {
			return errorf("QParams: zero point[%d] = %g, must be an integer in [0, %d]", i, z, QMax(q.Bits))
		}
	}
	if q.Shape != nil {
		n := 1
		for _, d := range q.Shape {
			n *= d
		}
		if n != len(q.Scale) {
			return errorf("QParams: shape %v has %d elements, but there are %d scales", q.Shape, n, len(q.Scale))
		}
	}
	return nil
}

// WithShape returns a copy of q with Shape set to dims, e.g. (out, 1, 1, 1) for a conv weight's
// per-channel quantizer; the product of dims must equal q.Channels().
func (q QParams) WithShape(dims ...int) (QParams, error) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	if n != len(q.Scale) {
		return QParams{}, errorf("QParams.WithShape(%v): %d elements, but there are %d scales", dims, n, len(q.Scale))
	}
	out := q
	out.Scale = slices.Clone(q.Scale)
	out.ZeroPoint = slices.Clone(q.ZeroPoint)
	out.Shape = slices.Clone(dims)
	return out, nil
}

// ChannelShape returns [out, 1, …, 1] of the given rank: the shape of per-channel quantizer
// parameters for a weight of that rank in PyTorch layout (output channel on axis 0).
func ChannelShape(out, rank int) []int {
	dims := make([]int, max(rank, 1))
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = out
	return dims
}

// dims returns q.Shape, defaulting to [] (per-tensor) or [n] (per-channel) when unset.
func (q QParams) dims() []int {
	if q.Shape != nil {
		return q.Shape
	}
	if len(q.Scale) == 1 {
		return []int{}
	}
	return []int{len(q.Scale)}
}

// ScaleTensor returns s as a float32 tensor of shape q.Shape.
func (q QParams) ScaleTensor() *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(slices.Clone(q.Scale), q.dims()...)
}

// ZeroPointTensor returns z as a float32 tensor of shape q.Shape.
func (q QParams) ZeroPointTensor() *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(slices.Clone(q.ZeroPoint), q.dims()...)
}

// channelLen returns how many consecutive elements of x share one (s, z) pair: len(x) for per-tensor
// parameters and len(x)/channels for per-channel ones (output channel on axis 0). It panics on a
// length that is not a multiple of the number of channels.
func (q QParams) channelLen(n int) int {
	c := len(q.Scale)
	if c == 0 || len(q.ZeroPoint) != c {
		panic(fmt.Sprintf("brecq: QParams with %d scales and %d zero points", c, len(q.ZeroPoint)))
	}
	if n%c != 0 {
		panic(fmt.Sprintf("brecq: tensor of %d elements can't be split in %d channels", n, c))
	}
	return n / c
}

// fakeQuant1 quantizes one value exactly as FakeQuant does in float32 (host reference).
func fakeQuant1(x, s, z, qmax float32) float32 {
	r := float32(math.RoundToEven(float64(x / s)))
	r = min(max(r, -z), qmax-z)
	return s * r
}

// FakeQuantHost is the pure-Go reference of FakeQuant: x̂ = s·(clip(⌊x/s⌉ + z, 0, 2^b − 1) − z),
// evaluated in float32 with the same operation order as the graph, so results are bit-identical.
// x is a flat row-major tensor with the output channel on axis 0 when q is per-channel.
// It panics if q is inconsistent with x (use QParams.Validate first for user input).
func FakeQuantHost(x []float32, q QParams) []float32 {
	mustBitsHost(q.Bits)
	chLen := q.channelLen(len(x))
	qmax := float32(QMax(q.Bits))
	out := make([]float32, len(x))
	for i, v := range x {
		c := i / max(chLen, 1)
		out[i] = fakeQuant1(v, q.Scale[c], q.ZeroPoint[c], qmax)
	}
	return out
}

// mustBitsHost panics with a clear message if bits is unsupported (host-side helpers).
func mustBitsHost(bits int) {
	if err := ValidateBits(bits); err != nil {
		panic(err.Error())
	}
}
