// Package intref is an integer-arithmetic reference forward pass of a
// quantized network exported by brecq/onnx: it reads the exported int8
// weight codes, per-channel weight scales and zero points and the per-tensor
// activation scales and zero points from the .onnx file and runs the network
// with integer convolutions only, showing that those codes and scales are
// enough to deploy it.
//
// Arithmetic, per weight layer with input codes a (uint8 or, for the stem,
// the quantized input image) and weight codes q' (int8):
//
//	acc[o] = 2^F·Σ (a − z_a)·(q'[o,…] − z'_w[o]) + B[o],   B[o] = round(2^F·b[o]/(s_a·s_w[o]))
//
// (the sum in int32, then int64), the layer's output in units of
// s_a·s_w[o]/2^F with F = 16 fractional bits, so the integer bias is within
// 2^−17 of a unit of the product sum. An activation point with scale s and
// zero point z requantizes a ReLU output as
//
//	code = clip(z + ⌊M[o]·max(acc, 0)⌉, 0, 2^b − 1),   M[o] = s_a·s_w[o]/(2^F·s)
//
// with M[o] a fixed-point multiplier m·2^−k (m a 31-bit integer; 128-bit
// product, rounding shift). A residual block adds its two branches in a
// common fixed-point domain of s/2^16 before the ReLU and requantization.
// The head sums the last activation codes over the spatial positions
// (int32), multiplies by the classifier's codes (int32), and only the final
// logits are converted to float: logit[o] = acc[o]·s_a·s_w[o]/(H·W) + b[o].
//
// The network's input is not quantized by brecq; here it is quantized to
// uint8 with InputQuant: for the normalised MNIST / Fashion-MNIST images,
// FromNormalization recovers the pixel codes p exactly, x = s·(p − z_f) with a
// fractional zero point z_f = 255·mean; the stem adds the fractional part as
// the integer term round(2^F·(⌊z_f⌉ − z_f)·Σ_valid (q' − z')), Σ_valid a
// per-position sum of weight codes over the taps inside the image.
package intref

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"sync"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/onnx"
)

// InputQuant quantizes the float input: code = clip(⌊x/Scale + ZeroPoint⌉, 0, 255),
// x̂ = Scale·(code − ZeroPoint). ZeroPoint may be fractional.
type InputQuant struct {
	Scale     float64
	ZeroPoint float64
}

// FromNormalization is the input quantizer of images normalised as
// x = (p/255 − mean)/std from uint8 pixels p: Scale = 1/(255·std),
// ZeroPoint = 255·mean, so the codes are the pixels again and x̂ = x.
func FromNormalization(mean, std float64) InputQuant {
	return InputQuant{Scale: 1 / (255 * std), ZeroPoint: 255 * mean}
}

// fracBits is F, the fractional bits of the accumulators.
const fracBits = 16

// multiplier is a positive real M as m·2^−shift, m < 2^31.
type multiplier struct {
	m     int64
	shift uint
	neg   bool // the real is −M (used by the caller)
}

func newMultiplier(real float64, what string) (multiplier, error) {
	if !(real > 0) || math.IsInf(real, 0) {
		return multiplier{}, fmt.Errorf("intref: %s: multiplier %g is not positive and finite", what, real)
	}
	frac, exp := math.Frexp(real) // real = frac·2^exp, frac ∈ [0.5, 1)
	shift := 31 - exp
	if shift < 1 || shift > 126 {
		return multiplier{}, fmt.Errorf("intref: %s: multiplier %g out of the fixed-point range", what, real)
	}
	m := int64(math.Round(frac * (1 << 31)))
	if m == 1<<31 { // frac rounded up to 1
		m >>= 1
		shift--
	}
	return multiplier{m: m, shift: uint(shift)}, nil
}

