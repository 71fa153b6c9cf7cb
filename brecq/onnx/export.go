// Package onnx exports brecq's networks as ONNX models: the BN-folded
// full-precision network, or the quantized network in QDQ form
// (QuantizeLinear / DequantizeLinear pairs) that ONNX Runtime, TensorRT and
// OpenVINO consume.
//
// The graph is built by walking the models.Net description block by block
// (every block kind of models: stem with its max-pool, basic, bottleneck,
// RegNetX res-bottleneck, inverted residual, chain, head), the same walk as
// models.Net.Forward, so every architecture of models.Archs exports,
// with activation QDQ at exactly the points where the tool's own fake-quant
// evaluation (brecq.QNet under a brecq.Mode) quantizes. Opset 13 (the first
// with per-axis DequantizeLinear), IR version 7. Input "input" [N, C, H, W]
// float32, output "logits" [N, classes] float32.
//
// Weights (per output channel, axis 0). The tool's weight grid is the
// asymmetric unsigned grid q ∈ {0, …, 2^b − 1} with zero point z, ŵ = s·(q − z).
// The export stores q' = q − 2^(b−1) as int8 with zero point z' = z − 2^(b−1),
// so q' lies in the signed b-bit range [−2^(b−1), 2^(b−1) − 1] and
// DequantizeLinear gives s·(q' − z') = s·(q − z) = ŵ exactly. The bias stays
// float32 (the tool adds a float bias).
//
// Activations (per tensor). A quantized point x ↦ s·(clip(⌊x/s⌉ + z, 0, 2^b − 1) − z)
// is exported as QuantizeLinear (uint8, zero point z) → DequantizeLinear; for
// b < 8 a Clip to [s·(0 − z), s·(2^b − 1 − z)] comes first, since uint8
// saturation only clips to [0, 255]. A point whose values can be negative (a
// linear projection, an inverted residual's sum) needs nothing else: the
// tool's activation grid is the same asymmetric unsigned grid, its range
// widened to include 0, so such a point simply has z > 0 and its uint8 codes
// below z dequantize to s·(q − z) < 0.
package onnx

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/safetensors"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// Opset is the ONNX operator set of every export.
const Opset = opsetDefault

// LayerWeights are one weight layer's exported values: either FP (Weight set,
// Bits 0) or quantized (Codes, Scale, ZeroPoint, Bits).
type LayerWeights struct {
	Shape  []int     // PyTorch layout: [out, in/groups, k, k] or [out, in]
	Bias   []float32 // [out]; BN folded in
	Weight []float32 // FP weight (Bits == 0)
	// Bits b ∈ [2, 8] of a quantized layer; Codes q ∈ {0, …, 2^b − 1} per
	// weight; Scale s and (integer) ZeroPoint z per output channel: ŵ = s·(q − z).
	Bits      int
	Codes     []uint8
	Scale     []float32
	ZeroPoint []float32
}

// ActQuant is a quantized activation point: x̂ = s·(clip(⌊x/s⌉ + z, 0, 2^b − 1) − z).
type ActQuant struct {
	Bits      int
	Scale     float32
	ZeroPoint float32
}

// Spec is what an export needs: the network description, every layer's
// weights and the quantized activation points (absent points stay FP).
type Spec struct {
	Net      *models.Net
	Layers   map[string]*LayerWeights
	Acts     map[string]ActQuant
	Metadata map[string]string
}

// Quantized reports whether any weight or activation is quantized.
func (s *Spec) Quantized() bool {
	for _, l := range s.Layers {
		if l.Bits != 0 {
			return true
		}
	}
	return len(s.Acts) > 0
}

// FromFP is the full-precision network with BatchNorm folded (brecq.FoldBN:
// W' = a·W, b' = a·(b − μ) + β, a = γ/√(σ² + ε)).
func FromFP(net *models.Net, params models.Params) (*Spec, error) {
	fp, err := brecq.FoldBN(net, params)
	if err != nil {
		return nil, err
	}
	return FromQNet(&brecq.QNet{Net: net, FP: fp}, brecq.FPMode())
}

