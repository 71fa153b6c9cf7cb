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
// Layer: each weight layer (conv1, conv2, shortcut of every block; the
// classifier). Block: each residual block, then the classifier. Stage: each
// stage's blocks together, then the classifier. Net: every block after the
// stem and the head, as one unit ending at the logits.
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
			if b.Kind == models.Basic {
				u.ActPoints = append(u.ActPoints, b.Layers[0].Name, b.Name)
			}
		}
		if net.Blocks[last].Kind == models.Head {
			u.outKind = outLogits
		} else {
			u.outKind, u.outName = outAct, net.Blocks[last].Name
		}
		u.forward = func(ops models.Ops, x *graph.Node) *graph.Node {
			y := net.ForwardRange(ops, x, first, last+1)
			return y
		}
		return u
	}
	switch g {
	case Layer:
		for i, b := range net.Blocks {
			if b.Kind != models.Basic {
				continue
			}
			c1, c2 := b.Layers[0], b.Layers[1]
			units = append(units, &Unit{Name: c1.Name, Layers: []*models.Layer{c1}, ActPoints: []string{c1.Name},
				InLayer: c1.Name, outKind: outAct, outName: c1.Name, first: i, last: i,
				forward: func(ops models.Ops, x *graph.Node) *graph.Node {
					return ops.Act(c1.Name, graph.MaxScalar(ops.Layer(c1, x), 0.0))
				}})
			units = append(units, &Unit{Name: c2.Name, Layers: []*models.Layer{c2}, InLayer: c2.Name,
				outKind: outLayer, outName: c2.Name, first: i, last: i,
				forward: func(ops models.Ops, x *graph.Node) *graph.Node { return ops.Layer(c2, x) }})
			if sc := b.Shortcut; sc != nil {
				units = append(units, &Unit{Name: sc.Name, Layers: []*models.Layer{sc}, InLayer: sc.Name,
					outKind: outLayer, outName: sc.Name, first: i, last: i,
					forward: func(ops models.Ops, x *graph.Node) *graph.Node { return ops.Layer(sc, x) }})
			}
		}
		units = append(units, fcUnit)
	case Block:
		for i, b := range net.Blocks {
			if b.Kind == models.Basic {
				units = append(units, blockRange(b.Name, i, i))
			}
		}
		units = append(units, fcUnit)
	case Stage:
		for s := 1; s <= net.NumStages; s++ {
			idx := net.StageBlocks(s)
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
