// Package safetensors reads, writes and checks files in the safetensors
// format (https://github.com/huggingface/safetensors), as produced for
// example by safetensors.torch.save_file.
//
// A safetensors file consists of
//
//   - an 8-byte little-endian uint64 N, the length of the header;
//   - N bytes of UTF-8 JSON: an object mapping each tensor name to
//     {"dtype": ..., "shape": [...], "data_offsets": [begin, end]}, plus an
//     optional "__metadata__" object of string to string; writers usually
//     pad it with spaces to a multiple of 8 bytes;
//   - the data section: the raw little-endian tensor bytes. The offsets are
//     relative to the start of the data section, and the tensors must tile
//     it exactly (contiguous, non-overlapping, no trailing bytes).
//
// Reading validates all of this and never panics on malformed input.
// Float32 tensors are decoded into [Tensor.F32]; every other dtype is kept
// as raw bytes in [Tensor.Raw], with [Tensor.Int64s] and [Tensor.Float32s]
// to convert. Writing ([WriteFile]) is atomic: a temporary file in the
// destination directory is written, synced and renamed into place.
package safetensors

import (
	"fmt"
	"math"
	"strings"
)

// Dtype names as they appear in the "dtype" field of a safetensors header.
const (
	BOOL   = "BOOL"
	U8     = "U8"
	I8     = "I8"
	F8E5M2 = "F8_E5M2"
	F8E4M3 = "F8_E4M3"
	F8E8M0 = "F8_E8M0"
	I16    = "I16"
	U16    = "U16"
	F16    = "F16"
	BF16   = "BF16"
	I32    = "I32"
	U32    = "U32"
	F32    = "F32"
	C64    = "C64"
	F64    = "F64"
	I64    = "I64"
	U64    = "U64"
)

// metaKey is the header key of the metadata map.
const metaKey = "__metadata__"

// dtypeSizes maps every supported dtype to its element size in bytes.
// Sub-byte dtypes (F4, F6_*) are not supported.
var dtypeSizes = map[string]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1, F8E8M0: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	C64: 8, F64: 8, I64: 8, U64: 8,
}

// DTypeSize returns the size in bytes of one element of the given dtype, and
// false if the dtype is unknown or unsupported.
func DTypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return n, ok
}

// Tensor is one named tensor of a safetensors file.
//
// For F32 tensors the values are in F32 and Raw is nil when read from a file.
// For all other dtypes the little-endian bytes are in Raw and F32 is nil.
// When writing an F32 tensor, either F32 or Raw may hold the data (not both).
type Tensor struct {
	// Name is the tensor's key in the header.
	Name string
	// DType is the safetensors dtype name, e.g. "F32" or "I64". When
	// writing, an empty DType means F32.
	DType string
	// Shape holds the dimensions; an empty shape is a scalar (one element).
	Shape []int
	// F32 holds the values of an F32 tensor, in row-major order.
	F32 []float32
	// Raw holds the little-endian bytes of a non-F32 tensor.
	Raw []byte
}

// NewF32 returns an F32 tensor with the given name, shape and values. The
// slices are not copied.
func NewF32(name string, shape []int, data []float32) *Tensor {
	return &Tensor{Name: name, DType: F32, Shape: shape, F32: data}
}

// NewI64 returns an I64 tensor with the given name, shape and values, which
// are encoded into Raw. The shape is not copied.
func NewI64(name string, shape []int, data []int64) *Tensor {
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		putUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, DType: I64, Shape: shape, Raw: raw}
}

// NumElements returns the number of elements implied by the shape (1 for a
// scalar), or -1 if a dimension is negative or the product overflows int.
func (t *Tensor) NumElements() int {
	n, ok := numElements(t.Shape)
	if !ok {
		return -1
	}
	return n
}

