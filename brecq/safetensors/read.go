package safetensors

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header length, in bytes, that the readers
// accept; it is the limit used by the reference Rust implementation.
const MaxHeaderSize = 100_000_000

// readChunk is the number of bytes read at a time when decoding F32 data.
const readChunk = 1 << 20

// ReadFile reads all tensors and the "__metadata__" map (nil if absent) of
// the safetensors file at path. Errors name the file and, where relevant,
// the tensor; malformed files yield a *[FormatError].
func ReadFile(path string) (map[string]*Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, &FormatError{File: path, Msg: "not a regular file"}
	}
	return Read(f, fi.Size(), path)
}

// ReadBytes is like [Read] for a file held in memory. The returned tensors
// do not alias data.
func ReadBytes(data []byte, name string) (map[string]*Tensor, map[string]string, error) {
	return Read(bytes.NewReader(data), int64(len(data)), name)
}

// Read reads all tensors and the "__metadata__" map (nil if absent) of a
// safetensors file of the given size, accessed through r. The name is used
// only in error messages. The whole header is validated before any tensor
// data is read, so allocations are bounded by size.
func Read(r io.ReaderAt, size int64, name string) (map[string]*Tensor, map[string]string, error) {
	h, err := readHeader(r, size, name)
	if err != nil {
		return nil, nil, err
	}
	tensors := make(map[string]*Tensor, len(h.entries))
	var buf []byte
	for _, e := range h.entries {
		t := &Tensor{Name: e.name, DType: e.dtype, Shape: e.shape}
		off := h.dataStart + e.begin
		n := e.end - e.begin
		if e.dtype == F32 {
			t.F32 = make([]float32, n/4)
			for done := int64(0); done < n; {
				c := min(n-done, readChunk)
				if int64(len(buf)) < c {
					buf = make([]byte, c)
				}
				if err := readFull(r, buf[:c], off+done); err != nil {
					return nil, nil, &FormatError{File: name, Tensor: e.name, Msg: "reading data: " + err.Error()}
				}
				decodeF32(t.F32[done/4:(done+c)/4], buf[:c])
				done += c
			}
		} else {
			t.Raw = make([]byte, n)
			if err := readFull(r, t.Raw, off); err != nil {
				return nil, nil, &FormatError{File: name, Tensor: e.name, Msg: "reading data: " + err.Error()}
			}
		}
		tensors[e.name] = t
	}
	return tensors, h.metadata, nil
}

// readFull reads exactly len(p) bytes at off.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// header is a parsed and validated safetensors header.
type header struct {
	metadata  map[string]string
	entries   []entry // sorted by data offset
	dataStart int64   // absolute offset of the data section
}

// entry describes one tensor of the header.
type entry struct {
	name       string
	dtype      string
	shape      []int
	begin, end int64 // relative to the data section
}

// readHeader reads and fully validates the header of a file of the given
// size: afterwards every entry's byte range is consistent with its dtype and
// shape, and the ranges tile the data section exactly.
func readHeader(r io.ReaderAt, size int64, name string) (*header, error) {
	ferr := func(tensor, format string, args ...any) error {
		return &FormatError{File: name, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if size < 8 {
		return nil, ferr("", "file is %d bytes, shorter than the 8-byte header length", max(size, 0))
	}
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return nil, ferr("", "reading header length: %v", err)
	}
	n := getUint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, ferr("", "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, ferr("", "header length %d exceeds the %d bytes that follow it in the file", n, size-8)
	}
	raw := make([]byte, n)
	if err := readFull(r, raw, 8); err != nil {
		return nil, ferr("", "reading header: %v", err)
	}
	h := &header{dataStart: 8 + int64(n)}
	dataSize := size - h.dataStart

	if !utf8.Valid(raw) {
		return nil, ferr("", "header is not valid UTF-8")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, ferr("", "header does not start with '{'")
	}
	err := decodeObject(raw, func(key string, val json.RawMessage) error {
		if key == metaKey {
			m, err := decodeMetadata(val)
			if err != nil {
				return ferr("", "invalid %s: %v", metaKey, err)
			}
			h.metadata = m
			return nil
		}
		e, err := decodeEntry(key, val, dataSize)
		if err != nil {
			return ferr(key, "%v", err)
		}
		h.entries = append(h.entries, e)
		return nil
	})
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, ferr("", "invalid header JSON: %v", err)
	}

	// The byte ranges must tile [0, dataSize) exactly.
	slices.SortFunc(h.entries, func(a, b entry) int {
		if a.begin != b.begin {
			return cmp.Compare(a.begin, b.begin)
		}
		if a.end != b.end {
			return cmp.Compare(a.end, b.end)
		}
		return strings.Compare(a.name, b.name)
	})
	var pos int64
	prev := ""
	for _, e := range h.entries {
		switch {
		case e.begin < pos:
			return nil, ferr(e.name, "data_offsets [%d, %d] overlap those of tensor %q (which end at %d)", e.begin, e.end, prev, pos)
		case e.begin > pos:
			return nil, ferr(e.name, "data_offsets [%d, %d] leave a gap of %d unused bytes before the tensor", e.begin, e.end, e.begin-pos)
		}
		pos, prev = e.end, e.name
	}
	if pos != dataSize {
		return nil, ferr("", "data section is %d bytes but the tensors cover only %d (%d trailing bytes)", dataSize, pos, dataSize-pos)
	}
	return h, nil
}

