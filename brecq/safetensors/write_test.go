package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteKnownBytes(t *testing.T) {
	// 85 bytes of JSON + 3 spaces = 88 = 0x58; then 1.0f and -2.0f.
	want := []byte{0x58, 0, 0, 0, 0, 0, 0, 0}
	want = append(want, `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `...)
	want = append(want, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0)

	path := filepath.Join(t.TempDir(), "a.safetensors")
	if err := WriteFile(path, []*Tensor{NewF32("a", []int{2}, []float32{1, -2})}, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("written bytes:\n%q\nwant:\n%q", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode(), err)
	}

	var buf bytes.Buffer
	if err := Write(&buf, []*Tensor{NewF32("a", []int{2}, []float32{1, -2})}, map[string]string{"format": "pt"}); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Write: %v, bytes %q", err, buf.Bytes())
	}
}

func TestWriteHandBuiltTensors(t *testing.T) {
	// The tensors of the hand-built file, written in sorted-name order:
	// bias [0,8], num_batches_tracked [8,16], weight [16,40].
	hdr := `{"__metadata__":{"format":"pt"},` +
		`"layer.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
		`"layer.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[8,16]},` +
		`"layer.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[16,40]}}` + ` `
	d := handData()
	wantData := slices.Concat(d[8:16], d[0:8], d[16:])
	want := buildFile(hdr, wantData)
	if len(hdr)%8 != 0 {
		t.Fatalf("test bug: header length %d", len(hdr))
	}

	var buf bytes.Buffer
	err := Write(&buf, []*Tensor{
		NewF32("layer.weight", []int{2, 3}, handWeight),
		NewI64("layer.num_batches_tracked", nil, []int64{42}),
		NewF32("layer.bias", []int{2}, handBias),
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("written bytes:\n%q\nwant:\n%q", buf.Bytes(), want)
	}

	// Writing what was read from the hand-built file gives the same bytes.
	tensors, meta, err := ReadBytes(handFile(t), "hand")
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := Write(&buf, slices.Collect(maps.Values(tensors)), meta); err != nil || !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("rewrite: %v\n%q\nwant:\n%q", err, buf.Bytes(), want)
	}
}

func TestRoundTrip(t *testing.T) {
	nan := math.Float32frombits(0x7fc00123)
	big := make([]float32, 300_000) // more than one write/read chunk
	for i := range big {
		big[i] = float32(i)*0.5 - 1000
	}
	in := []*Tensor{
		NewF32("z.scalar", nil, []float32{3.5}),
		NewF32("special", []int{6}, []float32{float32(math.Inf(1)), float32(math.Inf(-1)), nan, float32(math.Copysign(0, -1)), math.MaxFloat32, math.SmallestNonzeroFloat32}),
		NewF32("empty", []int{3, 0}, nil),
		NewF32("big", []int{600, 500}, big),
		NewI64("count", []int{2}, []int64{-1, math.MaxInt64}),
		{Name: "half", DType: F16, Shape: []int{1}, Raw: []byte{0x00, 0x3c}},
		{Name: "raw.f32", Shape: []int{1}, Raw: []byte{0x00, 0x00, 0x80, 0x3f}}, // empty dtype = F32
		NewF32("<html & \"quotes\">\n", []int{1}, []float32{7}),
	}
	meta := map[string]string{"format": "pt", "note": "<b>&é"}
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	if err := WriteFile(path, in, meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint64(raw))
	if n%8 != 0 {
		t.Errorf("header length %d not padded to 8", n)
	}
	if !strings.Contains(string(raw[8:8+n]), `"<html & \"quotes\">\n"`) {
		t.Errorf("header does not contain the unescaped-HTML name: %s", raw[8:8+n])
	}

	out, gotMeta, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(gotMeta, meta) {
		t.Errorf("metadata = %v, want %v", gotMeta, meta)
	}
	if len(out) != len(in) {
		t.Errorf("got %d tensors, want %d", len(out), len(in))
	}
	for _, w := range in {
		g := out[w.Name]
		if g == nil {
			t.Errorf("tensor %q missing", w.Name)
			continue
		}
		wantF32, _ := w.Float32s()
		dtype := cmp.Or(w.DType, F32)
		if g.DType != dtype || !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("%q: dtype %s shape %v, want %s %v", w.Name, g.DType, g.Shape, dtype, w.Shape)
		}
		if dtype == F32 {
			if !sameF32(g.F32, wantF32) || g.Raw != nil {
				t.Errorf("%q: F32 %v raw %v, want %v", w.Name, g.F32, g.Raw, wantF32)
			}
		} else if !bytes.Equal(g.Raw, w.Raw) || g.F32 != nil {
			t.Errorf("%q: raw %v, want %v", w.Name, g.Raw, w.Raw)
		}
	}
	if v, _ := out["count"].Int64s(); !slices.Equal(v, []int64{-1, math.MaxInt64}) {
		t.Errorf("count = %v", v)
	}
	if names := listDir(t, filepath.Dir(path)); !slices.Equal(names, []string{"rt.safetensors"}) {
		t.Errorf("directory holds %v", names)
	}

	// Overwriting an existing file works and replaces it.
	if err := WriteFile(path, []*Tensor{NewF32("only", []int{1}, []float32{1})}, nil); err != nil {
		t.Fatal(err)
	}
	out, gotMeta, err = ReadFile(path)
	if err != nil || len(out) != 1 || out["only"] == nil || gotMeta != nil {
		t.Errorf("after overwrite: %v, %v, %v", out, gotMeta, err)
	}
}

