package onnx

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/models"
)

// smallQNet is a ResNet-8 for 8×8 inputs with random BN-folded weights,
// per-channel 3-bit weight quantizers from the weights' ranges, random
// AdaRound V and 4-bit activation quantizers at every point.
func smallQNet(t *testing.T) *brecq.QNet {
	t.Helper()
	net, err := models.CIFARResNet(8, 1, 1, 8, 8, 10)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	q := &brecq.QNet{Net: net, FP: models.Params{}, WQ: map[string]brecq.QParams{}, V: map[string][]float32{}, AQ: map[string]brecq.QParams{}, ABits: map[string]int{}}
	for _, l := range net.Layers() {
		shape := net.ParamShapes()[l.Name+".weight"]
		n := 1
		for _, d := range shape {
			n *= d
		}
		w := make([]float32, n)
		v := make([]float32, n)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * 0.3)
			v[i] = float32(rng.NormFloat64())
		}
		b := make([]float32, l.Out)
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.1)
		}
		q.FP[l.Name+".weight"] = tensors.FromFlatDataAndDimensions(w, shape...)
		q.FP[l.Name+".bias"] = tensors.FromFlatDataAndDimensions(b, l.Out)
		mn, mx := make([]float32, l.Out), make([]float32, l.Out)
		per := n / l.Out
		for o := 0; o < l.Out; o++ {
			for _, x := range w[o*per : (o+1)*per] {
				mn[o], mx[o] = min(mn[o], x), max(mx[o], x)
			}
			mx[o] *= 0.8 // some weights above the grid: clipping is exercised
		}
		wq, err := brecq.QParamsFromRange(mn, mx, 3)
		if err != nil {
			t.Fatal(err)
		}
		q.WQ[l.Name], q.V[l.Name] = wq, v
	}
	for i, p := range brecq.ActPoints(net) {
		aq, err := brecq.QParamsFromRange([]float32{0}, []float32{float32(1 + i)}, 4)
		if err != nil {
			t.Fatal(err)
		}
		q.AQ[p], q.ABits[p] = aq, 4
	}
	return q
}

