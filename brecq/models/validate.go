package models

import (
	"fmt"
	"strings"
)

// Validate checks that the description is a network Forward can build: a stem
// first and a head (one Linear layer) last; channel counts that chain (each
// layer's In is the previous Out, a shortcut maps the block input to the
// block output, an identity residual keeps channels and resolution); groups
// dividing both channel counts; unique layer, block and activation-point
// names (a block name may not be a layer's point, since every block output
// passes through Ops.Act under the block name); every stage 1..NumStages
// non-empty. All problems are reported at once.
func (n *Net) Validate() error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(n.Blocks) < 2 || n.Blocks[0].Kind != Stem || n.Blocks[len(n.Blocks)-1].Kind != Head {
		bad("want a stem first and a head last")
	} else if h := n.Blocks[len(n.Blocks)-1]; len(h.Layers) != 1 || h.Layers[0].Kind != Linear {
		bad("head %s: want exactly one Linear layer", h.Name)
	}
	layers, blocks, points := map[string]bool{}, map[string]bool{}, map[string]bool{}
	stages := make([]int, n.NumStages+1)
	c := n.InC
	for i, b := range n.Blocks {
		if blocks[b.Name] {
			bad("block name %q used twice", b.Name)
		}
		blocks[b.Name] = true
		if (b.Kind == Stem && i != 0) || (b.Kind == Head && i != len(n.Blocks)-1) {
			bad("block %s: a %s may only be the %s block", b.Name, b.Kind, map[bool]string{true: "first", false: "last"}[b.Kind == Stem])
		}
		if b.Body() {
			if b.Stage < 1 || b.Stage > n.NumStages {
				bad("block %s: stage %d not in 1..%d", b.Name, b.Stage, n.NumStages)
			} else {
				stages[b.Stage]++
			}
		}
		if len(b.Layers) == 0 {
			bad("block %s has no layers", b.Name)
			continue
		}
		in, stride := c, 1
		for _, l := range b.AllLayers() {
			if layers[l.Name] {
				bad("layer name %q used twice", l.Name)
			}
			layers[l.Name] = true
			if l.Groups < 1 || l.In%l.Groups != 0 || l.Out%l.Groups != 0 {
				bad("layer %s: %d groups do not divide in %d / out %d", l.Name, l.Groups, l.In, l.Out)
			}
			if l.Point {
				if points[l.Name] {
					bad("activation point %q declared twice", l.Name)
				}
				points[l.Name] = true
			}
		}
		for _, l := range b.Layers {
			if l.In != c {
				bad("layer %s: in %d, but its input has %d channels", l.Name, l.In, c)
			}
			c = l.Out
			stride *= max(l.Stride, 1)
		}
		if sc := b.Shortcut; sc != nil && (sc.In != in || sc.Out != c || sc.Stride != stride || !b.Residual) {
			bad("block %s: shortcut %s maps %d→%d at stride %d (residual %v), the block %d→%d at stride %d",
				b.Name, sc.Name, sc.In, sc.Out, sc.Stride, b.Residual, in, c, stride)
		}
		if b.Residual && b.Shortcut == nil && (in != c || stride != 1) {
			bad("block %s: identity residual from %d to %d channels at stride %d", b.Name, in, c, stride)
		}
		if b.Kind != Head {
			if points[b.Name] || (b.OutPoint && layers[b.Name] && n.Layer(b.Name).Point) {
				bad("block %s: its name is also a layer's activation point", b.Name)
			}
			if b.OutPoint {
				points[b.Name] = true
			}
		}
	}
	for s := 1; s <= n.NumStages; s++ {
		if stages[s] == 0 {
			bad("stage %d has no blocks", s)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("models: %s description: %s", n.Name, strings.Join(errs, "; "))
	}
	return nil
}
