package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/brecq-go/brecq/brecq/onnx"
)

// brecq export writes the FP checkpoint and a `quantize --out` network as
// ONNX (graph input of the data set's geometry), and refuses bad flags.
func TestExportONNX(t *testing.T) {
	dir := t.TempDir()
	q := []string{"quantize", "--depth", "8", "--method", "nearest", "--wbits", "3", "--abits", "4", "--calib", "8", "--quiet", "--model", ckpt, "--out", "q.safetensors"}
	expect(t, run(t, dir, q...), 0, q)
	for _, tc := range []struct {
		args   []string
		format string
	}{
		{[]string{"export", "--depth", "8", "--model", ckpt, "--onnx", "fp.onnx"}, "fp"},
		{[]string{"export", "--depth", "8", "--quantized", "q.safetensors", "--onnx", "q.onnx"}, "qdq"},
	} {
		expect(t, run(t, dir, tc.args...), 0, tc.args)
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
