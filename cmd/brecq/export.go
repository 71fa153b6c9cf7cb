package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/onnx"
	"github.com/brecq-go/brecq/brecq/safetensors"
)

// runExport writes a network as ONNX: the BN-folded FP checkpoint, or a
// quantized network saved by `brecq quantize --out` in QDQ form.
func runExport(args []string) error {
	fs := newFlagSet("export", `Usage: brecq export --onnx FILE [flags]

Writes the network as ONNX (opset 13; input "input" [N,C,H,W] float32, output
"logits" [N,classes]): the full-precision checkpoint with BatchNorm folded,
or, with --quantized, the quantized network in QDQ form — int8 weight codes
with per-channel DequantizeLinear (axis 0), uint8 QuantizeLinear /
DequantizeLinear at every quantized activation (Clip first below 8 bits).
Run it in ONNX Runtime: node scripts/ort/run.js (see README, "ONNX export").

Examples:
  brecq export --onnx resnet20-fp.onnx
  brecq quantize --wbits 4 --abits 4 --out w4a4.safetensors && brecq export --quantized w4a4.safetensors --onnx w4a4.onnx
`)
	format := fs.String("format", "onnx", "output format (onnx)")
	nf := addNetFlags(fs, "FP safetensors checkpoint (exported with BatchNorm folded) — used without --quantized")
	quant := fs.String("quantized", "", "quantized network written by 'brecq quantize --out' (safetensors): exported as QDQ")
	out := fs.String("onnx", "", "the ONNX file to write (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "onnx" {
		return fmt.Errorf("--format %q: only onnx is supported", *format)
	}
	if *out == "" {
		return fmt.Errorf("--onnx FILE is required")
	}
	in := namedPath{"--model", *nf.model}
	if *quant != "" {
		in = namedPath{"--quantized", *quant}
	}
	if err := checkPaths([]namedPath{{"--onnx", *out}}, []namedPath{in}); err != nil {
		return err
	}
	_, _, net, err := nf.setup(false)
	if err != nil {
		return err
	}
	var spec *onnx.Spec
	if *quant != "" {
		if net, err = quantizedNet(*quant, net); err != nil {
			return err
		}
		if spec, err = onnx.FromSafetensors(net, *quant); err != nil {
			return err
		}
	} else {
		net, params, _, err := nf.loadParams(*nf.model, net)
		if err != nil {
			return err
		}
		if spec, err = onnx.FromFP(net, params); err != nil {
			return err
		}
	}
	if err := onnx.WriteFile(*out, spec); err != nil {
		return err
	}
	sz := spec.Size()
	kind := "FP (BatchNorm folded)"
	if spec.Quantized() {
		kind = "QDQ"
	}
	fmt.Printf("wrote %s: %s %s, opset %d; weights %d bytes as float32, %d bytes with codes packed at their bit-widths\n",
		*out, net.Name, kind, onnx.Opset, sz.FP, sz.Packed)
	return nil
}

// writeONNX is the hook for `brecq quantize --onnx FILE`: it exports the
// finished quantized network as the tool evaluates it (q.EvalMode()), with
// meta as model metadata, atomically.
func writeONNX(path string, q *brecq.Quantizer, meta map[string]string) error {
	spec, err := onnx.FromQNet(q.Q, q.EvalMode())
	if err != nil {
		return err
	}
	for k, v := range meta {
		spec.Metadata[k] = v
	}
	return onnx.WriteFile(path, spec)
}

// quantizedNet is the description of the network saved in the quantized file
// path, whose metadata "model" names it: net (from --arch and --data) itself,
// or for mnasnet the depth multiplier of the checkpoint it was quantized from
// ("mnasnet2" for the authors' model). Another network is an error naming both.
func quantizedNet(path string, net *models.Net) (*models.Net, error) {
	_, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := meta["model"]
	if m == "" || m == net.Name {
		return net, nil
	}
	if s, ok := strings.CutPrefix(m, "mnasnet"); ok && strings.HasPrefix(net.Name, "mnasnet") {
		if scale, err := strconv.ParseFloat(s, 64); err == nil && scale > 0 {
			return models.MNASNet(scale, net.InC, net.InH, net.InW, net.Classes)
		}
	}
	return nil, fmt.Errorf("--quantized %s holds a %s, but --arch gives a %s", path, m, net.Name)
}