// apply returns ⌊x·M⌉ (ties away from zero), with a 128-bit product.
func (k multiplier) apply(x int64) int64 {
	ux := uint64(x)
	if x < 0 {
		ux = uint64(-x)
	}
	hi, lo := bits.Mul64(ux, uint64(k.m))
	if r := k.shift - 1; r < 64 {
		var c uint64
		lo, c = bits.Add64(lo, 1<<r, 0)
		hi += c
	} else {
		hi += 1 << (r - 64)
	}
	var q uint64
	if k.shift >= 64 {
		q = hi >> (k.shift - 64)
	} else {
		q = lo>>k.shift | hi<<(64-k.shift)
	}
	if x < 0 {
		return -int64(q)
	}
	return int64(q)
}

// layer is one weight layer in integer form.
type layer struct {
	l    *models.Layer
	w    []int32   // q' − z' (centred codes), PyTorch layout
	sw   []float64 // per output channel
	bias []float32
	sIn  float64 // scale of the layer's input
	bq   []int64 // round(2^F·b/(s_in·s_w))
	// corr, for the stem when the input zero point is fractional:
	// round(2^F·(⌊z_f⌉ − z_f)·Σ_valid w) per output element.
	corr   []int64
	out    int
	in     int
	kernel int
	stride int
	groups int
}

// act is a quantized activation point.
type act struct {
	bits int
	s    float64
	z    int32
}

// Net is a network in integer form.
type Net struct {
	net    *models.Net
	layers map[string]*layer
	acts   map[string]act
	in     InputQuant
}

