// Package models describes the networks brecq quantizes as data — layers,
// blocks, stages, head — and builds their forward graphs over that one
// description. Parameters carry torchvision / PyTorch names and layouts, so a
// PyTorch state_dict saved as safetensors loads as it is.
package models

import (
	"fmt"
	"sort"

	"github.com/gomlx/gomlx/core/tensors"
)

// LayerKind tells a convolution from a fully connected layer.
type LayerKind int

const (
	// Conv is a 2-D convolution, weight [out, in/groups, k, k], padding (k−1)/2.
	Conv LayerKind = iota
	// Linear is a fully connected layer, weight [out, in], with a bias.
	Linear
)

// Layer is one weight layer: the unit of layer-wise reconstruction.
type Layer struct {
	Name           string // parameter prefix, e.g. "layer1.0.conv1"
	Kind           LayerKind
	In, Out        int
	Kernel, Stride int
	Groups         int
	BN             string     // BatchNorm parameter prefix following this layer, "" if none
	Act            Activation // the activation directly following this layer (and its BN)
	// Point declares the layer's output, after Act, an activation point
	// named Name: a quantized network quantizes it there.
	Point bool
	Bias  bool // the layer has its own bias (Linear); after BN folding every conv has one
}

// Activation is the element-wise function following a layer or a residual addition.
type Activation int

const (
	// NoAct is the identity (a linear projection, a residual branch before the addition).
	NoAct Activation = iota
	// ReLU is max(x, 0).
	ReLU
	// ReLU6 is min(max(x, 0), 6) (MobileNetV2).
	ReLU6
)

