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
	// V is AdaRound's continuous rounding variable of each layer (nil until InitV).
	V map[string][]float32
	// AQ is the activation quantizer of each activation point (absent: not initialised).
	AQ map[string]QParams
	// ABits is the bit-width of each activation point (0 or ≥ 32: unquantized).
	ABits map[string]int
}

// ActPoints lists the activation points of net in execution order: the stem
// output, and for each basic block the ReLU output after its first conv and
// the block output.
func ActPoints(net *models.Net) []string {
	var pts []string
	for _, b := range net.Blocks {
		switch b.Kind {
		case models.Stem:
			pts = append(pts, b.Name)
		case models.Basic:
			pts = append(pts, b.Layers[0].Name, b.Name)
		}
	}
	return pts
}

// feed is the flat list of tensors passed to a graph, with their names.
type feed struct {
	names []string
	vals  []*tensors.Tensor
}

func (f *feed) add(name string, t *tensors.Tensor) {
	f.names = append(f.names, name)
	f.vals = append(f.vals, t)
}

func (f *feed) args(extra ...any) []any {
	a := make([]any, 0, len(f.vals)+len(extra))
	for _, v := range f.vals {
		a = append(a, v)
	}
	return append(a, extra...)
}

// nodes maps the names to the first len(names) graph inputs.
func (f *feed) nodes(in []*graph.Node) map[string]*graph.Node {
	m := make(map[string]*graph.Node, len(f.names))
	for i, n := range f.names {
		m[n] = in[i]
	}
	return m
}

func qTensor(q QParams, scale bool) *tensors.Tensor {
	v := q.ZeroPoint
	if scale {
		v = q.Scale
	}
	shape := q.Shape
	if len(shape) == 0 {
		return tensors.FromScalar(v[0])
	}
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), v...), shape...)
}

// feed returns every tensor of q a graph may read, except the names in skip
// (those become trainable inputs of a step graph).
func (q *QNet) feed(skip map[string]bool) *feed {
	f := &feed{}
	add := func(name string, t *tensors.Tensor) {
		if !skip[name] {
			f.add(name, t)
		}
	}
	for _, l := range q.Net.Layers() {
		add("w:"+l.Name, q.FP[l.Name+".weight"])
		add("b:"+l.Name, q.FP[l.Name+".bias"])
		if wq, ok := q.WQ[l.Name]; ok {
			add("s:"+l.Name, qTensor(wq, true))
			add("z:"+l.Name, qTensor(wq, false))
		}
		if v, ok := q.V[l.Name]; ok {
			add("v:"+l.Name, tensors.FromFlatDataAndDimensions(v, q.FP[l.Name+".weight"].Shape().Dimensions...))
		}
	}
	pts := make([]string, 0, len(q.AQ))
	for p := range q.AQ {
		pts = append(pts, p)
	}
	sort.Strings(pts)
	for _, p := range pts {
		add("as:"+p, qTensor(q.AQ[p], true))
		add("az:"+p, qTensor(q.AQ[p], false))
	}
	return f
}

// qOps builds a forward graph of a QNet under a Mode (models.Ops). Hooks
// observe the input of a layer, the output of a layer and the value arriving
// at an activation point, so a caller can capture a unit's input and output.
type qOps struct {
	q     *QNet
	n     map[string]*graph.Node
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

func (o *qOps) node(name string) *graph.Node {
	n, ok := o.n[name]
	if !ok {
		panic(fmt.Sprintf("brecq: graph input %q missing (quantizer not initialised?)", name))
	}
	return n
}

// Layer implements models.Ops: the layer with its weights rounded per the mode.
func (o *qOps) Layer(l *models.Layer, x *graph.Node) *graph.Node {
	if o.onIn != nil {
		o.onIn(l, x)
	}
	w := o.node("w:" + l.Name)
	switch m := o.mode.Weight(l.Name); m {
	case RoundOff:
	case RoundNearest:
		w = FakeQuant(w, o.node("s:"+l.Name), o.node("z:"+l.Name), o.q.WQ[l.Name].Bits)
	case RoundSoft, RoundHard:
		w = AdaRoundWeight(w, o.node("v:"+l.Name), o.node("s:"+l.Name), o.node("z:"+l.Name), o.q.WQ[l.Name].Bits, m)
	}
	y := models.LinearOp(l, w, o.node("b:"+l.Name), x)
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
	q := FakeQuant(x, o.node("as:"+point), o.node("az:"+point), bits)
	if o.mode.dropping() {
		return o.drop(q, x)
	}
	return q
}
