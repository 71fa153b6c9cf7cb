package main

import (
	"fmt"
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
	"github.com/brecq-go/brecq/datasets/datasetstest"
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

// brecq export --onnx writes every ImageNet --arch (random checkpoints at
// 3×32×32, a generated image folder); quantize --onnx and export --quantized
// do for MobileNetV2 (ReLU6, depthwise convolutions, inverted residuals with
// signed outputs, the features.18 chain) and give the same graph.
func TestExportONNXArchs(t *testing.T) {
	if testing.Short() {
		t.Skip("export of every architecture skipped in -short mode")
	}
	data := t.TempDir()
	if err := datasetstest.WriteFolder(data, 3, 2, 2, 1); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	folder := []string{"--data", "folder:" + data, "--image-size", "32"}
	cks := map[string]string{}
	for _, arch := range models.Archs() {
		if arch == "resnet20" { // TestExportONNX
			continue
		}
		cks[arch] = writeArchCheckpoint(t, arch, 32, 3)
		args := append([]string{"export", "--arch", arch, "--model", cks[arch], "--onnx", arch + ".onnx"}, folder...)
		expect(t, run(t, dir, args...), 0, args)
		m, err := onnx.ReadFile(filepath.Join(dir, arch+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		net, _ := models.New(arch, 3, 32, 32, 3)
		convs := 0
		for _, n := range m.Nodes {
			if n.Op == "Conv" {
				convs++
			}
		}
		if m.Name != arch || m.Metadata["brecq.format"] != "fp" || fmt.Sprint(m.Inputs[0].Dims) != "[-1 3 32 32]" ||
			fmt.Sprint(m.Outputs[0].Dims) != "[-1 3]" || convs != len(net.Layers())-1 {
			t.Errorf("%s: model %q, format %q, input %v, output %v, %d Conv nodes (want %d)", arch, m.Name, m.Metadata["brecq.format"],
				m.Inputs[0].Dims, m.Outputs[0].Dims, convs, len(net.Layers())-1)
		}
	}
	q := append([]string{"quantize", "--arch", "mobilenetv2", "--model", cks["mobilenetv2"], "--method", "nearest", "--wbits", "4", "--abits", "4",
		"--calib", "4", "--quiet", "--out", "mb.safetensors", "--onnx", "mb-run.onnx"}, folder...)
	expect(t, run(t, dir, q...), 0, q)
	x := append([]string{"export", "--arch", "mobilenetv2", "--quantized", "mb.safetensors", "--onnx", "mb.onnx"}, folder...)
	expect(t, run(t, dir, x...), 0, x)
	// A quantized file of another network is refused by name.
	x2 := append([]string{"export", "--arch", "resnet18", "--quantized", "mb.safetensors", "--onnx", "r.onnx"}, folder...)
	expect(t, run(t, dir, x2...), 1, x2, "holds a mobilenetv2, but --arch gives a resnet18")
	a, err := onnx.ReadFile(filepath.Join(dir, "mb-run.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := onnx.ReadFile(filepath.Join(dir, "mb.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata["brecq.format"] != "qdq" || a.Metadata["brecq.abits.features.2"] != "4" || a.Metadata["brecq.wbits.features.2.conv.1.0"] != "4" ||
		len(a.Nodes) != len(b.Nodes) || len(a.Initializers) != len(b.Initializers) {
		t.Fatalf("quantize --onnx: format %q, %d nodes / %d initializers; export --quantized: %d / %d",
			a.Metadata["brecq.format"], len(a.Nodes), len(a.Initializers), len(b.Nodes), len(b.Initializers))
	}
	for i, x := range a.Initializers {
		if y := b.Initializers[i]; y.Name != x.Name || string(y.Raw) != string(x.Raw) {
			t.Errorf("initializer %s differs between quantize --onnx and export --quantized", x.Name)
		}
	}
}