// FromQNet takes the network q under mode, as q's evaluator computes it: each
// layer's weights rounded by mode.Weight(layer) — RoundNearest
// q = clip(⌊w/s⌉ + z, 0, 2^b − 1), RoundHard q = clip(⌊w/s⌋ + 1[V ≥ 0] + z, 0, 2^b − 1),
// RoundOff FP — both evaluated in float32 as the graph does; every point with
// mode.Acts[p] and 0 < ABits[p] < 32 quantized with q.AQ[p]. RoundSoft (the
// relaxed rounding of the optimisation) is not a deployable network and is
// an error naming the layer.
func FromQNet(q *brecq.QNet, mode brecq.Mode) (*Spec, error) {
	s := &Spec{Net: q.Net, Layers: map[string]*LayerWeights{}, Acts: map[string]ActQuant{}, Metadata: map[string]string{}}
	for _, l := range q.Net.Layers() {
		wt, bt := q.FP[l.Name+".weight"], q.FP[l.Name+".bias"]
		if wt == nil || bt == nil {
			return nil, fmt.Errorf("onnx: layer %s: no BN-folded weight or bias", l.Name)
		}
		w := tensors.MustCopyFlatData[float32](wt)
		lw := &LayerWeights{Shape: wt.Shape().Dimensions, Bias: tensors.MustCopyFlatData[float32](bt)}
		m := mode.Weight(l.Name)
		switch m {
		case brecq.RoundOff:
			lw.Weight = w
		case brecq.RoundNearest, brecq.RoundHard:
			wq, ok := q.WQ[l.Name]
			if !ok {
				return nil, fmt.Errorf("onnx: layer %s: rounding %s but no weight quantizer", l.Name, m)
			}
			if err := wq.Validate(); err != nil {
				return nil, fmt.Errorf("onnx: layer %s: %w", l.Name, err)
			}
			var v []float32
			if m == brecq.RoundHard {
				if v = q.V[l.Name]; len(v) != len(w) {
					return nil, fmt.Errorf("onnx: layer %s: rounding %s needs its %d AdaRound variables, has %d", l.Name, m, len(w), len(v))
				}
			}
			if len(w)%len(wq.Scale) != 0 || (len(wq.Scale) != 1 && len(wq.Scale) != lw.Shape[0]) {
				return nil, fmt.Errorf("onnx: layer %s: %d weights, %d scales", l.Name, len(w), len(wq.Scale))
			}
			lw.Bits, lw.Codes = wq.Bits, weightCodes(w, v, wq)
			lw.Scale, lw.ZeroPoint = perChannel(wq.Scale, lw.Shape[0]), perChannel(wq.ZeroPoint, lw.Shape[0])
		default:
			return nil, fmt.Errorf("onnx: layer %s: rounding mode %s cannot be exported (only nearest, hard AdaRound or FP)", l.Name, m)
		}
		s.Layers[l.Name] = lw
	}
	for _, p := range brecq.ActPoints(q.Net) {
		bits := q.ABits[p]
		if !mode.Acts[p] || bits <= 0 || bits >= 32 {
			continue
		}
		aq, ok := q.AQ[p]
		if !ok {
			return nil, fmt.Errorf("onnx: activation point %s is quantized (%d bits) but has no quantizer", p, bits)
		}
		if len(aq.Scale) != 1 || len(aq.ZeroPoint) != 1 {
			return nil, fmt.Errorf("onnx: activation point %s: per-channel activation quantizers (%d scales) are not supported", p, len(aq.Scale))
		}
		if aq.Bits != bits {
			// The graph quantizes at ABits; the quantizer's own Bits is informational.
			aq.Bits = bits
		}
		if err := aq.Validate(); err != nil {
			return nil, fmt.Errorf("onnx: activation point %s: %w", p, err)
		}
		s.Acts[p] = ActQuant{Bits: bits, Scale: aq.Scale[0], ZeroPoint: aq.ZeroPoint[0]}
	}
	return s, nil
}