// Load reads a QDQ export (brecq/onnx) of net. Every activation point of the
// network must be quantized and every layer's weights stored as codes; the
// error names what is missing.
func Load(path string, net *models.Net, in InputQuant) (*Net, error) {
	m, err := onnx.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !(in.Scale > 0) || !(in.ZeroPoint >= 0) || in.ZeroPoint > 255 {
		return nil, fmt.Errorf("intref: input quantizer scale %g / zero point %g invalid", in.Scale, in.ZeroPoint)
	}
	n := &Net{net: net, layers: map[string]*layer{}, acts: map[string]act{}, in: in}
	get := func(name string) (*onnx.Tensor, error) {
		t := m.Initializer(name)
		if t == nil {
			return nil, fmt.Errorf("intref: %s has no initializer %q (not a quantized brecq export of %s?)", path, name, net.Name)
		}
		return t, nil
	}
	for _, l := range net.Layers() {
		qt, err := get(l.Name + ".weight_quantized")
		if err != nil {
			return nil, err
		}
		q, err := qt.Int8s()
		if err != nil {
			return nil, err
		}
		zt, err := get(l.Name + ".weight_zero_point")
		if err != nil {
			return nil, err
		}
		z, err := zt.Int8s()
		if err != nil {
			return nil, err
		}
		st, err := get(l.Name + ".weight_scale")
		if err != nil {
			return nil, err
		}
		s, err := st.Floats()
		if err != nil {
			return nil, err
		}
		bt, err := get(l.Name + ".bias")
		if err != nil {
			return nil, err
		}
		b, err := bt.Floats()
		if err != nil {
			return nil, err
		}
		if len(s) != l.Out || len(z) != l.Out || len(b) != l.Out || len(q)%l.Out != 0 {
			return nil, fmt.Errorf("intref: layer %s: %d codes, %d scales, %d zero points, %d biases for %d outputs", l.Name, len(q), len(s), len(z), len(b), l.Out)
		}
		il := &layer{l: l, w: make([]int32, len(q)), sw: make([]float64, l.Out), bias: b, out: l.Out, in: l.In, kernel: max(l.Kernel, 1), stride: max(l.Stride, 1), groups: max(l.Groups, 1)}
		per := len(q) / l.Out
		for i, c := range q {
			il.w[i] = int32(c) - int32(z[i/per])
		}
		for o := range s {
			il.sw[o] = float64(s[o])
		}
		if l.Kind == models.Conv && per != l.In/il.groups*il.kernel*il.kernel {
			return nil, fmt.Errorf("intref: layer %s: %d weights per output channel, want %d", l.Name, per, l.In/il.groups*il.kernel*il.kernel)
		}
		n.layers[l.Name] = il
	}
	for _, b := range net.Blocks {
		var pts []string
		switch b.Kind {
		case models.Stem:
			pts = []string{b.Name}
		case models.Basic:
			pts = []string{b.Layers[0].Name, b.Name}
		case models.Head:
		default:
			return nil, fmt.Errorf("intref: block %s: block kind %d is not supported (stem, basic, head)", b.Name, b.Kind)
		}
		for _, p := range pts {
			bits, err := strconv.Atoi(m.Metadata["brecq.abits."+p])
			if err != nil {
				return nil, fmt.Errorf("intref: activation point %s is not quantized in %s: the integer reference needs every activation quantized", p, path)
			}
			st, err := get(p + ".act_scale")
			if err != nil {
				return nil, err
			}
			s, err := st.Floats()
			if err != nil {
				return nil, err
			}
			zt, err := get(p + ".act_zero_point")
			if err != nil {
				return nil, err
			}
			z, err := zt.Uint8s()
			if err != nil {
				return nil, err
			}
			if len(s) != 1 || len(z) != 1 {
				return nil, fmt.Errorf("intref: activation point %s: per-tensor scale and zero point expected", p)
			}
			n.acts[p] = act{bits: bits, s: float64(s[0]), z: int32(z[0])}
		}
	}
	// Input scale of every layer, its integer bias and the stem's correction.
	sIn := in.Scale
	for _, b := range net.Blocks {
		switch b.Kind {
		case models.Stem:
			n.layers[b.Layers[0].Name].sIn = sIn
			sIn = n.acts[b.Name].s
		case models.Basic:
			n.layers[b.Layers[0].Name].sIn = sIn
			n.layers[b.Layers[1].Name].sIn = n.acts[b.Layers[0].Name].s
			if b.Shortcut != nil {
				n.layers[b.Shortcut.Name].sIn = sIn
			}
			sIn = n.acts[b.Name].s
		case models.Head:
			n.layers[b.Layers[0].Name].sIn = sIn
		}
	}
	for _, l := range n.layers {
		l.bq = make([]int64, l.out)
		for o := range l.bq {
			l.bq[o] = int64(math.Round(math.Ldexp(float64(l.bias[o])/(l.sIn*l.sw[o]), fracBits)))
		}
	}
	if d := math.Round(in.ZeroPoint) - in.ZeroPoint; d != 0 {
		stem := n.layers[net.Blocks[0].Layers[0].Name]
		ones := fmap{c: net.InC, h: net.InH, w: net.InW, v: make([]int32, net.InC*net.InH*net.InW), s: in.Scale}
		for i := range ones.v {
			ones.v[i] = 1
		}
		sum, _, _, err := stem.sums(ones)
		if err != nil {
			return nil, err
		}
		k, err := newMultiplier(math.Abs(math.Ldexp(d, fracBits)), "input zero point")
		if err != nil {
			return nil, err
		}
		if d < 0 {
			k.neg = true
		}
		stem.corr = make([]int64, len(sum))
		for i, v := range sum {
			stem.corr[i] = k.apply(int64(v))
			if k.neg {
				stem.corr[i] = -stem.corr[i]
			}
		}
	}
	return n, nil
}

// fmap is a feature map of one image: centred codes (code − z) at scale s.
type fmap struct {
	c, h, w int
	v       []int32
	s       float64
}

// conv returns acc = 2^F·Σ x·w + B (+ the stem's correction) per output
// element, output channel major, in units of s_x·s_w[o]/2^F, and the output
// geometry.
func (l *layer) conv(x fmap) (acc []int64, ho, wo int, err error) {
	sum, ho, wo, err := l.sums(x)
	if err != nil {
		return nil, 0, 0, err
	}
	acc = make([]int64, len(sum))
	hw := ho * wo
	for i, v := range sum {
		acc[i] = int64(v)<<fracBits + l.bq[i/hw]
		if l.corr != nil {
			acc[i] += l.corr[i]
		}
	}
	return acc, ho, wo, nil
}