// The exported codes dequantize bit-exactly to the tool's own host
// references of its rounding: brecq.FakeQuantHost (nearest) and
// brecq.HardRoundedWeights (AdaRound), and the int8 codes of the ONNX file
// are q − 2^(b−1) with zero point z − 2^(b−1).
func TestCodesMatchToolRounding(t *testing.T) {
	q := smallQNet(t)
	for _, m := range []brecq.RoundingMode{brecq.RoundNearest, brecq.RoundHard} {
		spec, err := FromQNet(q, brecq.Mode{DefaultWeights: m})
		if err != nil {
			t.Fatal(err)
		}
		model, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(model.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range q.Net.Layers() {
			w := tensors.MustCopyFlatData[float32](q.FP[l.Name+".weight"])
			var want []float32
			if m == brecq.RoundNearest {
				want = brecq.FakeQuantHost(w, q.WQ[l.Name])
			} else {
				want = brecq.HardRoundedWeights(w, q.V[l.Name], q.WQ[l.Name])
			}
			codes, err := back.Initializer(l.Name + ".weight_quantized").Int8s()
			if err != nil {
				t.Fatal(err)
			}
			zp, _ := back.Initializer(l.Name + ".weight_zero_point").Int8s()
			sc, _ := back.Initializer(l.Name + ".weight_scale").Floats()
			per := len(codes) / l.Out
			for i, c := range codes {
				o := i / per
				if c < -4 || c > 3 {
					t.Fatalf("%s %s: int8 code %d outside the signed 3-bit range", m, l.Name, c)
				}
				got := sc[o] * float32(int32(c)-int32(zp[o]))
				if got != want[i] {
					t.Fatalf("%s %s[%d]: dequantized %g, tool %g", m, l.Name, i, got, want[i])
				}
			}
		}
	}
}

// Marshal / Unmarshal round trip: nodes, attributes, initializers, inputs,
// outputs, metadata and opset survive.
func TestMarshalRoundTrip(t *testing.T) {
	q := smallQNet(t)
	mode := brecq.Mode{DefaultWeights: brecq.RoundHard, Acts: map[string]bool{}}
	for _, p := range brecq.ActPoints(q.Net) {
		mode.Acts[p] = true
	}
	spec, err := FromQNet(q, mode)
	if err != nil {
		t.Fatal(err)
	}
	spec.Metadata["top1"] = "12.5"
	m, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Unmarshal(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if b.Opset != 13 || b.Name != m.Name || len(b.Nodes) != len(m.Nodes) || len(b.Initializers) != len(m.Initializers) {
		t.Fatalf("round trip: opset %d, %d nodes, %d initializers; want 13, %d, %d", b.Opset, len(b.Nodes), len(b.Initializers), len(m.Nodes), len(m.Initializers))
	}
	for i, n := range m.Nodes {
		g := b.Nodes[i]
		if g.Op != n.Op || strings.Join(g.Inputs, ",") != strings.Join(n.Inputs, ",") || strings.Join(g.Outputs, ",") != strings.Join(n.Outputs, ",") || len(g.Attrs) != len(n.Attrs) {
			t.Fatalf("node %d: %+v, want %+v", i, g, n)
		}
		for j, a := range n.Attrs {
			if g.Attrs[j].Name != a.Name || g.Attrs[j].I != a.I || len(g.Attrs[j].Ints) != len(a.Ints) {
				t.Fatalf("node %d attribute %d: %+v, want %+v", i, j, g.Attrs[j], a)
			}
		}
	}
	for i, x := range m.Initializers {
		y := b.Initializers[i]
		if y.Name != x.Name || y.DType != x.DType || string(y.Raw) != string(x.Raw) || len(y.Dims) != len(x.Dims) {
			t.Fatalf("initializer %s: %s %v, want %s %v", x.Name, y.DType, y.Dims, x.DType, x.Dims)
		}
	}
	if b.Metadata["top1"] != "12.5" || b.Metadata["brecq.abits.layer1.0"] != "4" || b.Metadata["brecq.wbits.fc"] != "3" || b.Metadata["brecq.format"] != "qdq" {
		t.Fatalf("metadata %v", b.Metadata)
	}
	if len(b.Inputs) != 1 || b.Inputs[0].Name != "input" || len(b.Inputs[0].Dims) != 4 || b.Inputs[0].Dims[0] != -1 || b.Inputs[0].Dims[2] != 8 ||
		len(b.Outputs) != 1 || b.Outputs[0].Name != "logits" || b.Outputs[0].Dims[1] != 10 {
		t.Fatalf("inputs %+v outputs %+v", b.Inputs, b.Outputs)
	}
	// Every quantized point is QuantizeLinear → DequantizeLinear behind a Clip (4 bits).
	ops := map[string]int{}
	for _, n := range b.Nodes {
		ops[n.Op]++
	}
	pts := len(brecq.ActPoints(q.Net))
	if ops["QuantizeLinear"] != pts || ops["Clip"] != pts || ops["DequantizeLinear"] != pts+len(q.Net.Layers()) || ops["Conv"] != len(q.Net.Layers())-1 || ops["Gemm"] != 1 {
		t.Fatalf("op counts %v for %d points, %d layers", ops, pts, len(q.Net.Layers()))
	}
}

// Unsupported things are errors that name them; a failed export leaves an
// existing file untouched and no temporary file behind.
func TestExportErrors(t *testing.T) {
	q := smallQNet(t)
	if _, err := FromQNet(q, brecq.Mode{DefaultWeights: brecq.RoundSoft}); err == nil || !strings.Contains(err.Error(), "conv1") || !strings.Contains(err.Error(), "cannot be exported") {
		t.Errorf("RoundSoft: %v", err)
	}
	spec, err := FromQNet(q, brecq.Mode{DefaultWeights: brecq.RoundNearest})
	if err != nil {
		t.Fatal(err)
	}
	// An unknown block kind (a network kind this export does not know yet).
	net2 := *q.Net
	net2.Blocks = append([]*models.Block(nil), q.Net.Blocks...)
	odd := *net2.Blocks[2]
	odd.Kind = models.BlockKind(42)
	net2.Blocks[2] = &odd
	s2 := *spec
	s2.Net = &net2
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = WriteFile(path, &s2)
	if err == nil || !strings.Contains(err.Error(), "block "+odd.Name) || !strings.Contains(err.Error(), "block kind 42") || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "supported: stem, basic, head, bottleneck, res-bottleneck, inverted-residual, chain") {
		t.Errorf("unknown block kind: %v", err)
	}
	// An unknown layer kind.
	net3 := *q.Net
	net3.Blocks = append([]*models.Block(nil), q.Net.Blocks...)
	b3 := *net3.Blocks[1]
	l3 := *b3.Layers[0]
	l3.Kind = models.LayerKind(7)
	b3.Layers = []*models.Layer{&l3, b3.Layers[1]}
	net3.Blocks[1] = &b3
	s3 := *spec
	s3.Net = &net3
	if err := WriteFile(path, &s3); err == nil || !strings.Contains(err.Error(), l3.Name) || !strings.Contains(err.Error(), "layer kind 7") {
		t.Errorf("unknown layer kind: %v", err)
	}
	// A weight layer missing from the spec.
	s4 := *spec
	s4.Layers = map[string]*LayerWeights{}
	for k, v := range spec.Layers {
		if k != "fc" {
			s4.Layers[k] = v
		}
	}
	if err := WriteFile(path, &s4); err == nil || !strings.Contains(err.Error(), "layer fc") {
		t.Errorf("missing layer: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("failed exports changed the file: %q", b)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "m.onnx"), spec); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
	if err := WriteFile(path, spec); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("folder holds %d entries after the exports, want 1 (no temporary files)", len(ents))
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatal(err)
	}
}

// Size: FP is 4 bytes per weight and bias; packed is ⌈n·b/8⌉ per layer plus
// scales, zero points, biases and activation parameters.
func TestSize(t *testing.T) {
	q := smallQNet(t)
	fp, err := FromQNet(q, brecq.FPMode())
	if err != nil {
		t.Fatal(err)
	}
	qs, err := FromQNet(q, brecq.Mode{DefaultWeights: brecq.RoundNearest, Acts: map[string]bool{"conv1": true}})
	if err != nil {
		t.Fatal(err)
	}
	var weights, biases, chans, packed int
	for _, l := range q.Net.Layers() {
		n := tensors.MustCopyFlatData[float32](q.FP[l.Name+".weight"])
		weights += len(n)
		biases += l.Out
		chans += l.Out
		packed += (3*len(n) + 7) / 8
	}
	if got := fp.Size(); got.FP != 4*(weights+biases) || got.Packed != got.FP {
		t.Errorf("FP sizes %+v, want %d", got, 4*(weights+biases))
	}
	if got := qs.Size(); got.Packed != packed+5*chans+4*biases+5 {
		t.Errorf("packed %d, want %d", got.Packed, packed+5*chans+4*biases+5)
	}
}