func TestWriteInvalid(t *testing.T) {
	tests := []struct {
		name    string
		tensors []*Tensor
		meta    map[string]string
		msg     string
	}{
		{"nil tensor", []*Tensor{nil}, nil, "nil"},
		{"duplicate", []*Tensor{NewF32("a", nil, []float32{1}), NewF32("a", nil, []float32{2})}, nil, `"a": duplicate`},
		{"reserved", []*Tensor{NewF32("__metadata__", nil, []float32{1})}, nil, "reserved"},
		{"too few values", []*Tensor{NewF32("w", []int{2, 2}, []float32{1, 2, 3})}, nil, `"w": shape [2 2] has 4 elements but F32 has 3`},
		{"negative dim", []*Tensor{NewF32("w", []int{-1}, nil)}, nil, `"w": invalid shape`},
		{"overflowing shape", []*Tensor{NewF32("w", []int{1 << 40, 1 << 40}, nil)}, nil, `"w": invalid shape`},
		{"unknown dtype", []*Tensor{{Name: "w", DType: "F4", Raw: []byte{0}}}, nil, `"w": unknown`},
		{"both F32 and Raw", []*Tensor{{Name: "w", Shape: []int{1}, F32: []float32{1}, Raw: []byte{0, 0, 0, 0}}}, nil, "both"},
		{"F32 values for I64", []*Tensor{{Name: "w", DType: I64, Shape: []int{1}, F32: []float32{1}}}, nil, "F32 values are set"},
		{"raw length", []*Tensor{{Name: "w", DType: I64, Shape: []int{2}, Raw: make([]byte, 8)}}, nil, `"w": I64 shape [2] needs 16 bytes but Raw has 8`},
		{"invalid UTF-8 name", []*Tensor{NewF32("\xff", nil, []float32{1})}, nil, "UTF-8"},
		{"invalid UTF-8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.safetensors")
			err := WriteFile(path, tc.tensors, tc.meta)
			var fe *FormatError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want a *FormatError naming the file and containing %q", err, tc.msg)
			}
			if names := listDir(t, dir); len(names) != 0 {
				t.Errorf("directory holds %v after a failed write", names)
			}
			var buf bytes.Buffer
			if err := Write(&buf, tc.tensors, tc.meta); err == nil || buf.Len() != 0 {
				t.Errorf("Write: err = %v, %d bytes written", err, buf.Len())
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	tensors := []*Tensor{NewF32("a", []int{2}, []float32{1, 2})}

	t.Run("missing directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "nope", "x.safetensors")
		err := WriteFile(path, tensors, nil)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want an error naming %s", err, path)
		}
		if names := listDir(t, dir); len(names) != 0 {
			t.Errorf("directory holds %v", names)
		}
	})

	t.Run("destination is a directory", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "d.safetensors")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteFile(path, tensors, nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want an error naming %s", err, path)
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{"d.safetensors"}) {
			t.Errorf("directory holds %v, want only the destination", names)
		}
		if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
			t.Errorf("destination no longer a directory: %v, %v", fi, err)
		}
		if names := listDir(t, path); len(names) != 0 {
			t.Errorf("destination directory holds %v", names)
		}
	})

	t.Run("failure keeps the previous file", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "m.safetensors")
		if err := WriteFile(path, tensors, map[string]string{"v": "1"}); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}

		// The rename fails after the temp file has been fully written.
		var renamedFrom string
		rename = func(oldpath, newpath string) error {
			renamedFrom = oldpath
			return errors.New("simulated rename failure")
		}
		defer func() { rename = os.Rename }()
		err = WriteFile(path, []*Tensor{NewF32("b", []int{1}, []float32{3})}, map[string]string{"v": "2"})
		if err == nil || !strings.Contains(err.Error(), "simulated") || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v", err)
		}
		if filepath.Dir(renamedFrom) != dir || !strings.HasPrefix(filepath.Base(renamedFrom), ".m.safetensors.tmp-") {
			t.Errorf("temp file %q not in the destination directory", renamedFrom)
		}
		rename = os.Rename

		// An invalid tensor fails before anything is written.
		if err := WriteFile(path, []*Tensor{NewF32("b", []int{2}, []float32{3})}, nil); err == nil {
			t.Errorf("invalid tensor: no error")
		}

		after, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(after, before) {
			t.Errorf("previous file changed: %v", err)
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{"m.safetensors"}) {
			t.Errorf("directory holds %v, want only m.safetensors", names)
		}
		if _, meta, err := ReadFile(path); err != nil || meta["v"] != "1" {
			t.Errorf("previous file unreadable: %v, %v", meta, err)
		}
	})

	t.Run("relative path", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		if err := WriteFile("rel.safetensors", tensors, nil); err != nil {
			t.Fatal(err)
		}
		if names := listDir(t, dir); !slices.Equal(names, []string{"rel.safetensors"}) {
			t.Errorf("directory holds %v", names)
		}
	})
}

// failWriter accepts limit bytes, then fails.
type failWriter struct{ limit int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errors.New("disk full")
	}
	w.limit -= len(p)
	return len(p), nil
}

func TestWriteWriterError(t *testing.T) {
	big := NewF32("big", []int{1 << 19}, make([]float32, 1<<19)) // 2 MiB
	for _, limit := range []int{0, 100, 1 << 20, 3 << 20 / 2} {
		err := Write(&failWriter{limit: limit}, []*Tensor{big, NewI64("n", nil, []int64{1})}, nil)
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("limit %d: err = %v", limit, err)
		}
	}
}