func perChannel(v []float32, out int) []float32 {
	if len(v) == out {
		return append([]float32(nil), v...)
	}
	r := make([]float32, out)
	for i := range r {
		r[i] = v[0]
	}
	return r
}

// weightCodes rounds w to the grid of wq in float32 exactly as
// brecq.FakeQuant (v == nil: ⌊w/s⌉, half to even) and brecq.AdaRoundWeight
// (RoundHard: ⌊w/s⌋ + 1[V ≥ 0]) do, and returns q = clip(r, −z, 2^b−1−z) + z.
func weightCodes(w, v []float32, wq brecq.QParams) []uint8 {
	per := len(w) / len(wq.Scale)
	qmax := float32(brecq.QMax(wq.Bits))
	codes := make([]uint8, len(w))
	for i, x := range w {
		c := i / per
		s, z := wq.Scale[c], wq.ZeroPoint[c]
		u := x / s
		var r float32
		if v == nil {
			r = float32(math.RoundToEven(float64(u)))
		} else {
			r = float32(math.Floor(float64(u)))
			if v[i] >= 0 {
				r++
			}
		}
		r = min(max(r, -z), qmax-z)
		codes[i] = uint8(r + z)
	}
	return codes
}

// Dequantized returns the layer's weight as the network uses it: W for an FP
// layer, s·(q − z) per output channel for a quantized one.
func (l *LayerWeights) Dequantized() []float32 {
	if l.Bits == 0 {
		return l.Weight
	}
	per := len(l.Codes) / len(l.Scale)
	out := make([]float32, len(l.Codes))
	for i, q := range l.Codes {
		c := i / per
		out[i] = l.Scale[c] * (float32(q) - l.ZeroPoint[c])
	}
	return out
}

// builder accumulates the graph.
type builder struct {
	m    *Model
	spec *Spec
	n    int
	outs map[string]bool // node outputs so far
	// relu6 holds the names of the shared Clip bounds 0 and 6 once added.
	relu6 [2]string
}

func (b *builder) node(op string, inputs []string, output string, attrs ...Attr) string {
	b.n++
	if b.outs == nil {
		b.outs = map[string]bool{}
	}
	if b.outs[output] { // a block and its layer may share a name: keep outputs unique
		output = fmt.Sprintf("%s_%d", output, b.n)
	}
	b.outs[output] = true
	b.m.Nodes = append(b.m.Nodes, &Node{Name: fmt.Sprintf("%s_%d", op, b.n), Op: op, Inputs: inputs, Outputs: []string{output}, Attrs: attrs})
	return output
}

func (b *builder) init(t *Tensor) string {
	b.m.Initializers = append(b.m.Initializers, t)
	return t.Name
}

