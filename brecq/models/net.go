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
	BN             string // BatchNorm parameter prefix following this layer, "" if none
	ReLU           bool   // a ReLU directly follows this layer (and its BN)
	Bias           bool   // the layer has its own bias (Linear); after BN folding every conv has one
}

// BlockKind tells the stem, residual blocks and the head apart.
type BlockKind int

const (
	// Stem is the first convolution (+BN+ReLU); it is not reconstructed.
	Stem BlockKind = iota
	// Basic is a residual BasicBlock: relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x)).
	Basic
	// Head is global average pooling followed by the classifier.
	Head
)

// Block is one node of the network's top-level chain: the unit of
// block-wise reconstruction.
type Block struct {
	Name     string // "conv1" for the stem, "layer2.0", "fc" for the head
	Kind     BlockKind
	Stage    int      // 0 for stem, 1.. for residual stages, -1 for the head
	Layers   []*Layer // in execution order: conv1, conv2 (Basic); the single layer otherwise
	Shortcut *Layer   // downsample 1x1 conv, or nil for the identity shortcut
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

// StageBlocks returns the indices in Blocks of the residual blocks of stage s (1-based).
func (n *Net) StageBlocks(s int) []int {
	var idx []int
	for i, b := range n.Blocks {
		if b.Kind == Basic && b.Stage == s {
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
