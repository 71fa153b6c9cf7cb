package models_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/safetensors"
)

// torchvisionResNetShapes lists, written out from the architecture (He et
// al. 2016, CIFAR variant with 1x1-conv + BN projection shortcuts, named as
// torchvision's ResNet), every state_dict entry of a depth-(6n+2) network
// except num_batches_tracked.
func torchvisionResNetShapes(n, inC, classes int) map[string][]int {
	m := map[string][]int{}
	bn := func(prefix string, c int) {
		for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
			m[prefix+"."+s] = []int{c}
		}
	}
	m["conv1.weight"] = []int{16, inC, 3, 3}
	bn("bn1", 16)
	for s, c := range []int{16, 32, 64} {
		for j := 0; j < n; j++ {
			p := fmt.Sprintf("layer%d.%d", s+1, j)
			cin := c
			if j == 0 && s > 0 {
				cin = c / 2
				m[p+".downsample.0.weight"] = []int{c, cin, 1, 1}
				bn(p+".downsample.1", c)
			}
			m[p+".conv1.weight"] = []int{c, cin, 3, 3}
			bn(p+".bn1", c)
			m[p+".conv2.weight"] = []int{c, c, 3, 3}
			bn(p+".bn2", c)
		}
	}
	m["fc.weight"] = []int{classes, 64}
	m["fc.bias"] = []int{classes}
	return m
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// countParams returns the number of trainable values (weights, BN affine,
// fc bias) and of BN running-statistic values.
func countParams(shapes map[string][]int) (trainable, running int) {
	for name, s := range shapes {
		if strings.HasSuffix(name, ".running_mean") || strings.HasSuffix(name, ".running_var") {
			running += numel(s)
		} else {
			trainable += numel(s)
		}
	}
	return
}

func TestCIFARResNet20ParamNamesAndShapes(t *testing.T) {
	net, err := models.CIFARResNet(20, 1, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := net.ParamShapes()
	want := torchvisionResNetShapes(3, 1, 10)
	for name, ws := range want {
		gs, ok := got[name]
		if !ok {
			t.Errorf("missing parameter %q %v", name, ws)
			continue
		}
		if !slices.Equal(gs, ws) {
			t.Errorf("parameter %q has shape %v, want %v", name, gs, ws)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected parameter %q %v", name, got[name])
		}
	}
	// A few entries spelled out literally, independent of the helper above.
	for name, ws := range map[string][]int{
		"conv1.weight":                 {16, 1, 3, 3},
		"bn1.running_var":              {16},
		"layer1.2.conv2.weight":        {16, 16, 3, 3},
		"layer2.0.conv1.weight":        {32, 16, 3, 3},
		"layer2.0.downsample.0.weight": {32, 16, 1, 1},
		"layer2.0.downsample.1.bias":   {32},
		"layer3.0.downsample.0.weight": {64, 32, 1, 1},
		"layer3.2.bn2.running_mean":    {64},
		"fc.weight":                    {10, 64},
		"fc.bias":                      {10},
	} {
		if !slices.Equal(got[name], ws) {
			t.Errorf("%s: got %v, want %v", name, got[name], ws)
		}
	}
	for _, name := range []string{"layer1.0.downsample.0.weight", "layer2.1.downsample.0.weight", "conv1.bias", "layer1.0.conv1.bias"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s should not exist", name)
		}
	}
	// 21 convolutions (19 3x3 + 2 downsample), 21 BatchNorms x 4, fc weight and bias.
	if len(got) != 21+21*4+2 {
		t.Errorf("%d parameter tensors, want %d", len(got), 21+21*4+2)
	}
	names := net.ParamNames()
	if !sort.StringsAreSorted(names) || len(names) != len(got) {
		t.Errorf("ParamNames not the sorted keys of ParamShapes: %v", names)
	}

	// Counts: computed independently from the architecture, by hand.
	// Convolutions: stem 16·1·9; stage 1: 6·16·16·9; stage 2: 16·32·9 + 5·32·32·9;
	// stage 3: 32·64·9 + 5·64·64·9; shortcuts 16·32 + 32·64; fc 64·10 + 10.
	// BatchNorm channels: 16 + 6·16 + 7·32 + 7·64 = 784, two affine values each.
	convs := 16*1*9 + 6*16*16*9 + (16*32*9 + 5*32*32*9) + (32*64*9 + 5*64*64*9) + 16*32 + 32*64
	bnChannels := 16 + 6*16 + 7*32 + 7*64
	wantTrainable := convs + 64*10 + 10 + 2*bnChannels
	trainable, running := countParams(got)
	if trainable != wantTrainable || running != 2*bnChannels {
		t.Errorf("ResNet-20 (1 channel): %d trainable, %d running values; want %d, %d", trainable, running, wantTrainable, 2*bnChannels)
	}
	// With RGB input the network is the well-known 272 474-parameter ResNet-20.
	rgb, err := models.CIFARResNet(20, 1, 3, 32, 32, 10)
	if err != nil {
		t.Fatal(err)
	}
	if tr, _ := countParams(rgb.ParamShapes()); tr != 272474 {
		t.Errorf("ResNet-20 (RGB) has %d trainable parameters, want 272474", tr)
	}
	if tr, run := countParams(torchvisionResNetShapes(3, 3, 10)); tr != 272474 || run != 1568 {
		t.Errorf("reference shapes: %d, %d", tr, run)
	}
	if rn := models.ResNet20(); fmt.Sprint(rn.ParamShapes()) != fmt.Sprint(got) || rn.Name != "resnet20" {
		t.Errorf("ResNet20() differs from CIFARResNet(20, 1, 1, 28, 28, 10)")
	}
}