// weight adds the layer's weight (FP, or int8 codes + DequantizeLinear) and
// returns the name of the float weight tensor.
func (b *builder) weight(l *models.Layer) (string, error) {
	lw, ok := b.spec.Layers[l.Name]
	if !ok {
		return "", fmt.Errorf("onnx: layer %s has no weights in the export", l.Name)
	}
	n := 1
	for _, d := range lw.Shape {
		n *= d
	}
	if len(lw.Shape) == 0 || lw.Shape[0] != l.Out || len(lw.Bias) != l.Out {
		return "", fmt.Errorf("onnx: layer %s: weight shape %v / %d biases, want %d output channels", l.Name, lw.Shape, len(lw.Bias), l.Out)
	}
	if lw.Bits == 0 {
		if len(lw.Weight) != n {
			return "", fmt.Errorf("onnx: layer %s: %d FP weights for shape %v", l.Name, len(lw.Weight), lw.Shape)
		}
		return b.init(FloatTensor(l.Name+".weight", lw.Shape, lw.Weight)), nil
	}
	if lw.Bits < brecq.MinBits || lw.Bits > 8 {
		return "", fmt.Errorf("onnx: layer %s: %d-bit weights cannot be stored as int8 codes", l.Name, lw.Bits)
	}
	if len(lw.Codes) != n || len(lw.Scale) != l.Out || len(lw.ZeroPoint) != l.Out {
		return "", fmt.Errorf("onnx: layer %s: %d codes, %d scales, %d zero points for shape %v", l.Name, len(lw.Codes), len(lw.Scale), len(lw.ZeroPoint), lw.Shape)
	}
	off := 1 << (lw.Bits - 1)
	qmax := brecq.QMax(lw.Bits)
	codes := make([]int8, n)
	for i, q := range lw.Codes {
		if int(q) > qmax {
			return "", fmt.Errorf("onnx: layer %s: code %d at %d outside the %d-bit grid", l.Name, q, i, lw.Bits)
		}
		codes[i] = int8(int(q) - off)
	}
	zp := make([]int8, l.Out)
	for c, z := range lw.ZeroPoint {
		if z != float32(math.Round(float64(z))) || z < 0 || int(z) > qmax {
			return "", fmt.Errorf("onnx: layer %s: zero point %g of channel %d is not an integer in [0, %d]", l.Name, z, c, qmax)
		}
		zp[c] = int8(int(z) - off)
	}
	q := b.init(Int8Tensor(l.Name+".weight_quantized", lw.Shape, codes))
	s := b.init(FloatTensor(l.Name+".weight_scale", []int{l.Out}, lw.Scale))
	z := b.init(Int8Tensor(l.Name+".weight_zero_point", []int{l.Out}, zp))
	return b.node("DequantizeLinear", []string{q, s, z}, l.Name+".weight_dequantized", IntAttr("axis", 0)), nil
}

// layer applies weight layer l to x: Conv (pads (k−1)/2, strides, group) or
// Gemm (transB = 1), each with its float bias.
func (b *builder) layer(l *models.Layer, x string) (string, error) {
	w, err := b.weight(l)
	if err != nil {
		return "", err
	}
	bias := b.init(FloatTensor(l.Name+".bias", []int{l.Out}, b.spec.Layers[l.Name].Bias))
	switch l.Kind {
	case models.Conv:
		if l.Kernel < 1 || l.Stride < 1 || l.Groups < 1 || l.In%l.Groups != 0 {
			return "", fmt.Errorf("onnx: layer %s: unsupported convolution (kernel %d, stride %d, groups %d, %d inputs)", l.Name, l.Kernel, l.Stride, l.Groups, l.In)
		}
		p := int64((l.Kernel - 1) / 2)
		k, st := int64(l.Kernel), int64(l.Stride)
		return b.node("Conv", []string{x, w, bias}, l.Name+".out",
			IntsAttr("kernel_shape", k, k), IntsAttr("pads", p, p, p, p), IntsAttr("strides", st, st),
			IntsAttr("dilations", 1, 1), IntAttr("group", int64(l.Groups))), nil
	case models.Linear:
		return b.node("Gemm", []string{x, w, bias}, l.Name+".out", IntAttr("transB", 1)), nil
	}
	return "", fmt.Errorf("onnx: layer %s: layer kind %d is not supported by the ONNX export (Conv, Linear)", l.Name, l.Kind)
}

