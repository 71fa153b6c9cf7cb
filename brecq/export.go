package brecq

import (
	"math"
	"sort"
	"strconv"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/safetensors"
)

// IntegerCodes returns the integer weight codes of a layer under its final
// rounding: q = clip(⌊w/s⌋ + h + z, 0, 2^b − 1) with h = 1[V ≥ 0] (AdaRound)
// or q = clip(⌊w/s⌉ + z, 0, 2^b − 1) (nearest), w/s evaluated in float32 as
// the graph does, so that the dequantized weight s·(q − z) is the one the
// tool's evaluation uses.
func (q *QNet) IntegerCodes(layer string, mode RoundingMode) ([]uint8, error) {
	wq, ok := q.WQ[layer]
	if !ok {
		return nil, errorf("layer %q has no weight quantizer", layer)
	}
	w := tensors.MustCopyFlatData[float32](q.FP[layer+".weight"])
	v := q.V[layer]
	if mode != RoundNearest && v == nil {
		return nil, errorf("layer %q has no AdaRound variables", layer)
	}
	ch := len(wq.Scale)
	per := len(w) / ch
	qmax := float64(QMax(wq.Bits))
	codes := make([]uint8, len(w))
	for i, x := range w {
		c := i / per
		if ch == 1 {
			c = 0
		}
		// x/s in float32, as the graph's FakeQuant / AdaRoundWeight (and
		// FakeQuantHost, HardRoundedWeights) divide: in float64 a quotient
		// within float32 rounding of a .5 tie would round the other way.
		u := float64(x / wq.Scale[c])
		z := float64(wq.ZeroPoint[c])
		var t float64
		if mode == RoundNearest {
			t = math.RoundToEven(u) + z
		} else {
			t = math.Floor(u) + z
			if v[i] >= 0 {
				t++
			}
		}
		codes[i] = uint8(math.Max(0, math.Min(qmax, t)))
	}
	return codes, nil
}

// Export writes the quantized network as safetensors: for each layer
// "<layer>.weight" (the dequantized, BN-folded weight s·(q − z)), "<layer>.bias",
// "<layer>.weight_int" (U8 codes q), "<layer>.weight_scale" and
// "<layer>.weight_zero_point" (per output channel); for each quantized
// activation point "<point>.act_scale" and "<point>.act_zero_point". Bits go
// into the metadata ("<layer>.wbits", "<point>.abits"). The write is atomic.
func (q *QNet) Export(path string, mode Mode, meta map[string]string) error {
	var ts []*safetensors.Tensor
	md := map[string]string{}
	for k, v := range meta {
		md[k] = v
	}
	for _, l := range q.Net.Layers() {
		m := mode.Weight(l.Name)
		shape := q.FP[l.Name+".weight"].Shape().Dimensions
		wq := q.WQ[l.Name]
		codes, err := q.IntegerCodes(l.Name, m)
		if err != nil {
			return err
		}
		per := len(codes) / len(wq.Scale)
		deq := make([]float32, len(codes))
		for i, c := range codes {
			ch := i / per
			deq[i] = wq.Scale[ch] * (float32(c) - wq.ZeroPoint[ch])
		}
		ts = append(ts, safetensors.NewF32(l.Name+".weight", shape, deq))
		ts = append(ts, safetensors.NewF32(l.Name+".bias", []int{l.Out}, tensors.MustCopyFlatData[float32](q.FP[l.Name+".bias"])))
		ts = append(ts, &safetensors.Tensor{Name: l.Name + ".weight_int", DType: safetensors.U8, Shape: shape, Raw: codes})
		ts = append(ts, safetensors.NewF32(l.Name+".weight_scale", []int{len(wq.Scale)}, wq.Scale))
		ts = append(ts, safetensors.NewF32(l.Name+".weight_zero_point", []int{len(wq.ZeroPoint)}, wq.ZeroPoint))
		md[l.Name+".wbits"] = strconv.Itoa(wq.Bits)
	}
	pts := make([]string, 0, len(q.AQ))
	for p := range q.AQ {
		if mode.Acts[p] {
			pts = append(pts, p)
		}
	}
	sort.Strings(pts)
	for _, p := range pts {
		aq := q.AQ[p]
		ts = append(ts, safetensors.NewF32(p+".act_scale", []int{}, aq.Scale[:1]))
		ts = append(ts, safetensors.NewF32(p+".act_zero_point", []int{}, aq.ZeroPoint[:1]))
		md[p+".abits"] = strconv.Itoa(aq.Bits)
	}
	return safetensors.WriteFile(path, ts, md)
}
