package models

import (
	"fmt"

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
	// Act is applied at every activation a quantized network quantizes: the
	// stem output (point "conv1"), the ReLU output inside a block (the name of
	// its first conv) and each block output (the block name).
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

// ForwardBlock builds one block on its input h. For the stem and the basic
// blocks, the block's output activation point is applied; for the head, the
// global average pool and the classifier.
func (n *Net) ForwardBlock(ops Ops, b *Block, h *graph.Node, _ bool) *graph.Node {
	switch b.Kind {
	case Stem:
		return ops.Act(b.Name, relu(ops.Layer(b.Layers[0], h)))
	case Basic:
		c1, c2 := b.Layers[0], b.Layers[1]
		y := ops.Act(c1.Name, relu(ops.Layer(c1, h)))
		y = ops.Layer(c2, y)
		sc := h
		if b.Shortcut != nil {
			sc = ops.Layer(b.Shortcut, h)
		}
		return ops.Act(b.Name, relu(graph.Add(y, sc)))
	case Head:
		pooled := graph.ReduceMean(h, 2, 3) // [C, N]
		logits := ops.Layer(b.Layers[0], pooled)
		return graph.Transpose(logits, 0, 1) // [N, classes]
	}
	panic(fmt.Sprintf("models: unknown block kind %d", b.Kind))
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

// relu is max(x, 0).
func relu(x *graph.Node) *graph.Node { return graph.MaxScalar(x, 0.0) }