// sums returns Σ x·w per output element (int32, no bias).
func (l *layer) sums(x fmap) (acc []int32, ho, wo int, err error) {
	k, st, p := l.kernel, l.stride, (l.kernel-1)/2
	ho, wo = (x.h+2*p-k)/st+1, (x.w+2*p-k)/st+1
	if x.c != l.in {
		return nil, 0, 0, fmt.Errorf("intref: layer %s: input has %d channels, want %d", l.l.Name, x.c, l.in)
	}
	acc = make([]int32, l.out*ho*wo)
	cinG, coutG := l.in/l.groups, l.out/l.groups
	for o := 0; o < l.out; o++ {
		g := o / coutG
		a := acc[o*ho*wo : (o+1)*ho*wo]
		for ci := 0; ci < cinG; ci++ {
			c := g*cinG + ci
			xc := x.v[c*x.h*x.w : (c+1)*x.h*x.w]
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					wv := l.w[((o*cinG+ci)*k+ky)*k+kx]
					if wv == 0 {
						continue
					}
					for oy := 0; oy < ho; oy++ {
						iy := oy*st + ky - p
						if iy < 0 || iy >= x.h {
							continue
						}
						row := xc[iy*x.w : (iy+1)*x.w]
						ar := a[oy*wo : (oy+1)*wo]
						// valid ox: 0 ≤ ox·st + kx − p < x.w
						lo := 0
						for lo < wo && lo*st+kx-p < 0 {
							lo++
						}
						hi := wo
						for hi > lo && (hi-1)*st+kx-p >= x.w {
							hi--
						}
						if st == 1 {
							off := kx - p
							src := row[lo+off : hi+off]
							dst := ar[lo:hi]
							for i, v := range src {
								dst[i] += wv * v
							}
						} else {
							for ox := lo; ox < hi; ox++ {
								ar[ox] += wv * row[ox*st+kx-p]
							}
						}
					}
				}
			}
		}
	}
	return acc, ho, wo, nil
}

// requant turns per-channel accumulators at scales sIn[o] into the centred
// codes of point a after a ReLU.
func requant(acc []int64, out, hw int, sIn func(o int) float64, a act, what string) (fmap, error) {
	f := fmap{c: out, v: make([]int32, len(acc)), s: a.s}
	qmax := int64(1)<<a.bits - 1
	for o := 0; o < out; o++ {
		m, err := newMultiplier(math.Ldexp(sIn(o)/a.s, -fracBits), what)
		if err != nil {
			return f, err
		}
		for i := o * hw; i < (o+1)*hw; i++ {
			v := max(acc[i], 0)
			c := min(max(int64(a.z)+m.apply(v), 0), qmax)
			f.v[i] = int32(c) - a.z
		}
	}
	return f, nil
}

const residualFrac = 16 // fractional bits of the residual sum

// Forward runs n images x (NCHW float32, flat) and returns the logits [n, classes].
func (n *Net) Forward(x []float32, images int) ([]float32, error) {
	net := n.net
	per := net.InC * net.InH * net.InW
	if len(x) != images*per {
		return nil, fmt.Errorf("intref: %d inputs for %d images of %d values", len(x), images, per)
	}
	out := make([]float32, images*net.Classes)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	workers := 2
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				logits, err := n.forward1(x[i*per : (i+1)*per])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				copy(out[i*net.Classes:], logits)
			}
		}()
	}
	for i := 0; i < images; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, firstErr
}

