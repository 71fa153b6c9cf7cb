package safetensors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// writeChunk is the number of bytes encoded at a time when writing F32 data.
const writeChunk = 1 << 20

// rename is os.Rename, replaceable by tests to simulate failures.
var rename = os.Rename

// WriteFile writes the tensors and metadata to path in safetensors format,
// atomically: the data goes to a temporary file in the same directory, which
// is synced and then renamed over path (mode 0644). On any error the
// temporary file is removed and an existing file at path is left untouched.
//
// The order of tensors does not matter: they are written sorted by name,
// contiguously, and the header is padded with spaces to a multiple of 8
// bytes. An empty or nil metadata map writes no "__metadata__" entry. See
// [Write] for the requirements on the tensors; to write a map returned by
// [ReadFile], pass slices.Collect(maps.Values(m)).
func WriteFile(path string, tensors []*Tensor, metadata map[string]string) (err error) {
	p, err := newPlan(tensors, metadata, path)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = p.write(f); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	if err = rename(tmp, path); err != nil {
		return fmt.Errorf("safetensors: writing %s: %w", path, err)
	}
	// Make the rename durable; best effort, as the file is already in place.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Write writes the tensors and metadata to w in safetensors format, sorted
// by name (see [WriteFile]).
//
// Each tensor needs a unique name other than "__metadata__" and a dtype
// known to [DTypeSize] (empty means F32). An F32 tensor's data is taken
// from F32, or from Raw if F32 is nil (setting both is an error); other
// dtypes take it from Raw and must have F32 nil. The data length must
// match the shape. Names and metadata must be valid UTF-8. Invalid tensors
// yield a *[FormatError] before anything is written.
func Write(w io.Writer, tensors []*Tensor, metadata map[string]string) error {
	p, err := newPlan(tensors, metadata, "")
	if err != nil {
		return err
	}
	return p.write(w)
}

// plan is a validated, ready-to-write file.
type plan struct {
	header  []byte    // JSON header including padding
	tensors []*Tensor // sorted by name
	dtypes  []string  // effective dtype of each tensor
}

// newPlan validates the tensors and builds the header. file is used in
// error messages.
func newPlan(tensors []*Tensor, metadata map[string]string, file string) (*plan, error) {
	ferr := func(tensor, format string, args ...any) error {
		return &FormatError{File: file, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, ferr("", "metadata entry %q: not valid UTF-8", k)
		}
	}
	sorted := slices.Clone(tensors)
	for i, t := range sorted {
		if t == nil {
			return nil, ferr("", "tensor #%d is nil", i)
		}
	}
	slices.SortFunc(sorted, func(a, b *Tensor) int { return strings.Compare(a.Name, b.Name) })

	var hdr bytes.Buffer
	enc := json.NewEncoder(&hdr)
	enc.SetEscapeHTML(false)
	// writeJSON appends v as JSON without the encoder's trailing newline.
	writeJSON := func(v any) {
		enc.Encode(v) // cannot fail for strings and map[string]string
		hdr.Truncate(hdr.Len() - 1)
	}
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		writeJSON(metaKey)
		hdr.WriteByte(':')
		writeJSON(metadata)
	}

	p := &plan{tensors: sorted, dtypes: make([]string, len(sorted))}
	var offset int64
	for i, t := range sorted {
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, ferr(t.Name, "duplicate tensor name")
		}
		if t.Name == metaKey {
			return nil, ferr(t.Name, "reserved tensor name")
		}
		if !utf8.ValidString(t.Name) {
			return nil, ferr(t.Name, "name is not valid UTF-8")
		}
		dtype := t.DType
		if dtype == "" {
			dtype = F32
		}
		size, ok := DTypeSize(dtype)
		if !ok {
			return nil, ferr(t.Name, "unknown or unsupported dtype %q", dtype)
		}
		n, ok := numElements(t.Shape)
		if !ok || int64(n) > (1<<62)/int64(size) {
			return nil, ferr(t.Name, "invalid shape %v", t.Shape)
		}
		nbytes := int64(n) * int64(size)
		switch {
		case dtype == F32 && t.F32 != nil && t.Raw != nil:
			return nil, ferr(t.Name, "both F32 and Raw are set")
		case dtype == F32 && t.Raw == nil:
			if len(t.F32) != n {
				return nil, ferr(t.Name, "shape %s has %d elements but F32 has %d values", shapeString(t.Shape), n, len(t.F32))
			}
		case dtype != F32 && t.F32 != nil:
			return nil, ferr(t.Name, "dtype %s but F32 values are set", dtype)
		default:
			if int64(len(t.Raw)) != nbytes {
				return nil, ferr(t.Name, "%s shape %s needs %d bytes but Raw has %d", dtype, shapeString(t.Shape), nbytes, len(t.Raw))
			}
		}
		p.dtypes[i] = dtype

		if hdr.Len() > 1 {
			hdr.WriteByte(',')
		}
		writeJSON(t.Name)
		fmt.Fprintf(&hdr, `:{"dtype":"%s","shape":[`, dtype)
		for j, d := range t.Shape {
			if j > 0 {
				hdr.WriteByte(',')
			}
			fmt.Fprint(&hdr, d)
		}
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, offset, offset+nbytes)
		offset += nbytes
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > MaxHeaderSize {
		return nil, ferr("", "header of %d bytes exceeds the limit of %d", hdr.Len(), MaxHeaderSize)
	}
	p.header = hdr.Bytes()
	return p, nil
}

// write writes the planned file to w.
func (p *plan) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, writeChunk)
	var lenBuf [8]byte
	putUint64(lenBuf[:], uint64(len(p.header)))
	bw.Write(lenBuf[:])
	bw.Write(p.header)
	var buf []byte
	for i, t := range p.tensors {
		if p.dtypes[i] != F32 || t.Raw != nil {
			if _, err := bw.Write(t.Raw); err != nil {
				return err
			}
			continue
		}
		for vals := t.F32; len(vals) > 0; {
			c := min(len(vals), writeChunk/4)
			if len(buf) < 4*c {
				buf = make([]byte, 4*c)
			}
			encodeF32(buf, vals[:c])
			if _, err := bw.Write(buf[:4*c]); err != nil {
				return err
			}
			vals = vals[c:]
		}
	}
	return bw.Flush()
}