func TestCIFARResNetStructure(t *testing.T) {
	for _, depth := range []int{8, 14, 32, 56} {
		net, err := models.CIFARResNet(depth, 2, 3, 16, 16, 7)
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		n := (depth - 2) / 6
		got := net.ParamShapes()
		want := torchvisionResNetShapes(n, 3, 7)
		// width 2 doubles every channel count.
		if len(got) != len(want) {
			t.Errorf("depth %d: %d tensors, want %d", depth, len(got), len(want))
		}
		if s := got["layer3.0.downsample.0.weight"]; !slices.Equal(s, []int{128, 64, 1, 1}) {
			t.Errorf("depth %d width 2: downsample shape %v", depth, s)
		}
		if s := got["fc.weight"]; !slices.Equal(s, []int{7, 128}) {
			t.Errorf("depth %d width 2: fc shape %v", depth, s)
		}
		if net.Name != fmt.Sprintf("resnet%d-w2", depth) {
			t.Errorf("name %q", net.Name)
		}
		// 1 stem + 3n blocks + head; strides 2 exactly at layer2.0 and layer3.0.
		if len(net.Blocks) != 3*n+2 {
			t.Errorf("depth %d: %d blocks", depth, len(net.Blocks))
		}
		convs := 0
		for _, l := range net.Layers() {
			if l.Kind != models.Conv {
				continue
			}
			convs++
			wantStride := 1
			if strings.HasPrefix(l.Name, "layer2.0.") || strings.HasPrefix(l.Name, "layer3.0.") {
				if !strings.HasSuffix(l.Name, "conv2") {
					wantStride = 2
				}
			}
			if l.Stride != wantStride {
				t.Errorf("depth %d: %s stride %d, want %d", depth, l.Name, l.Stride, wantStride)
			}
		}
		if convs != depth-1+2 { // depth counts the 3x3 convs and fc; plus 2 shortcut convs
			t.Errorf("depth %d: %d convolutions, want %d", depth, convs, depth+1)
		}
		if net.ClassifierWidth != 128 || net.NumStages != 3 {
			t.Errorf("classifier width %d, stages %d", net.ClassifierWidth, net.NumStages)
		}
		for s := 1; s <= 3; s++ {
			if len(net.StageBlocks(s)) != n {
				t.Errorf("stage %d has %d blocks, want %d", s, len(net.StageBlocks(s)), n)
			}
		}
	}
}

func TestCIFARResNetBadArguments(t *testing.T) {
	for _, c := range []struct{ depth, width int }{
		{0, 1}, {2, 1}, {7, 1}, {9, 1}, {18, 1}, {21, 1}, {-4, 1}, {20, 0}, {20, -1},
	} {
		net, err := models.CIFARResNet(c.depth, c.width, 1, 28, 28, 10)
		if err == nil || net != nil {
			t.Errorf("CIFARResNet(depth %d, width %d): no error", c.depth, c.width)
			continue
		}
		if c.width >= 1 && !strings.Contains(err.Error(), fmt.Sprint(c.depth)) {
			t.Errorf("depth %d: error %q does not name the depth", c.depth, err)
		}
		if c.width < 1 && !strings.Contains(err.Error(), "width") {
			t.Errorf("width %d: error %q does not mention the width", c.width, err)
		}
	}
}

// ---- A PyTorch-style safetensors file written by hand ----

