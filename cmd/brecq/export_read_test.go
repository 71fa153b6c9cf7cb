package main

import (
	"flag"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/safetensors"
	"github.com/brecq-go/brecq/datasets"
)

// TestExportParamsMatchFP: a BN-folded network written in the export's
// layout and read back by loadForEval computes the logits of the FP network
// it was folded from (non-trivial BatchNorm statistics).
func TestExportParamsMatchFP(t *testing.T) {
	t.Setenv("GOMLX_BACKEND", "go")
	net, err := models.CIFARResNet(8, 1, 1, imgSize, imgSize, datasets.NumClasses)
	if err != nil {
		t.Fatal(err)
	}
	p := fptrain.Init(net, 3)
	r := rand.New(rand.NewPCG(4, 5))
	for _, l := range net.Layers() {
		if l.BN == "" {
			continue
		}
		for suffix, gen := range map[string]func() float32{
			"weight":       func() float32 { return float32(0.5 + r.Float64()) },
			"bias":         func() float32 { return float32(r.NormFloat64() * 0.3) },
			"running_mean": func() float32 { return float32(r.NormFloat64() * 0.3) },
			"running_var":  func() float32 { return float32(0.5 + 1.5*r.Float64()) },
		} {
			v := make([]float32, l.Out)
			for i := range v {
				v[i] = gen()
			}
			p[l.BN+"."+suffix] = tensors.FromFlatDataAndDimensions(v, l.Out)
		}
	}
	folded, err := brecq.FoldBN(net, p)
	if err != nil {
		t.Fatal(err)
	}
	var ts []*safetensors.Tensor
	for name, v := range folded {
		ts = append(ts, safetensors.NewF32(name, v.Shape().Dimensions, tensors.MustCopyFlatData[float32](v)))
	}
	for _, l := range net.Layers() { // the extras an export carries
		ts = append(ts, safetensors.NewF32(l.Name+".weight_scale", []int{1}, []float32{1}))
	}
	path := filepath.Join(t.TempDir(), "export.safetensors")
	meta := map[string]string{"producer": "brecq quantize", "method": "brecq", "wbits": "4", "abits": "4", "top1": "12.34"}
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	_, q, note, err := loadForEval(path, testNetFlags(), net)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "W4A4") || !strings.Contains(note, "scored 12.34%") {
		t.Errorf("note %q", note)
	}
	backend, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 4*imgSize*imgSize)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	in := tensors.FromFlatDataAndDimensions(x, 4, 1, imgSize, imgSize)
	logits := func(params models.Params) []float32 {
		ev, err := fptrain.NewEvaluator(backend, net, params)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ev.Logits(in)
		if err != nil {
			t.Fatal(err)
		}
		return tensors.MustCopyFlatData[float32](out)
	}
	want, got := logits(p), logits(q)
	scale := 0.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*math.Max(scale, 1) {
			t.Fatalf("logit %d: export %g, FP %g (scale %g)", i, got[i], want[i], scale)
		}
	}
	// The FP checkpoint itself is not taken for an export.
	if _, _, note, err := loadForEval(ckpt, testNetFlags(), net); err != nil || note != "" {
		t.Errorf("FP checkpoint: note %q, err %v", note, err)
	}
}

// testNetFlags are the network flags at their defaults.
func testNetFlags() *netFlags {
	return addNetFlags(flag.NewFlagSet("test", flag.ContinueOnError), "checkpoint")
}
