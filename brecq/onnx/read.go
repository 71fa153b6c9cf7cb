package onnx

import (
	"fmt"
	"math"
	"os"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded protobuf field: bytes for length-delimited fields,
// v for varints and fixed32.
type field struct {
	num   protowire.Number
	typ   protowire.Type
	v     uint64
	bytes []byte
}

// fields splits an encoded message into its fields.
func fields(b []byte, what string) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("onnx: %s: bad tag: %v", what, protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			f.v = uint64(x)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.bytes, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, fmt.Errorf("onnx: %s: field %d: %v", what, num, protowire.ParseError(n))
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

// packedVarints decodes a packed (or single unpacked) repeated varint field.
func packedVarints(f field) ([]int64, error) {
	if f.typ == protowire.VarintType {
		return []int64{int64(f.v)}, nil
	}
	var out []int64
	b := f.bytes
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		out = append(out, int64(v))
		b = b[n:]
	}
	return out, nil
}

// Unmarshal decodes the subset of a ModelProto that Marshal writes: the
// opset, metadata, graph nodes (int, float and ints attributes), raw-data
// initializers and the names and shapes of the inputs and outputs. Other
// fields are skipped (a node's domain too); an initializer stored other than
// as raw_data is an error naming it.
func Unmarshal(data []byte) (*Model, error) {
	top, err := fields(data, "ModelProto")
	if err != nil {
		return nil, err
	}
	m := &Model{Metadata: map[string]string{}}
	for _, f := range top {
		switch f.num {
		case fModelDocString:
			m.Doc = string(f.bytes)
		case fModelOpsetImport:
			fs, err := fields(f.bytes, "opset_import")
			if err != nil {
				return nil, err
			}
			domain, ver := "", 0
			for _, g := range fs {
				switch g.num {
				case fOpsetDomain:
					domain = string(g.bytes)
				case fOpsetVersion:
					ver = int(g.v)
				}
			}
			if domain == "" || domain == "ai.onnx" {
				m.Opset = ver // other domains (ai.onnx.ml, com.microsoft) are not recorded
			}
		case fModelMetadataProps:
			fs, err := fields(f.bytes, "metadata_props")
			if err != nil {
				return nil, err
			}
			var k, v string
			for _, g := range fs {
				switch g.num {
				case fEntryKey:
					k = string(g.bytes)
				case fEntryValue:
					v = string(g.bytes)
				}
			}
			m.Metadata[k] = v
		case fModelGraph:
			if err := m.decodeGraph(f.bytes); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Model) decodeGraph(b []byte) error {
	fs, err := fields(b, "GraphProto")
	if err != nil {
		return err
	}
	for _, f := range fs {
		switch f.num {
		case fGraphName:
			m.Name = string(f.bytes)
		case fGraphNode:
			n, err := decodeNode(f.bytes)
			if err != nil {
				return err
			}
			m.Nodes = append(m.Nodes, n)
		case fGraphInitializer:
			t, err := decodeTensor(f.bytes)
			if err != nil {
				return err
			}
			m.Initializers = append(m.Initializers, t)
		case fGraphInput, fGraphOutput:
			v, err := decodeValueInfo(f.bytes)
			if err != nil {
				return err
			}
			if f.num == fGraphInput {
				m.Inputs = append(m.Inputs, v)
			} else {
				m.Outputs = append(m.Outputs, v)
			}
		}
	}
	return nil
}

func decodeNode(b []byte) (*Node, error) {
	fs, err := fields(b, "NodeProto")
	if err != nil {
		return nil, err
	}
	n := &Node{}
	for _, f := range fs {
		switch f.num {
		case fNodeInput:
			n.Inputs = append(n.Inputs, string(f.bytes))
		case fNodeOutput:
			n.Outputs = append(n.Outputs, string(f.bytes))
		case fNodeName:
			n.Name = string(f.bytes)
		case fNodeOpType:
			n.Op = string(f.bytes)
		case fNodeAttribute:
			as, err := fields(f.bytes, "AttributeProto")
			if err != nil {
				return nil, err
			}
			var a Attr
			for _, g := range as {
				switch g.num {
				case fAttrName:
					a.Name = string(g.bytes)
				case fAttrType:
					a.Type = int(g.v)
				case fAttrI:
					a.I = int64(g.v)
				case fAttrF:
					a.F = math.Float32frombits(uint32(g.v))
				case fAttrInts:
					v, err := packedVarints(g)
					if err != nil {
						return nil, fmt.Errorf("onnx: attribute %q: %v", a.Name, err)
					}
					a.Ints = append(a.Ints, v...)
				}
			}
			n.Attrs = append(n.Attrs, a)
		}
	}
	return n, nil
}

func decodeTensor(b []byte) (*Tensor, error) {
	fs, err := fields(b, "TensorProto")
	if err != nil {
		return nil, err
	}
	t := &Tensor{}
	hasRaw := false
	for _, f := range fs {
		switch f.num {
		case fTensorDims:
			v, err := packedVarints(f)
			if err != nil {
				return nil, err
			}
			for _, d := range v {
				t.Dims = append(t.Dims, int(d))
			}
		case fTensorDataType:
			t.DType = DType(f.v)
		case fTensorName:
			t.Name = string(f.bytes)
		case fTensorRawData:
			t.Raw, hasRaw = f.bytes, true
		}
	}
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	if t.DType.size() == 0 {
		return nil, fmt.Errorf("onnx: initializer %q has unsupported data type %s", t.Name, t.DType)
	}
	if !hasRaw && n > 0 {
		return nil, fmt.Errorf("onnx: initializer %q is not stored as raw_data (typed data fields are not read)", t.Name)
	}
	if len(t.Raw) != n*t.DType.size() {
		return nil, fmt.Errorf("onnx: initializer %q: %d bytes for dims %v of %s", t.Name, len(t.Raw), t.Dims, t.DType)
	}
	return t, nil
}

func decodeValueInfo(b []byte) (ValueInfo, error) {
	var v ValueInfo
	fs, err := fields(b, "ValueInfoProto")
	if err != nil {
		return v, err
	}
	for _, f := range fs {
		switch f.num {
		case fValueName:
			v.Name = string(f.bytes)
		case fValueType:
			ts, err := fields(f.bytes, "TypeProto")
			if err != nil {
				return v, err
			}
			for _, t := range ts {
				if t.num != fTypeTensor {
					continue
				}
				tt, err := fields(t.bytes, "TypeProto.Tensor")
				if err != nil {
					return v, err
				}
				for _, s := range tt {
					if s.num != fTensorShape {
						continue
					}
					dims, err := fields(s.bytes, "TensorShapeProto")
					if err != nil {
						return v, err
					}
					for _, d := range dims {
						ds, err := fields(d.bytes, "Dimension")
						if err != nil {
							return v, err
						}
						val := -1
						for _, x := range ds {
							if x.num == fDimValue {
								val = int(x.v)
							}
						}
						v.Dims = append(v.Dims, val)
					}
				}
			}
		}
	}
	return v, nil
}

// ReadFile reads and decodes an ONNX file (see Unmarshal).
func ReadFile(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Unmarshal(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Initializer returns the initializer named name, or nil.
func (m *Model) Initializer(name string) *Tensor {
	for _, t := range m.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