// numElements returns the product of the dimensions, and false if one is
// negative or the product overflows int.
func numElements(shape []int) (int, bool) {
	zero := false
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		zero = zero || d == 0
	}
	if zero {
		return 0, true
	}
	n := 1
	for _, d := range shape {
		if n > math.MaxInt/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// Int64s returns the values of an integer or BOOL tensor converted to int64.
// U64 values above math.MaxInt64 are an error, as is any other dtype.
func (t *Tensor) Int64s() ([]int64, error) {
	size, ok := DTypeSize(t.DType)
	if !ok {
		return nil, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", t.Name, t.DType)
	}
	var conv func(b []byte) (int64, bool)
	switch t.DType {
	case I64:
		conv = func(b []byte) (int64, bool) { return int64(getUint64(b)), true }
	case U64:
		conv = func(b []byte) (int64, bool) {
			v := getUint64(b)
			return int64(v), v <= math.MaxInt64
		}
	case I32:
		conv = func(b []byte) (int64, bool) { return int64(int32(getUint32(b))), true }
	case U32:
		conv = func(b []byte) (int64, bool) { return int64(getUint32(b)), true }
	case I16:
		conv = func(b []byte) (int64, bool) { return int64(int16(getUint16(b))), true }
	case U16:
		conv = func(b []byte) (int64, bool) { return int64(getUint16(b)), true }
	case I8:
		conv = func(b []byte) (int64, bool) { return int64(int8(b[0])), true }
	case U8, BOOL:
		conv = func(b []byte) (int64, bool) { return int64(b[0]), true }
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not an integer type", t.Name, t.DType)
	}
	if len(t.Raw)%size != 0 {
		return nil, fmt.Errorf("safetensors: tensor %q: %d raw bytes is not a multiple of the %s size %d", t.Name, len(t.Raw), t.DType, size)
	}
	out := make([]int64, len(t.Raw)/size)
	for i := range out {
		v, ok := conv(t.Raw[i*size:])
		if !ok {
			return nil, fmt.Errorf("safetensors: tensor %q: element %d overflows int64", t.Name, i)
		}
		out[i] = v
	}
	return out, nil
}

// Float32s returns the values of a floating-point tensor as float32. For an
// F32 tensor read from a file it returns t.F32 itself (not a copy); F16, BF16
// and F64 tensors are converted from Raw (F64 with rounding). Any other
// dtype is an error.
func (t *Tensor) Float32s() ([]float32, error) {
	dtype := t.DType
	if dtype == "" {
		dtype = F32
	}
	switch dtype {
	case F32:
		if t.F32 != nil || t.Raw == nil {
			return t.F32, nil
		}
		if len(t.Raw)%4 != 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: %d raw bytes is not a multiple of 4", t.Name, len(t.Raw))
		}
		out := make([]float32, len(t.Raw)/4)
		decodeF32(out, t.Raw)
		return out, nil
	case F16, BF16:
		if len(t.Raw)%2 != 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: %d raw bytes is not a multiple of 2", t.Name, len(t.Raw))
		}
		out := make([]float32, len(t.Raw)/2)
		for i := range out {
			h := getUint16(t.Raw[2*i:])
			if dtype == F16 {
				out[i] = f16ToF32(h)
			} else {
				out[i] = math.Float32frombits(uint32(h) << 16)
			}
		}
		return out, nil
	case F64:
		if len(t.Raw)%8 != 0 {
			return nil, fmt.Errorf("safetensors: tensor %q: %d raw bytes is not a multiple of 8", t.Name, len(t.Raw))
		}
		out := make([]float32, len(t.Raw)/8)
		for i := range out {
			out[i] = float32(math.Float64frombits(getUint64(t.Raw[8*i:])))
		}
		return out, nil
	}
	return nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not convertible to float32", t.Name, dtype)
}

// f16ToF32 converts IEEE 754 binary16 bits to float32 exactly.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN; keep the payload.
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: mant × 2^-24, exactly representable as a float32.
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

func getUint16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

func getUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func getUint64(b []byte) uint64 {
	return uint64(getUint32(b)) | uint64(getUint32(b[4:]))<<32
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func putUint64(b []byte, v uint64) {
	putUint32(b, uint32(v))
	putUint32(b[4:], uint32(v>>32))
}

// decodeF32 fills dst from the little-endian bytes in src (len(src) >= 4*len(dst)).
func decodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(getUint32(src[4*i:]))
	}
}

// encodeF32 writes src as little-endian bytes into dst (len(dst) >= 4*len(src)).
func encodeF32(dst []byte, src []float32) {
	for i, v := range src {
		putUint32(dst[4*i:], math.Float32bits(v))
	}
}

// FormatError describes an invalid safetensors file, or an invalid tensor
// given to [Write].
type FormatError struct {
	// File is the file name given to the reader or writer (may be empty).
	File string
	// Tensor is the offending tensor's name, or empty if the problem is not
	// specific to one tensor.
	Tensor string
	// Msg describes the problem.
	Msg string
}

// Error returns "safetensors: FILE: tensor "NAME": MSG", omitting the parts
// that are empty.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// shapeString formats a shape like [64 3 7 7]; a scalar is [].
func shapeString(shape []int) string {
	return fmt.Sprint(shape)
}
