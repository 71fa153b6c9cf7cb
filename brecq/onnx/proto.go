package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The ONNX protobuf messages this package writes and reads, encoded by hand
// with protowire against onnx.proto's field numbers (onnx/onnx.proto,
// IR version 7+). Only the fields used here are listed.
const (
	// ModelProto
	fModelIRVersion     = 1
	fModelProducerName  = 2
	fModelProducerVer   = 3
	fModelDocString     = 6
	fModelGraph         = 7
	fModelOpsetImport   = 8
	fModelMetadataProps = 14
	// OperatorSetIdProto
	fOpsetDomain  = 1
	fOpsetVersion = 2
	// StringStringEntryProto
	fEntryKey   = 1
	fEntryValue = 2
	// GraphProto
	fGraphNode        = 1
	fGraphName        = 2
	fGraphInitializer = 5
	fGraphInput       = 11
	fGraphOutput      = 12
	// NodeProto
	fNodeInput     = 1
	fNodeOutput    = 2
	fNodeName      = 3
	fNodeOpType    = 4
	fNodeAttribute = 5
	// AttributeProto
	fAttrName = 1
	fAttrF    = 2
	fAttrI    = 3
	fAttrInts = 8
	fAttrType = 20
	// TensorProto
	fTensorDims     = 1
	fTensorDataType = 2
	fTensorName     = 8
	fTensorRawData  = 9
	// ValueInfoProto / TypeProto / TypeProto.Tensor / TensorShapeProto
	fValueName       = 1
	fValueType       = 2
	fTypeTensor      = 1
	fTensorElemType  = 1
	fTensorShape     = 2
	fShapeDim        = 1
	fDimValue        = 1
	fDimParam        = 2
	attrTypeFloat    = 1
	attrTypeInt      = 2
	attrTypeInts     = 7
	dataTypeFloat    = 1
	dataTypeUint8    = 2
	dataTypeInt8     = 3
	dataTypeInt32    = 6
	dataTypeInt64    = 7
	opsetDefault     = 13
	irVersionDefault = 7
)

// DType is an ONNX TensorProto element type.
type DType int32

// The element types an export uses.
const (
	Float32 DType = dataTypeFloat
	Uint8   DType = dataTypeUint8
	Int8    DType = dataTypeInt8
	Int32   DType = dataTypeInt32
	Int64   DType = dataTypeInt64
)

