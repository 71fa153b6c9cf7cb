package brecq

import (
	"fmt"
	"sort"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
)

// QNet is the quantized view of a network: the BN-folded FP weights and
// biases, one weight quantizer (per output channel) and AdaRound V per layer,
// one activation quantizer (per tensor) per activation point. It holds values
// only; what a forward pass does with them is decided by a Mode when the
// graph is built.
type QNet struct {
	Net *models.Net
	// FP holds "<layer>.weight" and "<layer>.bias" with BatchNorm folded in.
	FP models.Params
	// WQ is the weight quantizer of each layer.
	WQ map[string]QParams
	// V is AdaRound's continuous rounding variable of each layer (empty with MethodNearest; set by InitAdaRoundV).
	V map[string][]float32
	// AQ is the activation quantizer of each activation point (absent: not initialised).
	AQ map[string]QParams
	// ABits is the bit-width of each activation point (0 or ≥ 32: unquantized).
	ABits map[string]int
}

// ActPoints lists the activation points net declares, in execution order
// (models.Net.ActPoints): per block, its layers' points (a layer's output
// after its activation, named by the layer) and its output point (after the
// residual addition and activation, named by the block). For ResNet-20: the
// stem output, and for each basic block the ReLU output after its first conv
// and the block output.
func ActPoints(net *models.Net) []string { return net.ActPoints() }

// tensorKind says which tensor of a layer or of an activation point a graph
// input carries.
type tensorKind uint8

const (
	weightT tensorKind = iota // a layer's BN-folded FP weight
	biasT                     // a layer's folded bias
	wScaleT                   // a layer's weight step sizes s (one per output channel)
	wZeroT                    // a layer's weight zero points z
	roundVT                   // a layer's AdaRound variable V
	aScaleT                   // an activation point's step size s
	aZeroT                    // an activation point's zero point z
)

var tensorKindNames = [...]string{"weight", "bias", "weight scale", "weight zero point", "rounding variable V",
	"activation scale", "activation zero point"}

// key names one tensor of a QNet: its kind and the layer or activation point it belongs to.
type key struct {
	kind tensorKind
	name string
}

func (k key) String() string { return fmt.Sprintf("%s of %s", tensorKindNames[k.kind], k.name) }

// feed is the flat list of tensors passed first to a graph, with their keys.
type feed struct {
	keys []key
	vals []*tensors.Tensor
}

func (f *feed) args(extra ...any) []any {
	a := make([]any, 0, len(f.vals)+len(extra))
	for _, v := range f.vals {
		a = append(a, v)
	}
	return append(a, extra...)
}

// nodes maps the keys to the first len(keys) graph inputs.
func (f *feed) nodes(in []*graph.Node) map[key]*graph.Node {
	m := make(map[key]*graph.Node, len(f.keys))
	for i, k := range f.keys {
		m[k] = in[i]
	}
	return m
}

// tensor returns the current value of the tensor k of q (a new tensor).
func (q *QNet) tensor(k key) *tensors.Tensor {
	switch k.kind {
	case weightT:
		return q.FP[k.name+".weight"]
	case biasT:
		return q.FP[k.name+".bias"]
	case wScaleT:
		return q.WQ[k.name].ScaleTensor()
	case wZeroT:
		return q.WQ[k.name].ZeroPointTensor()
	case roundVT:
		return tensors.FromFlatDataAndDimensions(q.V[k.name], q.FP[k.name+".weight"].Shape().Dimensions...)
	case aScaleT:
		return q.AQ[k.name].ScaleTensor()
	case aZeroT:
		return q.AQ[k.name].ZeroPointTensor()
	}
	panic(fmt.Sprintf("brecq: unknown tensor kind %d", k.kind))
}

// store sets the trainable tensor k of q (a rounding variable V or an
// activation step size) from t.
func (q *QNet) store(k key, t *tensors.Tensor) {
	switch k.kind {
	case roundVT:
		q.V[k.name] = tensors.MustCopyFlatData[float32](t)
	case aScaleT:
		aq := q.AQ[k.name]
		aq.Scale = []float32{tensors.ToScalar[float32](t)}
		q.AQ[k.name] = aq
	default:
		panic(fmt.Sprintf("brecq: %s is not trainable", k))
	}
}

