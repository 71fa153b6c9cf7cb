package brecq

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/safetensors"
)

// Rounding is a finished weight stage in portable form: for each layer its
// integer weight codes q (in the layout of the layer's weight) and the
// per-output-channel step sizes s and zero points z they are read with,
// w_q = s·(q − z) — what QNet.Export writes as "<layer>.weight_int",
// "<layer>.weight_scale" and "<layer>.weight_zero_point".
type Rounding struct {
	Codes map[string][]uint8
	WQ    map[string]QParams
}

// SetRounding installs r as the result of the weight stage, so that Run goes
// straight to the activation stage (or, with activations at 32 bits, has
// nothing left to do). Each layer's quantizer becomes (s, z) from r, and its
// AdaRound variables V are set so that the hard rounding reproduces the codes:
//
//	q = clip(⌊w/s⌋ + h + z, 0, 2^b − 1),  h = 1[V ≥ 0],  V = +1 if h = 1, −1 if h = 0
//
// (w/s in float32, as the graph divides). A code that neither h = 0 nor
// h = 1 gives (AdaRound can only round down or up) is an error naming the
// layer and the element; so are a missing layer, a wrong size, a code above
// 2^b − 1 and a non-positive scale. Layers the run rounds to nearest (the
// stem, or every layer with MethodNearest) must hold the nearest codes
// q = clip(⌊w/s⌉ + z, 0, 2^b − 1). MethodQDrop is refused: its weight stage
// also learns activation step sizes, which r does not hold.
func (r *Quantizer) SetRounding(rd Rounding) error {
	if r.opt.Method == MethodQDrop {
		return errorf("a given rounding replaces the weight stage, but method %s learns activation step sizes in it", MethodQDrop)
	}
	if r.progress.WeightUnits > 0 || r.progress.ActSteps > 0 || r.progress.QDropInit {
		return errorf("a given rounding must be installed before the run starts")
	}
	var extra []string
	for name := range rd.Codes {
		if r.Q.Net.Layer(name) == nil {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return errorf("the rounding has codes for %s, which %s does not have", strings.Join(extra, ", "), r.Q.Net.Name)
	}
	nearest := r.EvalMode()
	vs := map[string][]float32{}
	wqs := map[string]QParams{}
	for _, l := range r.Q.Net.Layers() {
		codes, ok := rd.Codes[l.Name]
		if !ok {
			return errorf("the rounding has no codes for layer %s", l.Name)
		}
		cur := r.Q.WQ[l.Name]
		wq, ok := rd.WQ[l.Name]
		if !ok {
			return errorf("the rounding has no scales and zero points for layer %s", l.Name)
		}
		w := r.Q.FP[l.Name+".weight"].Shape().Size()
		if len(codes) != w {
			return errorf("layer %s: the rounding has %d codes, the weight %d values", l.Name, len(codes), w)
		}
		if len(wq.Scale) != len(cur.Scale) || len(wq.ZeroPoint) != len(cur.Scale) {
			return errorf("layer %s: the rounding has %d scales and %d zero points, the layer %d output channels",
				l.Name, len(wq.Scale), len(wq.ZeroPoint), len(cur.Scale))
		}
		wq = QParams{Bits: cur.Bits, Scale: slices.Clone(wq.Scale), ZeroPoint: slices.Clone(wq.ZeroPoint), Shape: slices.Clone(cur.Shape)}
		if err := wq.Validate(); err != nil {
			return errorf("layer %s (%d bits): %w", l.Name, cur.Bits, err)
		}
		v, err := roundingV(l.Name, tensors.MustCopyFlatData[float32](r.Q.FP[l.Name+".weight"]), codes, wq, nearest.Weight(l.Name) == RoundNearest)
		if err != nil {
			return err
		}
		if _, ok := r.Q.V[l.Name]; ok {
			vs[l.Name] = v
		}
		wqs[l.Name] = wq
	}
	for name, v := range vs {
		r.Q.V[name] = v
	}
	for name, wq := range wqs {
		r.Q.WQ[name] = wq
	}
	if r.opt.Method != MethodNearest {
		units, err := Units(r.Q.Net, r.opt.Granularity)
		if err != nil {
			return err
		}
		r.progress.WeightUnits = len(units)
	}
	return nil
}

// roundingV checks one layer's codes against its weights and returns the
// AdaRound variables (±1) that hard-round to them; with nearest set the codes
// must be the nearest ones (V is then the sign of the nearest choice).
func roundingV(layer string, w []float32, codes []uint8, wq QParams, nearest bool) ([]float32, error) {
	ch := len(wq.Scale)
	per := len(w) / ch
	qmax := float64(QMax(wq.Bits))
	clip := func(t float64) float64 { return math.Max(0, math.Min(qmax, t)) }
	v := make([]float32, len(w))
	for i, x := range w {
		c := i / per
		u := float64(x / wq.Scale[c])
		z := float64(wq.ZeroPoint[c])
		q := float64(codes[i])
		if q > qmax {
			return nil, errorf("layer %s: code %d of element %d is above %d, the largest at %d bits", layer, codes[i], i, int(qmax), wq.Bits)
		}
		down, up := clip(math.Floor(u)+z), clip(math.Floor(u)+1+z)
		if nearest && q != clip(math.RoundToEven(u)+z) {
			return nil, errorf("layer %s is rounded to nearest in this run, but element %d has code %d, not the nearest %g (w/s = %g, z = %g)",
				layer, i, codes[i], clip(math.RoundToEven(u)+z), u, z)
		}
		switch q {
		case up:
			v[i] = 1
		case down:
			v[i] = -1
		default:
			return nil, errorf("layer %s: element %d has code %d, but rounding w/s = %g down or up gives %g or %g (z = %g)",
				layer, i, codes[i], u, down, up, z)
		}
	}
	return v, nil
}

// ReadRounding reads a Rounding from a safetensors file holding, for each
// layer, "<layer>.weight_int" (U8 codes), "<layer>.weight_scale" and
// "<layer>.weight_zero_point" (F32, one per output channel) — a quantized
// export of this tool (QNet.Export), or one another code writes in that
// layout (scripts/authors/compare.py --rounding-out). Other tensors are
// ignored. Errors name the file and the tensor.
func ReadRounding(path string) (Rounding, error) {
	ts, _, err := safetensors.ReadFile(path)
	if err != nil {
		return Rounding{}, err
	}
	rd := Rounding{Codes: map[string][]uint8{}, WQ: map[string]QParams{}}
	for name, t := range ts {
		layer, ok := strings.CutSuffix(name, ".weight_int")
		if !ok {
			continue
		}
		if t.DType != safetensors.U8 {
			return Rounding{}, errorf("%s: tensor %s has dtype %s, want %s", path, name, t.DType, safetensors.U8)
		}
		var qp QParams
		for _, part := range []struct {
			suffix string
			dst    *[]float32
		}{{".weight_scale", &qp.Scale}, {".weight_zero_point", &qp.ZeroPoint}} {
			st, ok := ts[layer+part.suffix]
			if !ok {
				return Rounding{}, errorf("%s: %s has no %s%s beside it", path, name, layer, part.suffix)
			}
			if *part.dst, err = st.Float32s(); err != nil {
				return Rounding{}, errorf("%s: %w", path, err)
			}
		}
		rd.Codes[layer] = slices.Clone(t.Raw)
		rd.WQ[layer] = qp
	}
	if len(rd.Codes) == 0 {
		return Rounding{}, errorf("%s: no <layer>.weight_int tensors: not a rounding (write one with brecq quantize --out)", path)
	}
	return rd, nil
}