// String names the type as ONNX does.
func (d DType) String() string {
	switch d {
	case Float32:
		return "float"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

func (d DType) size() int {
	switch d {
	case Uint8, Int8:
		return 1
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	}
	return 0
}

// Tensor is an initializer: raw little-endian data of Dims (row-major; no
// dims is a scalar).
type Tensor struct {
	Name  string
	DType DType
	Dims  []int
	Raw   []byte
}

// FloatTensor returns a float32 initializer.
func FloatTensor(name string, dims []int, v []float32) *Tensor {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &Tensor{Name: name, DType: Float32, Dims: dims, Raw: raw}
}

// Int8Tensor returns an int8 initializer.
func Int8Tensor(name string, dims []int, v []int8) *Tensor {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return &Tensor{Name: name, DType: Int8, Dims: dims, Raw: raw}
}

// Uint8Tensor returns a uint8 initializer.
func Uint8Tensor(name string, dims []int, v []uint8) *Tensor {
	return &Tensor{Name: name, DType: Uint8, Dims: dims, Raw: append([]byte(nil), v...)}
}

// Floats decodes a float32 tensor.
func (t *Tensor) Floats() ([]float32, error) {
	if t.DType != Float32 {
		return nil, fmt.Errorf("onnx: initializer %q is %s, not float", t.Name, t.DType)
	}
	v := make([]float32, len(t.Raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	return v, nil
}

// Int8s decodes an int8 tensor.
func (t *Tensor) Int8s() ([]int8, error) {
	if t.DType != Int8 {
		return nil, fmt.Errorf("onnx: initializer %q is %s, not int8", t.Name, t.DType)
	}
	v := make([]int8, len(t.Raw))
	for i, b := range t.Raw {
		v[i] = int8(b)
	}
	return v, nil
}

// Uint8s decodes a uint8 tensor.
func (t *Tensor) Uint8s() ([]uint8, error) {
	if t.DType != Uint8 {
		return nil, fmt.Errorf("onnx: initializer %q is %s, not uint8", t.Name, t.DType)
	}
	return append([]uint8(nil), t.Raw...), nil
}

// Attr is a node attribute: an int, a float or a list of ints.
type Attr struct {
	Name  string
	Type  int // attrTypeInt, attrTypeFloat or attrTypeInts
	I     int64
	F     float32
	Ints  []int64
	isSet bool
}

// IntAttr, FloatAttr and IntsAttr build attributes.
func IntAttr(name string, v int64) Attr {
	return Attr{Name: name, Type: attrTypeInt, I: v, isSet: true}
}
func FloatAttr(name string, v float32) Attr {
	return Attr{Name: name, Type: attrTypeFloat, F: v, isSet: true}
}
func IntsAttr(name string, v ...int64) Attr {
	return Attr{Name: name, Type: attrTypeInts, Ints: v, isSet: true}
}

// Node is one operator application.
type Node struct {
	Name    string
	Op      string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// ValueInfo is a float32 graph input or output; a negative dimension is the
// symbolic batch size "N".
type ValueInfo struct {
	Name string
	Dims []int
}

// Model is an ONNX model: one graph in the default domain at one opset.
type Model struct {
	Opset        int
	Name         string
	Doc          string
	Nodes        []*Node
	Initializers []*Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	// Metadata goes to ModelProto.metadata_props.
	Metadata map[string]string
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func encodeTensor(t *Tensor) []byte {
	var b []byte
	if len(t.Dims) > 0 {
		var packed []byte
		for _, d := range t.Dims {
			packed = protowire.AppendVarint(packed, uint64(d))
		}
		b = appendBytes(b, fTensorDims, packed)
	}
	b = appendVarint(b, fTensorDataType, uint64(t.DType))
	b = appendString(b, fTensorName, t.Name)
	return appendBytes(b, fTensorRawData, t.Raw)
}

func encodeAttr(a Attr) []byte {
	b := appendString(nil, fAttrName, a.Name)
	switch a.Type {
	case attrTypeInt:
		b = appendVarint(b, fAttrI, uint64(a.I))
	case attrTypeFloat:
		b = protowire.AppendTag(b, fAttrF, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case attrTypeInts:
		var packed []byte
		for _, v := range a.Ints {
			packed = protowire.AppendVarint(packed, uint64(v))
		}
		b = appendBytes(b, fAttrInts, packed)
	}
	return appendVarint(b, fAttrType, uint64(a.Type))
}

func encodeNode(n *Node) []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = appendString(b, fNodeInput, s)
	}
	for _, s := range n.Outputs {
		b = appendString(b, fNodeOutput, s)
	}
	b = appendString(b, fNodeName, n.Name)
	b = appendString(b, fNodeOpType, n.Op)
	for _, a := range n.Attrs {
		b = appendBytes(b, fNodeAttribute, encodeAttr(a))
	}
	return b
}

func encodeValueInfo(v ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Dims {
		var dim []byte
		if d < 0 {
			dim = appendString(nil, fDimParam, "N")
		} else {
			dim = appendVarint(nil, fDimValue, uint64(d))
		}
		shape = appendBytes(shape, fShapeDim, dim)
	}
	tt := appendVarint(nil, fTensorElemType, dataTypeFloat)
	tt = appendBytes(tt, fTensorShape, shape)
	typ := appendBytes(nil, fTypeTensor, tt)
	b := appendString(nil, fValueName, v.Name)
	return appendBytes(b, fValueType, typ)
}

// Marshal encodes the model as an ONNX ModelProto (IR version 7, producer
// "brecq").
func (m *Model) Marshal() []byte {
	var g []byte
	for _, n := range m.Nodes {
		g = appendBytes(g, fGraphNode, encodeNode(n))
	}
	g = appendString(g, fGraphName, m.Name)
	for _, t := range m.Initializers {
		g = appendBytes(g, fGraphInitializer, encodeTensor(t))
	}
	for _, v := range m.Inputs {
		g = appendBytes(g, fGraphInput, encodeValueInfo(v))
	}
	for _, v := range m.Outputs {
		g = appendBytes(g, fGraphOutput, encodeValueInfo(v))
	}
	b := appendVarint(nil, fModelIRVersion, irVersionDefault)
	b = appendString(b, fModelProducerName, "brecq")
	b = appendString(b, fModelProducerVer, "1")
	if m.Doc != "" {
		b = appendString(b, fModelDocString, m.Doc)
	}
	b = appendBytes(b, fModelGraph, g)
	opset := appendString(nil, fOpsetDomain, "")
	opset = appendVarint(opset, fOpsetVersion, uint64(m.Opset))
	b = appendBytes(b, fModelOpsetImport, opset)
	for _, k := range sortedKeys(m.Metadata) {
		e := appendString(nil, fEntryKey, k)
		e = appendString(e, fEntryValue, m.Metadata[k])
		b = appendBytes(b, fModelMetadataProps, e)
	}
	return b
}
