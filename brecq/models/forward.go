package models

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/brecq-go/brecq/brecq/nn"
)

// Ops decides what a layer and an activation point compute when a forward
// graph is built: full precision with BatchNorm, BN-folded, quantized, ...
// The description (Net) stays the same; only Ops changes.
type Ops interface {
	// Layer applies weight layer l (with its BatchNorm or folded bias, without
	// the ReLU) to x: [C,N,H,W] for convolutions, [C,N] for linear layers.
	Layer(l *Layer, x *graph.Node) *graph.Node
	// Act is applied at every activation point the description declares
	// (Net.ActPoints: a layer's output after its activation, named by the
	// layer; a block's output, named by the block) and also at every block
	// output that is not declared, so hooks can observe it; an
	// implementation quantizes only the declared points.
	Act(point string, x *graph.Node) *graph.Node
}

// GraphParams maps parameter names to graph nodes.
type GraphParams map[string]*graph.Node

// ToCNHW turns an NCHW batch [N,C,H,W] into the channels-first layout [C,N,H,W].
func ToCNHW(x *graph.Node) *graph.Node {
	d := x.Shape().Dimensions
	if d[1] == 1 {
		return graph.Reshape(x, 1, d[0], d[2], d[3])
	}
	return graph.TransposeAllAxes(x, 1, 0, 2, 3)
}

// Forward builds the network on an NCHW input batch and returns the logits [N, classes].
func (n *Net) Forward(ops Ops, x *graph.Node) *graph.Node {
	return n.ForwardRange(ops, ToCNHW(x), 0, len(n.Blocks))
}

// ForwardRange runs blocks [from, to) on h. h is [C,N,H,W] for every block
// but the head, whose output is the logits [N, classes].
func (n *Net) ForwardRange(ops Ops, h *graph.Node, from, to int) *graph.Node {
	last := n.LastBodyBlock()
	for i := from; i < to; i++ {
		h = n.ForwardBlock(ops, n.Blocks[i], h, i == last)
	}
	return h
}

// LastBodyBlock is the index of the block whose output feeds the head.
func (n *Net) LastBodyBlock() int { return len(n.Blocks) - 2 }

// ForwardBlock builds one block on its input h. For every block but the
// head, with f_i(v) = Act(l_i, a_i(layer_i(v))) when layer i declares a point
// and a_i(layer_i(v)) otherwise:
//
//	y = Act(B, a_B(f_L(…f_1(h)) + r(h))),  r(h) = Shortcut(h), h or 0 (Residual)
//
// then a 3×3 stride-2 max-pool when b.MaxPool. For the head, the global
// average pool and the classifier.
func (n *Net) ForwardBlock(ops Ops, b *Block, h *graph.Node, _ bool) *graph.Node {
	if b.Kind == Head {
		pooled := graph.ReduceMean(h, 2, 3) // [C, N]
		logits := ops.Layer(b.Layers[0], pooled)
		return graph.Transpose(logits, 0, 1) // [N, classes]
	}
	y := h
	for _, l := range b.Layers {
		y = Activate(l.Act, ops.Layer(l, y))
		if l.Point {
			y = ops.Act(l.Name, y)
		}
	}
	if b.Residual {
		sc := h
		if b.Shortcut != nil {
			sc = ops.Layer(b.Shortcut, h)
		}
		y = graph.Add(y, sc)
	}
	y = ops.Act(b.Name, Activate(b.Act, y))
	if b.MaxPool {
		y = MaxPool3x3S2(y)
	}
	return y
}

// Activate applies a: identity, max(x, 0) or min(max(x, 0), 6).
func Activate(a Activation, x *graph.Node) *graph.Node {
	switch a {
	case NoAct:
		return x
	case ReLU:
		return graph.MaxScalar(x, 0.0)
	case ReLU6:
		return graph.MinScalar(graph.MaxScalar(x, 0.0), 6.0)
	}
	panic(fmt.Sprintf("models: unknown activation %d", int(a)))
}

