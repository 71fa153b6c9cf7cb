package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/onnx"
	"github.com/brecq-go/brecq/datasets"
)

// brecq export writes the FP checkpoint and a `quantize --out` network as
// ONNX (graph input of the data set's geometry), and refuses bad flags.
func TestExportONNX(t *testing.T) {
	dir := t.TempDir()
	q := []string{"quantize", "--depth", "8", "--method", "nearest", "--wbits", "3", "--abits", "4", "--calib", "8", "--quiet", "--model", ckpt,
		"--out", "q.safetensors", "--onnx", "qrun.onnx"}
	expect(t, run(t, dir, q...), 0, q)
	for _, tc := range []struct {
		args   []string
		format string
	}{
		{q, "qdq"}, // quantize --onnx writes the same QDQ network at the end of the run
		{[]string{"export", "--depth", "8", "--model", ckpt, "--onnx", "fp.onnx"}, "fp"},
		{[]string{"export", "--depth", "8", "--quantized", "q.safetensors", "--onnx", "q.onnx"}, "qdq"},
	} {
		if tc.args[0] == "export" {
			expect(t, run(t, dir, tc.args...), 0, tc.args)
		}
		m, err := onnx.ReadFile(filepath.Join(dir, tc.args[len(tc.args)-1]))
		if err != nil {
			t.Fatal(err)
		}
		if m.Metadata["brecq.format"] != tc.format || m.Opset != onnx.Opset || len(m.Inputs) != 1 || m.Inputs[0].Dims[2] != imgSize {
			t.Errorf("%v: format %q, opset %d, inputs %+v", tc.args, m.Metadata["brecq.format"], m.Opset, m.Inputs)
		}
		if tc.format == "qdq" && (m.Metadata["brecq.wbits.layer1.0.conv1"] != "3" || m.Metadata["brecq.abits.layer1.0"] != "4") {
			t.Errorf("quantized export metadata %v", m.Metadata)
		}
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"export", "--format", "tflite", "--onnx", "x.onnx"}, "tflite"},
		{[]string{"export", "--depth", "8", "--model", ckpt}, "--onnx"},
		{[]string{"export", "--depth", "8", "--quantized", ckpt, "--onnx", "x.onnx"}, "conv1.wbits"},
	} {
		expect(t, run(t, dir, tc.args...), 1, tc.args, tc.err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.onnx")); err == nil {
		t.Error("a failed export left x.onnx")
	}
}

// writeONNX (the hook for `quantize --onnx FILE`) exports a finished
// quantizer as it evaluates: weights rounded, activations quantized.
func TestWriteONNXHook(t *testing.T) {
	backend, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	net, err := models.CIFARResNet(8, 1, 1, imgSize, imgSize, datasets.NumClasses)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, 8*imgSize*imgSize)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	opt := brecq.DefaultOptions(2, 4)
	opt.Method = brecq.MethodNearest
	q, err := brecq.NewQuantizer(backend, net, fptrain.Init(net, 1), tensors.FromFlatDataAndDimensions(x, 8, 1, imgSize, imgSize), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Run(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "q.onnx")
	if err := writeONNX(path, q, map[string]string{"top1": "1.00"}); err != nil {
		t.Fatal(err)
	}
	m, err := onnx.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Metadata["top1"] != "1.00" || m.Metadata["brecq.wbits.layer1.0.conv1"] != "2" || m.Metadata["brecq.abits.layer1.0.conv1"] != "4" || m.Metadata["brecq.abits.conv1"] != "8" {
		t.Errorf("metadata %v", m.Metadata)
	}
}