// decodeEntry parses and checks one tensor description against a data
// section of dataSize bytes.
func decodeEntry(name string, val json.RawMessage, dataSize int64) (entry, error) {
	e := entry{name: name}
	var dtype, shape, offsets json.RawMessage
	if val[0] != '{' {
		return e, fmt.Errorf("description is not a JSON object")
	}
	err := decodeObject(val, func(key string, v json.RawMessage) error {
		switch key {
		case "dtype":
			dtype = v
		case "shape":
			shape = v
		case "data_offsets":
			offsets = v
		}
		// Other keys are ignored, as by the reference implementation.
		return nil
	})
	if err != nil {
		return e, err
	}
	for _, f := range []struct {
		key string
		v   json.RawMessage
	}{{"dtype", dtype}, {"shape", shape}, {"data_offsets", offsets}} {
		if f.v == nil || string(f.v) == "null" {
			return e, fmt.Errorf("missing %q", f.key)
		}
	}

	if err := json.Unmarshal(dtype, &e.dtype); err != nil {
		return e, fmt.Errorf("invalid dtype: %v", err)
	}
	elemSize, ok := DTypeSize(e.dtype)
	if !ok {
		return e, fmt.Errorf("unknown or unsupported dtype %q", e.dtype)
	}

	var dims []int64
	if err := json.Unmarshal(shape, &dims); err != nil {
		return e, fmt.Errorf("invalid shape %s: %v", shape, err)
	}
	e.shape = make([]int, len(dims))
	for i, d := range dims {
		if d < 0 || d > math.MaxInt {
			return e, fmt.Errorf("invalid shape %s: dimension %d is %d", shape, i, d)
		}
		e.shape[i] = int(d)
	}

	var offs []uint64
	if err := json.Unmarshal(offsets, &offs); err != nil {
		return e, fmt.Errorf("invalid data_offsets %s: %v", offsets, err)
	}
	if len(offs) != 2 {
		return e, fmt.Errorf("data_offsets %s must have 2 elements, not %d", offsets, len(offs))
	}
	if offs[0] > offs[1] {
		return e, fmt.Errorf("data_offsets [%d, %d] begin after they end", offs[0], offs[1])
	}
	if offs[1] > uint64(dataSize) {
		return e, fmt.Errorf("data_offsets [%d, %d] extend beyond the data section of %d bytes (file truncated?)", offs[0], offs[1], dataSize)
	}
	e.begin, e.end = int64(offs[0]), int64(offs[1])

	// Compare element count × size with the byte range without overflow.
	nbytes := e.end - e.begin
	limit := math.MaxInt64 / int64(elemSize)
	count := int64(1)
	for _, d := range e.shape {
		if d == 0 {
			count = 0
			break
		}
	}
	if count != 0 {
		for _, d := range e.shape {
			if count > limit/int64(d) {
				count = -1 // too many elements
				break
			}
			count *= int64(d)
		}
	}
	if count < 0 || count*int64(elemSize) != nbytes {
		want := "more than 2^63"
		if count >= 0 {
			want = fmt.Sprint(count * int64(elemSize))
		}
		return e, fmt.Errorf("%s shape %v needs %s bytes but data_offsets [%d, %d] span %d", e.dtype, e.shape, want, e.begin, e.end, nbytes)
	}
	return e, nil
}

// decodeMetadata parses the "__metadata__" object, whose values must all be
// strings. JSON null yields an empty map.
func decodeMetadata(val json.RawMessage) (map[string]string, error) {
	m := map[string]string{}
	if string(val) == "null" {
		return m, nil
	}
	if val[0] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	err := decodeObject(val, func(key string, v json.RawMessage) error {
		if v[0] != '"' {
			return fmt.Errorf("value of %q is %s, not a string", key, v)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return fmt.Errorf("value of %q: %v", key, err)
		}
		m[key] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// decodeObject decodes the JSON object in data (which must start with '{'
// and may be followed only by whitespace), calling fn for each member in
// order. Duplicate keys are an error. Each value passed to fn is non-empty
// and starts with its first significant byte.
func decodeObject(data []byte, fn func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key is %v, not a string", tok)
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return err
		}
		val = bytes.TrimLeft(val, " \t\r\n")
		if len(val) == 0 {
			return fmt.Errorf("empty value for key %q", key)
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return err
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return err
		}
		return fmt.Errorf("unexpected %v after the JSON object", tok)
	}
	return nil
}