// rawTensor is one entry of a hand-written safetensors file.
type rawTensor struct {
	name  string
	dtype string
	shape []int
	data  []byte
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func f64Bytes(v []float64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return b
}

// torchFile lays the tensors out as safetensors.torch.save_file does: data
// sorted by decreasing alignment (8-byte dtypes first) then name, header with
// "__metadata__" first, padded with spaces to a multiple of 8 bytes.
func torchFile(ts []rawTensor, meta string) []byte {
	size := map[string]int{"I64": 8, "F64": 8, "F32": 4}
	sort.Slice(ts, func(i, j int) bool {
		if size[ts[i].dtype] != size[ts[j].dtype] {
			return size[ts[i].dtype] > size[ts[j].dtype]
		}
		return ts[i].name < ts[j].name
	})
	var hdr, data bytes.Buffer
	hdr.WriteString(`{"__metadata__":` + meta)
	for _, t := range ts {
		shape := make([]string, len(t.shape))
		for i, d := range t.shape {
			shape[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(&hdr, `,"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}`,
			t.name, t.dtype, strings.Join(shape, ","), data.Len(), data.Len()+len(t.data))
		data.Write(t.data)
	}
	hdr.WriteString("}")
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var out bytes.Buffer
	binary.Write(&out, binary.LittleEndian, uint64(hdr.Len()))
	out.Write(hdr.Bytes())
	out.Write(data.Bytes())
	return out.Bytes()
}

// torchStateDict returns the state_dict of a small CIFAR ResNet as PyTorch
// would save it — including the I64 num_batches_tracked scalars — with
// distinct random float32 values, and those values by name.
func torchStateDict(t *testing.T, shapes map[string][]int, seed uint64) ([]rawTensor, map[string][]float32) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 99))
	values := map[string][]float32{}
	var ts []rawTensor
	names := make([]string, 0, len(shapes))
	for name := range shapes {
		names = append(names, name)
	}
	sort.Strings(names) // the same values on every run
	for _, name := range names {
		shape := shapes[name]
		v := make([]float32, numel(shape))
		for i := range v {
			v[i] = float32(r.NormFloat64())
			if strings.HasSuffix(name, "running_var") {
				v[i] = float32(0.1 + r.Float64())
			}
		}
		values[name] = v
		ts = append(ts, rawTensor{name, "F32", shape, f32Bytes(v)})
		if strings.HasSuffix(name, ".running_var") {
			bn := strings.TrimSuffix(name, ".running_var")
			ts = append(ts, rawTensor{bn + ".num_batches_tracked", "I64", []int{}, binary.LittleEndian.AppendUint64(nil, 3910)})
		}
	}
	return ts, values
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func smallNet(t *testing.T) *models.Net {
	t.Helper()
	net, err := models.CIFARResNet(8, 1, 1, 12, 12, 10)
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func TestLoadParamsPyTorchStateDict(t *testing.T) {
	net := smallNet(t)
	shapes := torchvisionResNetShapes(1, 1, 10)
	ts, values := torchStateDict(t, shapes, 1)
	nbt := 0
	for _, rt := range ts {
		if strings.HasSuffix(rt.name, "num_batches_tracked") {
			nbt++
		}
	}
	if nbt != 9 { // stem + 2 per block x 3 blocks + 2 downsample
		t.Fatalf("test setup: %d num_batches_tracked", nbt)
	}
	path := writeFile(t, t.TempDir(), "resnet8.safetensors", torchFile(ts, `{"format":"pt"}`))
	p, meta, err := models.LoadParams(path, net)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != 1 || meta["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", meta)
	}
	if len(p) != len(shapes) {
		t.Errorf("%d tensors loaded, want %d (num_batches_tracked must be skipped)", len(p), len(shapes))
	}
	if err := net.Check(p); err != nil {
		t.Error(err)
	}
	for name, want := range values {
		tt, ok := p[name]
		if !ok {
			t.Errorf("%s not loaded", name)
			continue
		}
		if !slices.Equal(tt.Shape().Dimensions, shapes[name]) {
			t.Errorf("%s: shape %v, want %v", name, tt.Shape().Dimensions, shapes[name])
		}
		got := tensors.MustCopyFlatData[float32](tt)
		if !slices.Equal(got, want) {
			t.Errorf("%s: values differ", name)
		}
	}
}

func TestLoadParamsReportsEveryProblem(t *testing.T) {
	net := smallNet(t)
	shapes := torchvisionResNetShapes(1, 1, 10)
	ts, _ := torchStateDict(t, shapes, 2)
	var bad []rawTensor
	for _, rt := range ts {
		switch rt.name {
		case "layer2.0.bn1.running_var": // missing
			continue
		case "fc.weight": // mis-shaped
			rt.shape = []int{10, 32}
			rt.data = rt.data[:4*320]
		case "layer3.0.bn2.bias": // wrong dtype
			rt = rawTensor{rt.name, "F64", rt.shape, f64Bytes(make([]float64, 64))}
		}
		bad = append(bad, rt)
	}
	bad = append(bad, rawTensor{"layer1.0.conv3.weight", "F32", []int{16, 16, 3, 3}, make([]byte, 4*16*16*9)}) // extra
	dir := t.TempDir()
	path := writeFile(t, dir, "bad.safetensors", torchFile(bad, `{"format":"pt"}`))
	_, _, err := models.LoadParams(path, net)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, s := range []string{path, "layer2.0.bn1.running_var", "fc.weight", "layer3.0.bn2.bias", "layer1.0.conv3.weight", "resnet8"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not mention %q:\n%s", s, msg)
		}
	}
	if strings.Contains(msg, "num_batches_tracked") {
		t.Errorf("error mentions num_batches_tracked:\n%s", msg)
	}
	var ce *safetensors.CheckError
	if !errors.As(err, &ce) || len(ce.Problems) != 4 {
		t.Errorf("want one error listing exactly 4 problems, got %v", err)
	}
	t.Logf("%v", err)
}

