package safetensors

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// handHeader is a header in the style of safetensors.torch.save_file: the
// metadata first, the 8-byte-aligned I64 tensor first in the data section,
// compact JSON, then one space of padding to reach 240 bytes.
const handHeader = `{"__metadata__":{"format":"pt"},` +
	`"layer.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},` +
	`"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},` +
	`"layer.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}}` +
	` `

var (
	handWeight = []float32{1, -2.5, 3.25, 0, 1e-3, -7}
	handBias   = []float32{0.5, -0.125}
)

// handData returns the data section of the hand-built file.
func handData() []byte {
	var data []byte
	data = binary.LittleEndian.AppendUint64(data, 42) // num_batches_tracked
	for _, v := range handBias {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	for _, v := range handWeight {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	return data
}

// handFile returns the complete hand-built file.
func handFile(t testing.TB) []byte {
	if len(handHeader) != 240 {
		t.Fatalf("test bug: hand header is %d bytes, want 240", len(handHeader))
	}
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, 240)
	b = append(b, handHeader...)
	return append(b, handData()...)
}

// buildFile assembles a file from a header (padded here with spaces to a
// multiple of 8) and a data section.
func buildFile(header string, data []byte) []byte {
	for len(header)%8 != 0 {
		header += " "
	}
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func writeTemp(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sameF32(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestReadHandBuilt(t *testing.T) {
	path := writeTemp(t, "hand.safetensors", handFile(t))
	tensors, meta, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != 1 || meta["format"] != "pt" {
		t.Errorf("metadata = %v, want map[format:pt]", meta)
	}
	if len(tensors) != 3 {
		t.Errorf("got %d tensors, want 3", len(tensors))
	}

	w := tensors["layer.weight"]
	if w == nil || w.Name != "layer.weight" || w.DType != F32 || !slices.Equal(w.Shape, []int{2, 3}) || w.Raw != nil {
		t.Fatalf("layer.weight = %+v", w)
	}
	if !sameF32(w.F32, handWeight) {
		t.Errorf("layer.weight values = %v, want %v", w.F32, handWeight)
	}
	b := tensors["layer.bias"]
	if b == nil || b.DType != F32 || !slices.Equal(b.Shape, []int{2}) || !sameF32(b.F32, handBias) {
		t.Errorf("layer.bias = %+v, want values %v", b, handBias)
	}
	n := tensors["layer.num_batches_tracked"]
	if n == nil || n.DType != I64 || len(n.Shape) != 0 || n.F32 != nil || n.NumElements() != 1 {
		t.Fatalf("layer.num_batches_tracked = %+v", n)
	}
	if !slices.Equal(n.Raw, []byte{42, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("num_batches_tracked raw = %v", n.Raw)
	}
	if v, err := n.Int64s(); err != nil || !slices.Equal(v, []int64{42}) {
		t.Errorf("Int64s() = %v, %v; want [42]", v, err)
	}
	if _, err := n.Float32s(); err == nil {
		t.Errorf("Float32s() of an I64 tensor: no error")
	}
	if v, err := w.Float32s(); err != nil || &v[0] != &w.F32[0] {
		t.Errorf("Float32s() of an F32 tensor should return F32 itself, got %v, %v", v, err)
	}

	// The same bytes through ReadBytes.
	tensors2, meta2, err := ReadBytes(handFile(t), "mem")
	if err != nil || len(tensors2) != 3 || meta2["format"] != "pt" || !sameF32(tensors2["layer.weight"].F32, handWeight) {
		t.Errorf("ReadBytes: %v, %v, %v", tensors2, meta2, err)
	}
}

func TestReadNoMetadataEmptyAndZeroSize(t *testing.T) {
	// No metadata, a zero-element tensor sharing its offset with another,
	// and unknown fields in a description (ignored).
	hdr := `{"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},` +
		`"s":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`
	data := binary.LittleEndian.AppendUint32(nil, math.Float32bits(3))
	tensors, meta, err := ReadBytes(buildFile(hdr, data), "z")
	if err != nil {
		t.Fatal(err)
	}
	if meta != nil {
		t.Errorf("metadata = %v, want nil", meta)
	}
	if e := tensors["e"]; len(e.F32) != 0 || !slices.Equal(e.Shape, []int{0, 5}) {
		t.Errorf("e = %+v", e)
	}
	if s := tensors["s"]; !sameF32(s.F32, []float32{3}) {
		t.Errorf("s = %+v", s)
	}

	// An empty file: "{}" and no data.
	tensors, _, err = ReadBytes(buildFile(`{}`, nil), "empty")
	if err != nil || len(tensors) != 0 {
		t.Errorf("empty: %v, %v", tensors, err)
	}
}

func TestReadOtherDTypes(t *testing.T) {
	hdr := `{"h":{"dtype":"F16","shape":[10],"data_offsets":[0,20]},` +
		`"b":{"dtype":"BF16","shape":[2],"data_offsets":[20,24]},` +
		`"d":{"dtype":"F64","shape":[1],"data_offsets":[24,32]},` +
		`"i":{"dtype":"I32","shape":[2],"data_offsets":[32,40]},` +
		`"u":{"dtype":"U8","shape":[2],"data_offsets":[40,42]},` +
		`"k":{"dtype":"BOOL","shape":[2],"data_offsets":[42,44]}}`
	var data []byte
	// F16 bit patterns and their exact values.
	f16 := []uint16{0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555}
	want16 := []float32{1, -2, 65504, 1.0 / (1 << 24), 1023.0 / (1 << 24), 1.0 / (1 << 14), float32(math.Copysign(0, -1)),
		float32(math.Inf(1)), float32(math.Inf(-1)), 0.333251953125}
	for _, h := range f16 {
		data = binary.LittleEndian.AppendUint16(data, h)
	}
	data = binary.LittleEndian.AppendUint16(data, 0x3fc0) // BF16 1.5
	data = binary.LittleEndian.AppendUint16(data, 0xc120) // BF16 -10
	data = binary.LittleEndian.AppendUint64(data, math.Float64bits(0.25))
	data = binary.LittleEndian.AppendUint32(data, uint32(0xffffffff)) // I32 -1
	data = binary.LittleEndian.AppendUint32(data, 7)
	data = append(data, 200, 3, 1, 0)
	tensors, _, err := ReadBytes(buildFile(hdr, data), "dtypes")
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, want []float32) {
		t.Helper()
		got, err := tensors[name].Float32s()
		if err != nil || !sameF32(got, want) {
			t.Errorf("%s: Float32s() = %v, %v; want %v", name, got, err, want)
		}
	}
	check("h", want16)
	check("b", []float32{1.5, -10})
	check("d", []float32{0.25})
	nan, _ := (&Tensor{DType: F16, Raw: []byte{0x00, 0x7e}}).Float32s()
	if len(nan) != 1 || !math.IsNaN(float64(nan[0])) {
		t.Errorf("F16 0x7e00 = %v, want NaN", nan)
	}
	checkInt := func(name string, want []int64) {
		t.Helper()
		got, err := tensors[name].Int64s()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: Int64s() = %v, %v; want %v", name, got, err, want)
		}
	}
	checkInt("i", []int64{-1, 7})
	checkInt("u", []int64{200, 3})
	checkInt("k", []int64{1, 0})
	if _, err := tensors["h"].Int64s(); err == nil {
		t.Errorf("Int64s() of F16: no error")
	}
	big := &Tensor{Name: "big", DType: U64, Raw: binary.LittleEndian.AppendUint64(nil, math.MaxUint64)}
	if _, err := big.Int64s(); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("U64 max: err = %v, want overflow", err)
	}
}

func TestReadCorrupt(t *testing.T) {
	valid := handFile(t)
	data := handData()
	weight := `"layer.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}`
	bias := `"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}`
	nbt := `"layer.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]}`
	obj := func(parts ...string) string { return "{" + strings.Join(parts, ",") + "}" }
	withLen := func(n uint64) []byte {
		b := slices.Clone(valid)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}
	tests := []struct {
		name    string
		file    []byte
		tensors []string // names the error must contain
		msg     string   // substring the error must contain
	}{
		{"empty file", nil, nil, "shorter than"},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, nil, "shorter than"},
		{"truncated data", valid[:len(valid)-4], []string{"layer.weight"}, "beyond the data section"},
		{"truncated header", valid[:100], nil, "exceeds the 92 bytes"},
		{"header length too large", withLen(uint64(len(valid))), nil, "header length"},
		{"header length absurd", withLen(1 << 40), nil, "exceeds the limit"},
		{"header length max uint64", withLen(math.MaxUint64), nil, "exceeds the limit"},
		{"bad JSON", buildFile(`{"layer.bias":{"dtype":"F32",`, data), nil, "invalid header JSON"},
		{"JSON not an object", buildFile(`["a"]`, nil), nil, "start with '{'"},
		{"leading space", buildFile(` {}`, nil), nil, "start with '{'"},
		{"trailing garbage", buildFile(`{}x`, nil), nil, "invalid header JSON"},
		{"two objects", buildFile(`{}{}`, nil), nil, "after the JSON object"},
		{"empty header", buildFile(``, nil), nil, "start with '{'"},
		{"invalid UTF-8", buildFile("{\"\xff\":1}", nil), nil, "UTF-8"},
		{"offsets overlapping",
			buildFile(obj(nbt, bias, `"layer.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[12,36]}`), data),
			[]string{"layer.weight", "layer.bias"}, "overlap"},
		{"offsets gap",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}`, weight), data),
			[]string{"layer.weight"}, "gap of 4"},
		{"trailing data", append(slices.Clone(valid), 0, 0, 0, 0), nil, "4 trailing bytes"},
		{"shape/offset mismatch",
			buildFile(obj(nbt, bias, `"layer.weight":{"dtype":"F32","shape":[3,3],"data_offsets":[16,40]}`), data),
			[]string{"layer.weight"}, "needs 36 bytes"},
		{"dtype/offset mismatch",
			buildFile(obj(`"layer.num_batches_tracked":{"dtype":"I32","shape":[],"data_offsets":[0,8]}`, bias, weight), data),
			[]string{"layer.num_batches_tracked"}, "needs 4 bytes"},
		{"shape overflow",
			buildFile(obj(nbt, bias, `"layer.weight":{"dtype":"F32","shape":[4611686018427387904,4,4],"data_offsets":[16,40]}`), data),
			[]string{"layer.weight"}, "needs more than 2^63 bytes"},
		{"unknown dtype",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F31","shape":[2],"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, `unknown or unsupported dtype "F31"`},
		{"dtype not a string",
			buildFile(obj(nbt, `"layer.bias":{"dtype":4,"shape":[2],"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, "invalid dtype"},
		{"missing data_offsets",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[2]}`, weight), data),
			[]string{"layer.bias"}, `missing "data_offsets"`},
		{"null shape",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":null,"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, `missing "shape"`},
		{"negative dimension",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[-2],"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, "dimension 0 is -2"},
		{"fractional dimension",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[2.5],"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, "invalid shape"},
		{"three offsets",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16,24]}`, weight), data),
			[]string{"layer.bias"}, "must have 2 elements"},
		{"negative offset",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[-8,16]}`, weight), data),
			[]string{"layer.bias"}, "invalid data_offsets"},
		{"reversed offsets",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[16,8]}`, weight), data),
			[]string{"layer.bias"}, "begin after they end"},
		{"description not an object",
			buildFile(obj(nbt, `"layer.bias":[1,2]`, weight), data),
			[]string{"layer.bias"}, "not a JSON object"},
		{"duplicate tensor", buildFile(obj(nbt, bias, bias, weight), data), nil, `duplicate key "layer.bias"`},
		{"duplicate tensor via escape",
			buildFile(obj(nbt, bias, `"layer.\u0062ias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}`, weight), data),
			nil, `duplicate key "layer.bias"`},
		{"duplicate field",
			buildFile(obj(nbt, `"layer.bias":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[8,16]}`, weight), data),
			[]string{"layer.bias"}, `duplicate key "dtype"`},
		{"metadata value not a string",
			buildFile(obj(`"__metadata__":{"format":1}`, nbt, bias, weight), data), nil, "not a string"},
		{"metadata not an object",
			buildFile(obj(`"__metadata__":"pt"`, nbt, bias, weight), data), nil, "invalid __metadata__"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, "corrupt.safetensors", tc.file)
			tensors, meta, err := ReadFile(path)
			if err == nil {
				t.Fatalf("no error; got %d tensors, metadata %v", len(tensors), meta)
			}
			msg := err.Error()
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %q is not a *FormatError", msg)
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, name := range tc.tensors {
				if !strings.Contains(msg, `"`+name+`"`) {
					t.Errorf("error %q does not name tensor %q", msg, name)
				}
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q does not contain %q", msg, tc.msg)
			}
			if tensors != nil || meta != nil {
				t.Errorf("got results along with the error")
			}
			// The in-memory reader agrees.
			if _, _, err := ReadBytes(tc.file, "x"); err == nil {
				t.Errorf("ReadBytes: no error")
			}
		})
	}
}

func TestReadFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.safetensors")
	if _, _, err := ReadFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: err = %v", err)
	}
	dir := t.TempDir()
	if _, _, err := ReadFile(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: err = %v", err)
	}
}

// shortReaderAt pretends to hold size bytes but returns only the first len(b).
type shortReaderAt []byte

func (r shortReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, errors.New("boom")
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, errors.New("boom")
	}
	return n, nil
}

func TestReadShortReaderAt(t *testing.T) {
	// A file that shrinks while being read: the size says the data is
	// there, but ReadAt fails.
	f := handFile(t)
	_, _, err := Read(shortReaderAt(f[:len(f)-1]), int64(len(f)), "shrinking")
	if err == nil || !strings.Contains(err.Error(), `"layer.weight"`) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v, want a read error naming layer.weight", err)
	}
	if _, _, err := Read(shortReaderAt(f), -1, "neg"); err == nil {
		t.Errorf("negative size: no error")
	}
}

func TestConversions(t *testing.T) {
	le := binary.LittleEndian
	ints := []struct {
		dtype string
		raw   []byte
		want  []int64
	}{
		{I8, []byte{0xff, 0x7f}, []int64{-1, 127}},
		{U8, []byte{0xff}, []int64{255}},
		{I16, le.AppendUint16(nil, 0x8000), []int64{-32768}},
		{U16, le.AppendUint16(nil, 0x8000), []int64{32768}},
		{I32, le.AppendUint32(nil, 0x80000000), []int64{-1 << 31}},
		{U32, le.AppendUint32(nil, 0x80000000), []int64{1 << 31}},
		{I64, le.AppendUint64(nil, 1<<63), []int64{math.MinInt64}},
		{U64, le.AppendUint64(nil, 1<<63-1), []int64{math.MaxInt64}},
	}
	for _, tc := range ints {
		got, err := (&Tensor{Name: "x", DType: tc.dtype, Raw: tc.raw}).Int64s()
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s Int64s() = %v, %v; want %v", tc.dtype, got, err, tc.want)
		}
	}
	for _, bad := range []*Tensor{
		{DType: "X"}, {DType: F32}, {DType: I32, Raw: []byte{1, 2}},
	} {
		if _, err := bad.Int64s(); err == nil {
			t.Errorf("Int64s() of %+v: no error", bad)
		}
	}
	for _, bad := range []*Tensor{
		{DType: U8}, {DType: F16, Raw: []byte{1}}, {DType: F64, Raw: []byte{1}}, {DType: F32, Raw: []byte{1}},
	} {
		if _, err := bad.Float32s(); err == nil {
			t.Errorf("Float32s() of %+v: no error", bad)
		}
	}
	// Negative F16 subnormal, and F32 data held in Raw.
	if got, _ := (&Tensor{DType: F16, Raw: []byte{0x01, 0x80}}).Float32s(); !sameF32(got, []float32{-1.0 / (1 << 24)}) {
		t.Errorf("F16 0x8001 = %v", got)
	}
	if got, _ := (&Tensor{Raw: []byte{0, 0, 0xc0, 0x3f}}).Float32s(); !sameF32(got, []float32{1.5}) {
		t.Errorf("raw F32 = %v", got)
	}
	for _, tc := range []struct {
		shape []int
		want  int
	}{{nil, 1}, {[]int{0, -1}, -1}, {[]int{2, 0}, 0}, {[]int{3, 4}, 12}, {[]int{math.MaxInt, 2}, -1}} {
		if got := (&Tensor{Shape: tc.shape}).NumElements(); got != tc.want {
			t.Errorf("NumElements(%v) = %d, want %d", tc.shape, got, tc.want)
		}
	}
	if n, ok := DTypeSize(BF16); n != 2 || !ok {
		t.Errorf("DTypeSize(BF16) = %d, %v", n, ok)
	}
	if _, ok := DTypeSize("F4"); ok {
		t.Errorf("DTypeSize(F4) ok")
	}
}