func (n *Net) forward1(x []float32) ([]float32, error) {
	net := n.net
	h := fmap{c: net.InC, h: net.InH, w: net.InW, v: make([]int32, len(x)), s: n.in.Scale}
	zi := int32(math.Round(n.in.ZeroPoint))
	for i, v := range x {
		c := int32(math.RoundToEven(float64(v)/n.in.Scale + n.in.ZeroPoint))
		h.v[i] = min(max(c, 0), 255) - zi
	}
	for _, b := range net.Blocks {
		switch b.Kind {
		case models.Stem:
			l := n.layers[b.Layers[0].Name]
			acc, ho, wo, err := l.conv(h)
			if err != nil {
				return nil, err
			}
			y, err := requant(acc, l.out, ho*wo, func(o int) float64 { return h.s * l.sw[o] }, n.acts[b.Name], b.Name)
			if err != nil {
				return nil, err
			}
			y.h, y.w = ho, wo
			h = y
		case models.Basic:
			l1, l2 := n.layers[b.Layers[0].Name], n.layers[b.Layers[1].Name]
			acc1, ho, wo, err := l1.conv(h)
			if err != nil {
				return nil, err
			}
			y, err := requant(acc1, l1.out, ho*wo, func(o int) float64 { return h.s * l1.sw[o] }, n.acts[b.Layers[0].Name], b.Layers[0].Name)
			if err != nil {
				return nil, err
			}
			y.h, y.w = ho, wo
			acc2, ho2, wo2, err := l2.conv(y)
			if err != nil {
				return nil, err
			}
			a := n.acts[b.Name]
			hw := ho2 * wo2
			// Shortcut in units of s_sc[o]: the block input itself, or the 1×1 conv.
			sc := make([]int64, len(h.v)) // identity: the input codes, in units of s_x/2^F
			for i, v := range h.v {
				sc[i] = int64(v) << fracBits
			}
			scScale := func(int) float64 { return h.s }
			if b.Shortcut != nil {
				ls := n.layers[b.Shortcut.Name]
				accS, hs, ws, err := ls.conv(h)
				if err != nil {
					return nil, err
				}
				if hs*ws != hw {
					return nil, fmt.Errorf("intref: block %s: shortcut %dx%d, main branch %dx%d", b.Name, hs, ws, ho2, wo2)
				}
				sc, scScale = accS, func(o int) float64 { return h.s * ls.sw[o] }
			} else if len(sc) != len(acc2) {
				return nil, fmt.Errorf("intref: block %s: identity shortcut of %d values, main branch %d", b.Name, len(sc), len(acc2))
			}
			z := fmap{c: l2.out, h: ho2, w: wo2, v: make([]int32, len(acc2)), s: a.s}
			qmax := int64(1)<<a.bits - 1
			half := int64(1) << (residualFrac - 1)
			for o := 0; o < l2.out; o++ {
				m2, err := newMultiplier(math.Ldexp(y.s*l2.sw[o]/a.s, residualFrac-fracBits), b.Name)
				if err != nil {
					return nil, err
				}
				ms, err := newMultiplier(math.Ldexp(scScale(o)/a.s, residualFrac-fracBits), b.Name+" shortcut")
				if err != nil {
					return nil, err
				}
				for i := o * hw; i < (o+1)*hw; i++ {
					v := max(m2.apply(acc2[i])+ms.apply(sc[i]), 0)
					c := min(max(int64(a.z)+(v+half)>>residualFrac, 0), qmax)
					z.v[i] = int32(c) - a.z
				}
			}
			h = z
		case models.Head:
			l := n.layers[b.Layers[0].Name]
			hw := h.h * h.w
			sum := make([]int64, h.c)
			for c := 0; c < h.c; c++ {
				for _, v := range h.v[c*hw : (c+1)*hw] {
					sum[c] += int64(v)
				}
			}
			if l.in != h.c {
				return nil, fmt.Errorf("intref: classifier %s: %d inputs, %d channels", l.l.Name, l.in, h.c)
			}
			logits := make([]float32, l.out)
			for o := 0; o < l.out; o++ {
				var acc int64
				for c := 0; c < l.in; c++ {
					acc += sum[c] * int64(l.w[o*l.in+c])
				}
				logits[o] = float32(float64(acc)*h.s*l.sw[o]/float64(hw) + float64(l.bias[o]))
			}
			return logits, nil
		default:
			return nil, fmt.Errorf("intref: block %s: block kind %d is not supported", b.Name, b.Kind)
		}
	}
	return nil, fmt.Errorf("intref: network %s has no head", net.Name)
}