// feed returns every tensor of q a graph may read, except the keys in skip
// (those become trainable inputs of a step graph).
func (q *QNet) feed(skip map[key]bool) *feed {
	f := &feed{}
	add := func(k key) {
		if !skip[k] {
			f.keys = append(f.keys, k)
			f.vals = append(f.vals, q.tensor(k))
		}
	}
	for _, l := range q.Net.Layers() {
		add(key{weightT, l.Name})
		add(key{biasT, l.Name})
		if _, ok := q.WQ[l.Name]; ok {
			add(key{wScaleT, l.Name})
			add(key{wZeroT, l.Name})
		}
		if _, ok := q.V[l.Name]; ok {
			add(key{roundVT, l.Name})
		}
	}
	pts := make([]string, 0, len(q.AQ))
	for p := range q.AQ {
		pts = append(pts, p)
	}
	sort.Strings(pts)
	for _, p := range pts {
		add(key{aScaleT, p})
		add(key{aZeroT, p})
	}
	return f
}

// qOps builds a forward graph of a QNet under a Mode (models.Ops). Hooks
// observe the input of a layer, the output of a layer and the value arriving
// at an activation point, so a caller can capture a unit's input and output.
type qOps struct {
	q     *QNet
	n     map[key]*graph.Node
	mode  Mode
	onIn  func(l *models.Layer, x *graph.Node)
	onOut func(l *models.Layer, y *graph.Node) *graph.Node
	onAct func(point string, x *graph.Node) *graph.Node
	// rng is the random state consumed (and replaced) by QDrop's draws; it
	// must be set when mode.DropProb is in (0, 1).
	rng *graph.Node
}

// drop returns q where a uniform draw falls below DropProb and x elsewhere,
// advancing the random state.
func (o *qOps) drop(q, x *graph.Node) *graph.Node {
	if o.rng == nil {
		panic("brecq: QDrop mode without a random state")
	}
	var u *graph.Node
	o.rng, u = graph.RandomUniform(o.rng, x.Shape())
	return graph.Where(graph.LessThan(u, graph.Scalar(x.Graph(), x.DType(), o.mode.DropProb)), q, x)
}

func (o *qOps) node(kind tensorKind, name string) *graph.Node {
	n, ok := o.n[key{kind, name}]
	if !ok {
		panic(fmt.Sprintf("brecq: graph input %s missing (quantizer not initialised?)", key{kind, name}))
	}
	return n
}

// Layer implements models.Ops: the layer with its weights rounded per the mode.
func (o *qOps) Layer(l *models.Layer, x *graph.Node) *graph.Node {
	if o.onIn != nil {
		o.onIn(l, x)
	}
	w := o.node(weightT, l.Name)
	switch m := o.mode.Weight(l.Name); m {
	case RoundOff:
	case RoundNearest:
		w = FakeQuant(w, o.node(wScaleT, l.Name), o.node(wZeroT, l.Name), o.q.WQ[l.Name].Bits)
	case RoundSoft, RoundHard:
		w = AdaRoundWeight(w, o.node(roundVT, l.Name), o.node(wScaleT, l.Name), o.node(wZeroT, l.Name), o.q.WQ[l.Name].Bits, m)
	}
	y := models.LinearOp(l, w, o.node(biasT, l.Name), x)
	if o.onOut != nil {
		if r := o.onOut(l, y); r != nil {
			y = r
		}
	}
	return y
}

// Act implements models.Ops: fake quantization when the mode switches the point on.
func (o *qOps) Act(point string, x *graph.Node) *graph.Node {
	if o.onAct != nil {
		if r := o.onAct(point, x); r != nil {
			x = r
		}
	}
	if !o.mode.Acts[point] {
		return x
	}
	bits := o.q.ABits[point]
	if bits <= 0 || bits >= 32 {
		return x
	}
	q := FakeQuant(x, o.node(aScaleT, point), o.node(aZeroT, point), bits)
	if o.mode.dropping() {
		return o.drop(q, x)
	}
	return q
}