// act quantizes x at point p when the spec quantizes it.
func (b *builder) act(p, x string) (string, error) {
	a, ok := b.spec.Acts[p]
	if !ok {
		return x, nil
	}
	if a.Bits < brecq.MinBits || a.Bits > 8 {
		return "", fmt.Errorf("onnx: activation point %s: %d bits cannot be stored as uint8", p, a.Bits)
	}
	qmax := brecq.QMax(a.Bits)
	if !(a.Scale > 0) || math.IsInf(float64(a.Scale), 0) || a.ZeroPoint != float32(math.Round(float64(a.ZeroPoint))) || a.ZeroPoint < 0 || int(a.ZeroPoint) > qmax {
		return "", fmt.Errorf("onnx: activation point %s: scale %g / zero point %g invalid for %d bits", p, a.Scale, a.ZeroPoint, a.Bits)
	}
	s := b.init(FloatTensor(p+".act_scale", nil, []float32{a.Scale}))
	z := b.init(Uint8Tensor(p+".act_zero_point", nil, []uint8{uint8(a.ZeroPoint)}))
	if a.Bits < 8 {
		lo := b.init(FloatTensor(p+".act_min", nil, []float32{a.Scale * (0 - a.ZeroPoint)}))
		hi := b.init(FloatTensor(p+".act_max", nil, []float32{a.Scale * (float32(qmax) - a.ZeroPoint)}))
		x = b.node("Clip", []string{x, lo, hi}, p+".act_clipped")
	}
	q := b.node("QuantizeLinear", []string{x, s, z}, p+".act_quantized")
	return b.node("DequantizeLinear", []string{q, s, z}, p+".act"), nil
}

// supportedBlocks are the block kinds Build exports, as models names them.
var supportedBlocks = []models.BlockKind{models.Stem, models.Basic, models.Head, models.Bottleneck, models.ResBottleneck,
	models.InvertedResidual, models.Chain}

func supportedBlockList() string {
	s := ""
	for i, k := range supportedBlocks {
		if i > 0 {
			s += ", "
		}
		s += k.String()
	}
	return s
}

// activate applies activation a to x: Relu for ReLU, Clip(x, 0, 6) for
// ReLU6, nothing for the identity; name names the output.
func (b *builder) activate(a models.Activation, x, name string) (string, error) {
	switch a {
	case models.NoAct:
		return x, nil
	case models.ReLU:
		return b.node("Relu", []string{x}, name+".relu"), nil
	case models.ReLU6:
		if b.relu6[0] == "" {
			b.relu6[0] = b.init(FloatTensor("relu6_min", nil, []float32{0}))
			b.relu6[1] = b.init(FloatTensor("relu6_max", nil, []float32{6}))
		}
		return b.node("Clip", []string{x, b.relu6[0], b.relu6[1]}, name+".relu6"), nil
	}
	return "", fmt.Errorf("onnx: %s: activation %s is not supported by the ONNX export (identity, ReLU, ReLU6)", name, a)
}

// block emits one body block on its input h, the same computation as
// models.Net.ForwardBlock: for each layer Conv → activation → [QDQ at the
// layer's point]; the residual input h (through the shortcut Conv when set)
// added; the block's activation; [QDQ at the block's point]; a 3×3 stride-2
// MaxPool with padding 1 (PyTorch's MaxPool2d(3, 2, 1)) when the block has one.
func (b *builder) block(blk *models.Block, h string) (string, error) {
	y := h
	var err error
	for _, l := range blk.Layers {
		if y, err = b.layer(l, y); err != nil {
			return "", err
		}
		if y, err = b.activate(l.Act, y, l.Name); err != nil {
			return "", err
		}
		if l.Point {
			if y, err = b.act(l.Name, y); err != nil {
				return "", err
			}
		}
	}
	if blk.Residual {
		sc := h
		if blk.Shortcut != nil {
			if sc, err = b.layer(blk.Shortcut, h); err != nil {
				return "", err
			}
		}
		y = b.node("Add", []string{y, sc}, blk.Name+".add")
	}
	if y, err = b.activate(blk.Act, y, blk.Name); err != nil {
		return "", err
	}
	if blk.OutPoint {
		if y, err = b.act(blk.Name, y); err != nil {
			return "", err
		}
	}
	if blk.MaxPool {
		y = b.node("MaxPool", []string{y}, blk.Name+".maxpool",
			IntsAttr("kernel_shape", 3, 3), IntsAttr("strides", 2, 2), IntsAttr("pads", 1, 1, 1, 1))
	}
	return y, nil
}

