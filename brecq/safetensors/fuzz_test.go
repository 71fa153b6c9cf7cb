package safetensors

import (
	"bytes"
	"maps"
	"slices"
	"testing"
)

func FuzzRead(f *testing.F) {
	valid := handFile(f)
	f.Add(valid)
	var buf bytes.Buffer
	if err := Write(&buf, []*Tensor{
		NewF32("w", []int{2, 2}, []float32{1, 2, 3, 4}),
		NewI64("n", nil, []int64{5}),
		{Name: "h", DType: BF16, Shape: []int{1}, Raw: []byte{0x80, 0x3f}},
	}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(valid[:len(valid)-1])
	f.Add(valid[:20])
	f.Add(buildFile(`{}`, nil))
	f.Add(buildFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}`, []byte{9}))
	f.Add(buildFile(`{"__metadata__":null}`, nil))

	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, meta, err := ReadBytes(data, "fuzz")
		if err != nil {
			if tensors != nil || meta != nil {
				t.Fatalf("results along with error %v", err)
			}
			return
		}
		// Invariants of a successful read.
		var total int
		for name, tn := range tensors {
			size, ok := DTypeSize(tn.DType)
			n := tn.NumElements()
			if tn.Name != name || !ok || n < 0 {
				t.Fatalf("bad tensor %q: %+v", name, tn)
			}
			if tn.DType == F32 {
				if len(tn.F32) != n || tn.Raw != nil {
					t.Fatalf("F32 tensor %q: %d values, shape %v", name, len(tn.F32), tn.Shape)
				}
			} else if len(tn.Raw) != n*size || tn.F32 != nil {
				t.Fatalf("tensor %q: %d bytes, %s shape %v", name, len(tn.Raw), tn.DType, tn.Shape)
			}
			total += n * size
		}
		if total > len(data) {
			t.Fatalf("tensors hold %d bytes, file has %d", total, len(data))
		}
		// Writing it back and reading again gives the same tensors.
		var buf bytes.Buffer
		if err := Write(&buf, slices.Collect(maps.Values(tensors)), meta); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		again, meta2, err := ReadBytes(buf.Bytes(), "rewritten")
		if err != nil {
			t.Fatalf("reading the rewritten file: %v", err)
		}
		if !maps.Equal(meta, meta2) || len(again) != len(tensors) {
			t.Fatalf("round trip changed metadata or tensor count")
		}
		for name, a := range tensors {
			b := again[name]
			if b == nil || a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !sameF32(a.F32, b.F32) || !bytes.Equal(a.Raw, b.Raw) {
				t.Fatalf("round trip changed %q: %+v vs %+v", name, a, b)
			}
		}
	})
}