func TestLoadParamsCorruptFiles(t *testing.T) {
	net := smallNet(t)
	ts, _ := torchStateDict(t, torchvisionResNetShapes(1, 1, 10), 3)
	good := torchFile(ts, `{"format":"pt"}`)
	hdrLen := int(binary.LittleEndian.Uint64(good))
	dir := t.TempDir()
	cases := map[string][]byte{
		"truncated-data.safetensors":   good[:len(good)-5],
		"truncated-header.safetensors": good[:8+hdrLen/2],
		"short.safetensors":            good[:5],
		"empty.safetensors":            {},
		"trailing.safetensors":         append(slices.Clone(good), 0, 0, 0, 0),
		"text.safetensors":             []byte("this is not a safetensors file at all"),
		"huge-header.safetensors":      append(binary.LittleEndian.AppendUint64(nil, 1<<40), good[8:]...),
	}
	garbled := slices.Clone(good)
	copy(garbled[8+hdrLen/2:], "\x00\xff{]")
	cases["garbled-json.safetensors"] = garbled
	badOffsets := slices.Clone(good)
	i := bytes.Index(badOffsets, []byte(`"data_offsets":[0,`))
	copy(badOffsets[i:], `"data_offsets":[4,`)
	cases["overlap.safetensors"] = badOffsets
	for name, b := range cases {
		path := writeFile(t, dir, name, b)
		_, _, err := models.LoadParams(path, net)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error does not name the file: %v", name, err)
		}
	}
	missing := filepath.Join(dir, "nonexistent.safetensors")
	if _, _, err := models.LoadParams(missing, net); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSaveLoadRoundTripAtomic(t *testing.T) {
	net := smallNet(t)
	shapes := net.ParamShapes()
	r := rand.New(rand.NewPCG(5, 6))
	p := models.Params{}
	for _, name := range net.ParamNames() {
		s := shapes[name]
		v := make([]float32, numel(s))
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		p[name] = tensors.FromFlatDataAndDimensions(v, s...)
	}
	// Values that must survive bit for bit.
	special := []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32,
		float32(math.Inf(-1)), math.Float32frombits(0x7fc00123), -1.0000001}
	fcb := tensors.MustCopyFlatData[float32](p["fc.bias"])
	copy(fcb, special)
	p["fc.bias"] = tensors.FromFlatDataAndDimensions(fcb, 10)

	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	meta := map[string]string{"epoch": "3", "note": "ünïcode ✓"}
	for round := 0; round < 2; round++ { // the second write replaces the file
		if err := models.SaveParams(path, p, meta); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "ckpt.safetensors" {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("folder holds %v after SaveParams, want only ckpt.safetensors", names)
		}
	}
	q, m, err := models.LoadParams(path, net)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m) != fmt.Sprint(meta) {
		t.Errorf("metadata %v, want %v", m, meta)
	}
	for name, tt := range p {
		a := tensors.MustCopyFlatData[float32](tt)
		b := tensors.MustCopyFlatData[float32](q[name])
		if len(a) != len(b) || !slices.Equal(q[name].Shape().Dimensions, tt.Shape().Dimensions) {
			t.Errorf("%s: shape changed", name)
			continue
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Errorf("%s[%d]: %x became %x", name, i, math.Float32bits(a[i]), math.Float32bits(b[i]))
			}
		}
	}

	// A failing write (the target is a folder) leaves nothing behind.
	blocked := filepath.Join(dir, "blocked.safetensors")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := models.SaveParams(blocked, p, nil); err == nil || !strings.Contains(err.Error(), blocked) {
		t.Errorf("SaveParams over a folder: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		for _, e := range entries {
			t.Errorf("left in the folder: %s", e.Name())
		}
	}
}