// Build turns the spec into an ONNX model by walking its network block by
// block as models.Net.Forward does (see builder.block): every body block —
// stem, basic, bottleneck, res-bottleneck, inverted-residual, chain — is its
// layers (Conv with pads (k−1)/2, strides and group; Relu or Clip(0, 6) for
// ReLU6; QDQ at each declared point), the residual Add and the block's
// activation and point, and the stem's MaxPool; the head is
// GlobalAveragePool → Flatten → Gemm → "logits". A network that fails
// models.Net.Validate, an unknown block, layer or activation kind is an
// error naming it.
func Build(s *Spec) (*Model, error) {
	net := s.Net
	if net == nil {
		return nil, fmt.Errorf("onnx: no network description")
	}
	if err := net.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	m := &Model{Opset: Opset, Name: net.Name, Metadata: map[string]string{}}
	for k, v := range s.Metadata {
		m.Metadata[k] = v
	}
	b := &builder{m: m, spec: s}
	m.Inputs = []ValueInfo{{Name: "input", Dims: []int{-1, net.InC, net.InH, net.InW}}}
	m.Outputs = []ValueInfo{{Name: "logits", Dims: []int{-1, net.Classes}}}
	for p := range s.Acts {
		if !contains(brecq.ActPoints(net), p) {
			return nil, fmt.Errorf("onnx: activation point %s is not a point of %s", p, net.Name)
		}
	}
	h := "input"
	var err error
	for _, blk := range net.Blocks {
		if !slices.Contains(supportedBlocks, blk.Kind) {
			return nil, fmt.Errorf("onnx: block %s: block kind %d is not supported by the ONNX export (supported: %s)", blk.Name, int(blk.Kind), supportedBlockList())
		}
		if blk.Kind != models.Head {
			if h, err = b.block(blk, h); err != nil {
				return nil, err
			}
			continue
		}
		// Validate has checked: the head is last and holds one Linear layer.
		p := b.node("GlobalAveragePool", []string{h}, blk.Name+".pool")
		p = b.node("Flatten", []string{p}, blk.Name+".flat", IntAttr("axis", 1))
		if _, err := b.layer(blk.Layers[0], p); err != nil {
			return nil, err
		}
		m.Nodes[len(m.Nodes)-1].Outputs[0] = "logits" // the Gemm's output is the graph's
	}
	// Metadata: what the graph holds, so readers (the integer reference) need nothing else.
	format := "fp"
	if s.Quantized() {
		format = "qdq"
	}
	m.Metadata["brecq.format"] = format
	m.Metadata["brecq.model"] = net.Name
	m.Metadata["brecq.weight_codes"] = "int8 q' = q - 2^(b-1), zero point z - 2^(b-1); dequantized s*(q'-z') = s*(q-z)"
	for name, lw := range s.Layers {
		if lw.Bits != 0 {
			m.Metadata["brecq.wbits."+name] = strconv.Itoa(lw.Bits)
		}
	}
	for p, a := range s.Acts {
		m.Metadata["brecq.abits."+p] = strconv.Itoa(a.Bits)
	}
	return m, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// WriteFile builds the model of s and writes it to path atomically (a
// temporary file in the same folder, synced, renamed into place).
func WriteFile(path string, s *Spec) error {
	m, err := Build(s)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, m.Marshal())
}

// Sizes are a network's weight storage in bytes.
type Sizes struct {
	// FP is every weight and bias as float32.
	FP int
	// Packed is each quantized layer's codes packed at b bits per weight
	// (⌈n·b/8⌉ bytes), its per-channel scales (float32) and zero points (one
	// byte each), float32 biases, FP layers at float32, and 5 bytes (float32
	// scale + uint8 zero point) per quantized activation point.
	Packed int
}

