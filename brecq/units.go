package brecq

import (
	"fmt"

	"github.com/gomlx/gomlx/core/graph"

	"github.com/brecq-go/brecq/brecq/models"
)

// Granularity is the size of a reconstruction unit (BRECQ, Li et al., 2021, §3.2).
type Granularity string

// The granularities, from the finest to the coarsest.
const (
	Layer Granularity = "layer"
	Block Granularity = "block"
	Stage Granularity = "stage"
	Net   Granularity = "net"
)

// ParseGranularity accepts layer, block, stage or net.
func ParseGranularity(s string) (Granularity, error) {
	switch g := Granularity(s); g {
	case Layer, Block, Stage, Net:
		return g, nil
	}
	return "", errorf("granularity %q: want layer, block, stage or net", s)
}

// outKind tells where a unit's output is read.
type outKind int

const (
	outAct    outKind = iota // the value arriving at an activation point (before its quantizer)
	outLayer                 // the output of a layer (with its folded bias)
	outLogits                // the network output
)

// Unit is a piece of the network reconstructed as one: its weight layers,
// the activation points it owns, where its input comes from (the input of
// its first layer) and where its output is read.
type Unit struct {
	Name      string
	Layers    []*models.Layer
	ActPoints []string
	InLayer   string // the unit's input is the input of this layer
	outKind   outKind
	outName   string // activation point or layer name
	// first and last are the block range [first, last] the unit lives in;
	// a forward pass must run to block last+1 to see its output.
	first, last int
	// forward computes the unit's output (as read at outKind/outName) from its input.
	forward func(ops models.Ops, x *graph.Node) *graph.Node
}

// String is the unit's name.
func (u *Unit) String() string { return u.Name }

// Units splits net into reconstruction units at granularity g, in network
// order. The stem is never a unit (it stays at nearest rounding, 8 bits).
// Layer: each weight layer of every body block (its main-path layers, then
// its shortcut; a block made of one layer without a residual is that
// layer's unit), then the classifier. Block: each body block (a residual
// block, an inverted residual, a plain chain), then the classifier. Stage:
// each stage's blocks together, then the classifier. Net: every block after
// the stem and the head, as one unit ending at the logits. A unit owns the
// activation points its blocks or layer declare.
func Units(net *models.Net, g Granularity) ([]*Unit, error) {
	var units []*Unit
	head := len(net.Blocks) - 1
	fc := net.Blocks[head].Layers[0]
	fcUnit := &Unit{Name: fc.Name, Layers: []*models.Layer{fc}, InLayer: fc.Name, outKind: outLogits,
		first: head, last: head,
		forward: func(ops models.Ops, x *graph.Node) *graph.Node {
			return graph.Transpose(ops.Layer(fc, x), 0, 1)
		}}
	blockRange := func(name string, first, last int) *Unit {
		u := &Unit{Name: name, InLayer: net.Blocks[first].Layers[0].Name, first: first, last: last}
		for i := first; i <= last; i++ {
			b := net.Blocks[i]
			u.Layers = append(u.Layers, b.AllLayers()...)
			u.ActPoints = append(u.ActPoints, b.Points()...)
		}
		if net.Blocks[last].Kind == models.Head {
			u.outKind = outLogits
		} else {
			// The block output passes through Ops.Act under the block name
			// whether or not it is a declared point.
			u.outKind, u.outName = outAct, net.Blocks[last].Name
		}
		u.forward = func(ops models.Ops, x *graph.Node) *graph.Node {
			y := net.ForwardRange(ops, x, first, last+1)
			return y
		}
		return u
	}
	var body []int
	for i, b := range net.Blocks {
		if b.Body() {
			body = append(body, i)
		}
	}
	switch g {
	case Layer:
		for _, i := range body {
			b := net.Blocks[i]
			if len(b.Layers) == 1 && !b.Residual {
				units = append(units, blockRange(b.Layers[0].Name, i, i))
				continue
			}
			for _, l := range b.AllLayers() {
				l := l
				u := &Unit{Name: l.Name, Layers: []*models.Layer{l}, InLayer: l.Name, first: i, last: i}
				if l.Point {
					// Output read at the layer's own activation point.
					u.ActPoints, u.outKind, u.outName = []string{l.Name}, outAct, l.Name
					u.forward = func(ops models.Ops, x *graph.Node) *graph.Node {
						return ops.Act(l.Name, models.Activate(l.Act, ops.Layer(l, x)))
					}
				} else {
					// Output read at the layer (with its folded bias), before
					// any activation: the value that enters the residual addition.
					u.outKind, u.outName = outLayer, l.Name
					u.forward = func(ops models.Ops, x *graph.Node) *graph.Node { return ops.Layer(l, x) }
				}
				units = append(units, u)
			}
		}
		units = append(units, fcUnit)
	case Block:
		for _, i := range body {
			units = append(units, blockRange(net.Blocks[i].Name, i, i))
		}
		units = append(units, fcUnit)
	case Stage:
		for s := 1; s <= net.NumStages; s++ {
			idx := net.StageBlocks(s)
			if len(idx) == 0 {
				return nil, fmt.Errorf("%s: stage %d has no blocks", net.Name, s)
			}
			units = append(units, blockRange(fmt.Sprintf("stage%d", s), idx[0], idx[len(idx)-1]))
		}
		units = append(units, fcUnit)
	case Net:
		u := blockRange("net", 1, head)
		units = append(units, u)
	default:
		return nil, errorf("unknown granularity %q", g)
	}
	return units, nil
}

// ActUnits are the units of the activation stage: the weight units, except
// that layer granularity learns step sizes per block (no single layer owns a
// block's post-addition activation).
func ActUnits(net *models.Net, g Granularity) ([]*Unit, error) {
	if g == Layer {
		g = Block
	}
	return Units(net, g)
}

// channelAxis is the channel axis of the unit's output: 0 for channel-first
// activations, 1 for logits [N, K].
func (u *Unit) channelAxis() int {
	if u.outKind == outLogits {
		return 1
	}
	return 0
}