// MaxPool3x3S2 is PyTorch's MaxPool2d(kernel_size=3, stride=2, padding=1) on
// x [C,N,H,W]: y[c,n,i,j] = max_{u,v∈{0,1,2}} x̃[c,n,2i+u,2j+v], x̃ padded by
// one row / column of −∞ on each side; output ⌊(H−1)/2⌋+1 × ⌊(W−1)/2⌋+1. It
// is built from strided slices and element-wise maxima, so it has a gradient
// on every backend.
func MaxPool3x3S2(x *graph.Node) *graph.Node {
	d := x.Shape().Dimensions
	g := x.Graph()
	neg := func(dims ...int) *graph.Node {
		return graph.BroadcastToDims(graph.Scalar(g, x.DType(), math.Inf(-1)), dims...)
	}
	xp := graph.Concatenate([]*graph.Node{neg(d[0], d[1], 1, d[3]), x, neg(d[0], d[1], 1, d[3])}, 2)
	xp = graph.Concatenate([]*graph.Node{neg(d[0], d[1], d[2]+2, 1), xp, neg(d[0], d[1], d[2]+2, 1)}, 3)
	ho, wo := (d[2]-1)/2+1, (d[3]-1)/2+1
	var y *graph.Node
	for u := 0; u < 3; u++ {
		for v := 0; v < 3; v++ {
			s := graph.Slice(xp, graph.AxisRange(), graph.AxisRange(),
				graph.AxisRange(u, u+2*(ho-1)+1).Stride(2), graph.AxisRange(v, v+2*(wo-1)+1).Stride(2))
			if y == nil {
				y = s
			} else {
				y = graph.Max(y, s)
			}
		}
	}
	return y
}

// LinearOp applies the layer's weight and optional bias: conv2d for Conv
// layers (x [C,N,H,W] → [O,N,Ho,Wo]), w·x for Linear layers (x [I,N] → [O,N]).
// bias may be nil.
func LinearOp(l *Layer, w, bias, x *graph.Node) *graph.Node {
	var y *graph.Node
	switch l.Kind {
	case Conv:
		y = nn.Conv2D(x, w, l.Stride, l.Groups, nn.ConvAuto)
		if bias != nil {
			y = graph.Add(y, graph.Reshape(bias, l.Out, 1, 1, 1))
		}
	case Linear:
		y = graph.DotGeneral(w, []int{1}, nil, x, []int{0}, nil)
		if bias != nil {
			y = graph.Add(y, graph.Reshape(bias, l.Out, 1))
		}
	}
	return y
}

// BNEps is BatchNorm's ε (PyTorch's default).
const BNEps = 1e-5

// BatchNormInference applies y = γ·(x − μ)/√(σ² + ε) + β per channel (axis 0)
// with the running statistics μ, σ².
func BatchNormInference(p GraphParams, bn string, x *graph.Node) *graph.Node {
	c := x.Shape().Dimensions[0]
	bshape := make([]int, x.Rank())
	for i := range bshape {
		bshape[i] = 1
	}
	bshape[0] = c
	r := func(name string) *graph.Node { return graph.Reshape(p[bn+"."+name], bshape...) }
	inv := graph.Rsqrt(graph.AddScalar(r("running_var"), BNEps))
	scale := graph.Mul(r("weight"), inv)
	shift := graph.Sub(r("bias"), graph.Mul(r("running_mean"), scale))
	return graph.Add(graph.Mul(x, scale), shift)
}

// EvalOps computes the FP network with BatchNorm in inference mode.
type EvalOps struct{ P GraphParams }

// Layer implements Ops.
func (o EvalOps) Layer(l *Layer, x *graph.Node) *graph.Node {
	var bias *graph.Node
	if l.Bias {
		bias = o.P[l.Name+".bias"]
	}
	y := LinearOp(l, o.P[l.Name+".weight"], bias, x)
	if l.BN != "" {
		y = BatchNormInference(o.P, l.BN, y)
	}
	return y
}

// Act implements Ops (identity).
func (o EvalOps) Act(_ string, x *graph.Node) *graph.Node { return x }