// Size computes the storage of s (see Sizes).
func (s *Spec) Size() Sizes {
	var z Sizes
	names := make([]string, 0, len(s.Layers))
	for n := range s.Layers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := s.Layers[n]
		cnt := 1
		for _, d := range l.Shape {
			cnt *= d
		}
		z.FP += 4*cnt + 4*len(l.Bias)
		if l.Bits == 0 {
			z.Packed += 4*cnt + 4*len(l.Bias)
			continue
		}
		z.Packed += (cnt*l.Bits+7)/8 + 5*len(l.Scale) + 4*len(l.Bias)
	}
	z.Packed += 5 * len(s.Acts)
	return z
}

// FromSafetensors reads a quantized network written by brecq.QNet.Export
// (`brecq quantize --out`): per layer "<layer>.weight_int" (U8 codes q),
// "<layer>.weight_scale", "<layer>.weight_zero_point", "<layer>.bias" and the
// metadata "<layer>.wbits"; per quantized activation point
// "<point>.act_scale", "<point>.act_zero_point" and "<point>.abits". The
// error names the missing or malformed tensor.
func FromSafetensors(net *models.Net, path string) (*Spec, error) {
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Spec{Net: net, Layers: map[string]*LayerWeights{}, Acts: map[string]ActQuant{}, Metadata: map[string]string{}}
	floats := func(name string, n int) ([]float32, error) {
		t, ok := ts[name]
		if !ok {
			return nil, fmt.Errorf("onnx: %s: no tensor %q (not written by brecq quantize --out?)", path, name)
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: %w", path, err)
		}
		if n >= 0 && len(v) != n {
			return nil, fmt.Errorf("onnx: %s: tensor %q has %d values, want %d", path, name, len(v), n)
		}
		return v, nil
	}
	shapes := net.ParamShapes()
	for _, l := range net.Layers() {
		bits, err := strconv.Atoi(meta[l.Name+".wbits"])
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: metadata %q missing or not an integer", path, l.Name+".wbits")
		}
		codes, ok := ts[l.Name+".weight_int"]
		shape := shapes[l.Name+".weight"]
		if !ok || codes.DType != safetensors.U8 || fmt.Sprint(codes.Shape) != fmt.Sprint(shape) {
			return nil, fmt.Errorf("onnx: %s: tensor %q missing or not U8 %v", path, l.Name+".weight_int", shape)
		}
		lw := &LayerWeights{Shape: shape, Bits: bits, Codes: append([]uint8(nil), codes.Raw...)}
		if lw.Bias, err = floats(l.Name+".bias", l.Out); err != nil {
			return nil, err
		}
		if lw.Scale, err = floats(l.Name+".weight_scale", l.Out); err != nil {
			return nil, err
		}
		if lw.ZeroPoint, err = floats(l.Name+".weight_zero_point", l.Out); err != nil {
			return nil, err
		}
		s.Layers[l.Name] = lw
	}
	for _, p := range brecq.ActPoints(net) {
		if _, ok := ts[p+".act_scale"]; !ok {
			continue
		}
		bits, err := strconv.Atoi(meta[p+".abits"])
		if err != nil {
			return nil, fmt.Errorf("onnx: %s: metadata %q missing or not an integer", path, p+".abits")
		}
		if bits >= 32 {
			continue
		}
		sc, err := floats(p+".act_scale", 1)
		if err != nil {
			return nil, err
		}
		zp, err := floats(p+".act_zero_point", 1)
		if err != nil {
			return nil, err
		}
		s.Acts[p] = ActQuant{Bits: bits, Scale: sc[0], ZeroPoint: zp[0]}
	}
	for _, k := range []string{"method", "model", "wbits", "abits", "top1"} {
		if v, ok := meta[k]; ok {
			s.Metadata[k] = v
		}
	}
	return s, nil
}