// String names the activation as PyTorch does.
func (a Activation) String() string {
	switch a {
	case NoAct:
		return "identity"
	case ReLU:
		return "ReLU"
	case ReLU6:
		return "ReLU6"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// BlockKind names a block's structure. What a block computes is given by its
// fields (Layers, Residual, Shortcut, Act, MaxPool), the same for every kind:
//
//	y = a_B(f_L(…f_1(x)) + r(x)),  f_i(v) = a_i(layer_i(v)),  r(x) = Shortcut(x), x or 0
//
// followed by a 3×3 stride-2 max-pool when MaxPool is set.
type BlockKind int

const (
	// Stem is the first convolution (+BN+activation, ResNet: + max-pool); it is not reconstructed.
	Stem BlockKind = iota
	// Basic is a ResNet BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)).
	Basic
	// Head is global average pooling followed by the classifier (dropout is ignored: inference).
	Head
	// Bottleneck is a ResNet Bottleneck: relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1 x)))))) + shortcut(x)),
	// the stride on the 3×3 conv2 (torchvision's ResNet v1.5).
	Bottleneck
	// ResBottleneck is a RegNetX block: relu(c(relu(b(relu(a x)))) + proj(x)), b a grouped 3×3
	// convolution with the stage's group width, a and c 1×1, each with its BN.
	ResBottleneck
	// InvertedResidual is a MobileNetV2 / MNASNet block: 1×1 expansion + activation, k×k
	// depthwise + activation, 1×1 linear projection, plus x when the stride is 1 and in = out.
	InvertedResidual
	// Chain is a plain sequence of layers without a residual (MobileNetV2's last 1×1 conv,
	// MNASNet's depthwise-separable conv).
	Chain
)

// String names the block kind.
func (k BlockKind) String() string {
	switch k {
	case Stem:
		return "stem"
	case Basic:
		return "basic"
	case Head:
		return "head"
	case Bottleneck:
		return "bottleneck"
	case ResBottleneck:
		return "res-bottleneck"
	case InvertedResidual:
		return "inverted-residual"
	case Chain:
		return "chain"
	}
	return fmt.Sprintf("BlockKind(%d)", int(k))
}

// Block is one node of the network's top-level chain: the unit of
// block-wise reconstruction.
type Block struct {
	Name     string // "conv1" for the stem, "layer2.0", "fc" for the head
	Kind     BlockKind
	Stage    int      // 0 for stem, 1.. for the body's stages, -1 for the head
	Layers   []*Layer // the main path in execution order (conv1, conv2 for Basic); the single layer otherwise
	Shortcut *Layer   // projection shortcut (1x1 conv + BN), or nil
	// Residual adds the block input — through Shortcut when it is set — to
	// the main path's output.
	Residual bool
	// Act follows the residual addition (or the main path when there is none).
	Act Activation
	// OutPoint declares the block output (after Act) an activation point
	// named Name. Whether declared or not, Forward passes every block output
	// through Ops.Act(Name, ·), so a caller can observe it there.
	OutPoint bool
	// MaxPool applies a 3×3 stride-2 max-pool with padding 1 after the output
	// point (ResNet's stem).
	MaxPool bool
}

// Body reports whether b is a body block: neither the stem nor the head.
func (b *Block) Body() bool { return b.Kind != Stem && b.Kind != Head }

// Points lists the activation points b declares, in execution order: its
// layers' points, then its output point.
func (b *Block) Points() []string {
	var pts []string
	for _, l := range b.Layers {
		if l.Point {
			pts = append(pts, l.Name)
		}
	}
	if b.OutPoint {
		pts = append(pts, b.Name)
	}
	return pts
}

// AllLayers lists the block's weight layers: Layers then Shortcut.
func (b *Block) AllLayers() []*Layer {
	if b.Shortcut == nil {
		return b.Layers
	}
	return append(append([]*Layer{}, b.Layers...), b.Shortcut)
}

// Net is a network description: input geometry, the chain of blocks and the
// number of classes.
type Net struct {
	Name            string
	InC, InH, InW   int
	Classes         int
	Blocks          []*Block
	NumStages       int
	ClassifierWidth int
}

// Layers returns every weight layer in execution order.
func (n *Net) Layers() []*Layer {
	var ls []*Layer
	for _, b := range n.Blocks {
		ls = append(ls, b.AllLayers()...)
	}
	return ls
}

// Layer returns the layer with the given name, or nil.
func (n *Net) Layer(name string) *Layer {
	for _, l := range n.Layers() {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// ActPoints lists every activation point the description declares, in
// execution order (see Block.Points).
func (n *Net) ActPoints() []string {
	var pts []string
	for _, b := range n.Blocks {
		pts = append(pts, b.Points()...)
	}
	return pts
}

// StageBlocks returns the indices in Blocks of the body blocks of stage s (1-based).
func (n *Net) StageBlocks(s int) []int {
	var idx []int
	for i, b := range n.Blocks {
		if b.Body() && b.Stage == s {
			idx = append(idx, i)
		}
	}
	return idx
}

// ParamShapes returns every FP parameter's name and shape, as PyTorch's
// state_dict has them (BatchNorm weight, bias, running_mean, running_var;
// num_batches_tracked is not a parameter here and is ignored on load).
func (n *Net) ParamShapes() map[string][]int {
	m := map[string][]int{}
	for _, l := range n.Layers() {
		switch l.Kind {
		case Conv:
			m[l.Name+".weight"] = []int{l.Out, l.In / l.Groups, l.Kernel, l.Kernel}
		case Linear:
			m[l.Name+".weight"] = []int{l.Out, l.In}
		}
		if l.Bias {
			m[l.Name+".bias"] = []int{l.Out}
		}
		if l.BN != "" {
			for _, s := range []string{"weight", "bias", "running_mean", "running_var"} {
				m[l.BN+"."+s] = []int{l.Out}
			}
		}
	}
	return m
}

// ParamNames returns the sorted parameter names.
func (n *Net) ParamNames() []string {
	shapes := n.ParamShapes()
	names := make([]string, 0, len(shapes))
	for k := range shapes {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Params maps parameter names to tensors.
type Params map[string]*tensors.Tensor

// Check reports every missing, extra or mis-shaped parameter of p for net.
func (n *Net) Check(p Params) error {
	want := n.ParamShapes()
	var errs []string
	for _, name := range n.ParamNames() {
		t, ok := p[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("missing tensor %q %v", name, want[name]))
			continue
		}
		if fmt.Sprint(t.Shape().Dimensions) != fmt.Sprint(want[name]) {
			errs = append(errs, fmt.Sprintf("tensor %q has shape %v, want %v", name, t.Shape().Dimensions, want[name]))
		}
	}
	for name := range p {
		if _, ok := want[name]; !ok {
			errs = append(errs, fmt.Sprintf("unexpected tensor %q", name))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		msg := fmt.Sprintf("models: %d problem(s) with the %s parameters:", len(errs), n.Name)
		for _, e := range errs {
			msg += "\n  " + e
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}
