package main

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/safetensors"
)

// exportExtras are the tensors of a quantized export (brecq.QNet.Export)
// beside the dequantized weights and biases: integer codes, per-channel
// scales and zero points, activation step sizes.
var exportExtras = safetensors.IgnoreSuffix(".weight_int", ".weight_scale", ".weight_zero_point", ".act_scale", ".act_zero_point")

// isExport reports whether metadata is that of a quantized export written
// by `brecq quantize --out` or `brecq mixed --out`.
func isExport(meta map[string]string) bool {
	p := meta["producer"]
	return p == "brecq quantize" || p == "brecq mixed"
}

// exportParams turns a quantized export of net (BN-folded, dequantized
// weights and their biases) into parameters the FP network evaluates
// exactly: each folded convolution keeps its weight, and its BatchNorm
// becomes the identity plus the folded bias (γ = 1, μ = 0, σ² = 1 − ε, so
// that √(σ² + ε) = 1). Activation quantization is not applied.
func exportParams(path string, ts map[string]*safetensors.Tensor, net *models.Net) (models.Params, error) {
	want := map[string][]int{}
	for _, l := range net.Layers() {
		want[l.Name+".weight"] = net.ParamShapes()[l.Name+".weight"]
		want[l.Name+".bias"] = []int{l.Out}
	}
	if err := safetensors.CheckF32(ts, want, exportExtras); err != nil {
		return nil, fmt.Errorf("%s: not a quantized export of %s: %w", path, net.Name, err)
	}
	fill := func(n int, v float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	p := models.Params{}
	for _, l := range net.Layers() {
		w := ts[l.Name+".weight"]
		p[l.Name+".weight"] = tensors.FromFlatDataAndDimensions(append([]float32(nil), w.F32...), w.Shape...)
		bias := append([]float32(nil), ts[l.Name+".bias"].F32...)
		switch {
		case l.BN != "":
			p[l.BN+".weight"] = tensors.FromFlatDataAndDimensions(fill(l.Out, 1), l.Out)
			p[l.BN+".bias"] = tensors.FromFlatDataAndDimensions(bias, l.Out)
			p[l.BN+".running_mean"] = tensors.FromFlatDataAndDimensions(fill(l.Out, 0), l.Out)
			p[l.BN+".running_var"] = tensors.FromFlatDataAndDimensions(fill(l.Out, float32(1-models.BNEps)), l.Out)
		case l.Bias:
			p[l.Name+".bias"] = tensors.FromFlatDataAndDimensions(bias, l.Out)
		default:
			return nil, fmt.Errorf("%s: layer %s has neither BatchNorm nor bias: cannot place its folded bias", path, l.Name)
		}
	}
	return p, nil
}

// loadForEval reads a checkpoint of net for evaluation: an FP state_dict,
// or the tool's own quantized export (then note says what is evaluated).
// Non-finite values are refused, naming the tensor.
func loadForEval(path string, nf *netFlags, net *models.Net) (_ *models.Net, p models.Params, note string, err error) {
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, "", err
	}
	if !isExport(meta) {
		net, p, _, err := nf.loadParams(path, net)
		return net, p, "", err
	}
	if p, err = exportParams(path, ts, net); err != nil {
		return nil, nil, "", err
	}
	if err := checkFinite(path, p); err != nil {
		return nil, nil, "", err
	}
	note = fmt.Sprintf("quantized export of %s (method %s, W%sA%s): its dequantized weights, activations not quantized here",
		strings.TrimPrefix(meta["producer"], "brecq "), meta["method"], meta["wbits"], meta["abits"])
	if meta["abits"] != "32" && meta["top1"] != "" {
		note += fmt.Sprintf("; with its activation quantization it scored %s%%", meta["top1"])
	}
	return net, p, note, nil
}
