package brecq

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/internal/progress"
)

// A step graph is one optimisation iteration on a unit: its inputs are the
// QNet's feed (minus the trainables), then the slots declared by the stage —
// trainables and their Adam moments, minibatch tensors, per-iteration scalars.
// A slot is declared once and then used both where the graph reads its nodes
// and where the loop fills its arguments, so no input is read by position.

// slot is a run of n consecutive inputs of a step graph, starting at input at.
type slot struct{ at, n int }

// stepInputs hands out the slots of a step graph in declaration order, after
// the feed's inputs.
type stepInputs struct {
	f *feed
	n int
}

func newStepInputs(f *feed) *stepInputs { return &stepInputs{f: f, n: len(f.keys)} }

// add declares a slot of n inputs.
func (s *stepInputs) add(n int) slot {
	sl := slot{s.n, n}
	s.n += n
	return sl
}

// one declares a slot of one input.
func (s *stepInputs) one() slot { return s.add(1) }

// args returns an argument list of the graph's length with the feed's tensors
// filled in; the slots are filled with slot.set.
func (s *stepInputs) args() []any {
	a := make([]any, s.n)
	for i, v := range s.f.vals {
		a[i] = v
	}
	return a
}

// node is the graph input of a one-input slot.
func (sl slot) node(in []*graph.Node) *graph.Node {
	if sl.n != 1 {
		panic(fmt.Sprintf("brecq: slot of %d inputs read as one", sl.n))
	}
	return in[sl.at]
}

// nodes are the graph inputs of the slot.
func (sl slot) nodes(in []*graph.Node) []*graph.Node { return in[sl.at : sl.at+sl.n] }

// set fills the slot's arguments.
func (sl slot) set(args []any, v ...any) {
	if len(v) != sl.n {
		panic(fmt.Sprintf("brecq: slot of %d inputs given %d values", sl.n, len(v)))
	}
	copy(args[sl.at:], v)
}

// adamGroup is a list of trainable tensors of a QNet sharing one learning
// rate, optimised by Adam (AdamUpdate) in a step graph: slots for the
// parameters p, the moments m and v (zero at the start) and the learning
// rate. With floor > 0 the parameters are clamped to ≥ floor after each step
// (activation step sizes). The group's new p, m, v are outputs of the graph.
type adamGroup struct {
	keys    []key
	p, m, v slot
	lr      slot
	floor   float64
	state   []*tensors.Tensor // p..., m..., v... between iterations
}

// newAdamGroup declares the group's slots and takes the parameters' initial
// values from q.
func newAdamGroup(in *stepInputs, q *QNet, keys []key, floor float64) *adamGroup {
	k := len(keys)
	g := &adamGroup{keys: keys, p: in.add(k), m: in.add(k), v: in.add(k), lr: in.one(), floor: floor,
		state: make([]*tensors.Tensor, 3*k)}
	for i, kk := range keys {
		t := q.tensor(kk)
		g.state[i] = t
		g.state[k+i] = tensors.FromShape(t.Shape())
		g.state[2*k+i] = tensors.FromShape(t.Shape())
	}
	return g
}

// bind makes the group's parameter inputs the nodes a qOps reads for its keys.
func (g *adamGroup) bind(in []*graph.Node, nodes map[key]*graph.Node) {
	for i, n := range g.p.nodes(in) {
		nodes[g.keys[i]] = n
	}
}

// adamSteps builds one Adam step (AdamUpdate, DefaultAdamConfig) on loss for
// every group, the gradients taken in one pass; step is the 1-based
// iteration. It returns the new p, m, v of each group in order: the first
// outputs of a step graph, which adamLoop feeds back.
func adamSteps(in []*graph.Node, loss, step *graph.Node, groups ...*adamGroup) []*graph.Node {
	var params []*graph.Node
	for _, g := range groups {
		params = append(params, g.p.nodes(in)...)
	}
	grads := graph.Gradient(loss, params...)
	var out []*graph.Node
	for _, g := range groups {
		k := g.p.n
		np, nm, nv := AdamUpdateAll(g.p.nodes(in), grads[:k], g.m.nodes(in), g.v.nodes(in), g.lr.node(in), step, DefaultAdamConfig())
		grads = grads[k:]
		if g.floor > 0 {
			for i := range np {
				np[i] = graph.MaxScalar(np[i], g.floor)
			}
		}
		out = append(append(append(out, np...), nm...), nv...)
	}
	return out
}

// adamLoop runs iters iterations of the step graph exec. Each draws a
// minibatch of len(idx) indices among n cached images (the Quantizer's
// seeded generator), passes each group's state and what fill sets for the
// iteration (fill is called after the draw), keeps the groups' new state and
// hands the remaining outputs to observe, which fills the iteration's
// IterStats (at least Rec, the loss; an error if NaN or infinite) and returns
// a progress note. It fills rep's losses and iteration times, calls
// Options.OnIter once per iteration when set and, at the end, stores the
// groups' parameters in the QNet.
func (r *Quantizer) adamLoop(exec *graph.Exec, args []any, groups []*adamGroup, iters, n int, idx []int, rep *UnitReport,
	fill func(it int, args []any) error, observe func(it int, out []*tensors.Tensor, st *IterStats) (note string)) error {
	var bar *progress.Bar
	if r.opt.Progress != nil {
		bar = progress.New(r.opt.Progress, fmt.Sprintf("%s %-16s", strings.ToUpper(rep.Stage[:1]), rep.Unit), iters)
	}
	times := make(iterTimes, 0, iters)
	draw := r.minibatchDraw(n)
	for it := 0; it < iters; it++ {
		ti := time.Now()
		draw(idx)
		for _, g := range groups {
			k := g.p.n
			g.p.set(args, toAny(g.state[:k])...)
			g.m.set(args, toAny(g.state[k:2*k])...)
			g.v.set(args, toAny(g.state[2*k:])...)
		}
		if err := fill(it, args); err != nil {
			return errorf("unit %s, %s, iteration %d: %w", rep.Unit, rep.Stage, it, err)
		}
		res, err := exec.Call(args...)
		if err != nil {
			return errorf("unit %s, %s, iteration %d: %w", rep.Unit, rep.Stage, it, err)
		}
		for _, g := range groups {
			res = res[copy(g.state, res):]
		}
		st := IterStats{Unit: rep.Unit, Stage: rep.Stage, Iter: it, Iters: iters}
		note := observe(it, res, &st)
		loss := st.Rec
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return errorf("unit %s, %s, iteration %d: reconstruction loss is %v", rep.Unit, rep.Stage, it, loss)
		}
		if it == 0 {
			rep.RecLoss0 = loss
		}
		rep.RecLoss = loss
		if r.opt.OnIter != nil {
			r.opt.OnIter(st)
		}
		times = append(times, float64(time.Since(ti).Microseconds())/1e3)
		if bar != nil {
			bar.Update(it+1, note)
		}
	}
	for _, g := range groups {
		for i, k := range g.keys {
			r.Q.store(k, g.state[i])
		}
	}
	times.record(rep)
	return nil
}

// minibatchDraw returns the function that fills a minibatch of indices
// among n cached images from the Quantizer's generator, as
// Options.Minibatch says: independent uniform draws (MinibatchIID), or a
// uniformly random subset of distinct images (MinibatchDistinct: a partial
// Fisher–Yates shuffle of a permutation of 0..n−1 kept between calls, which
// gives every len(idx)-subset the same probability whatever the
// permutation's state; with len(idx) > n the n images fill the first n
// places and the rest are drawn independently).
func (r *Quantizer) minibatchDraw(n int) func(idx []int) {
	if r.opt.Minibatch != MinibatchDistinct {
		return func(idx []int) {
			for j := range idx {
				idx[j] = r.rng.IntN(n)
			}
		}
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	return func(idx []int) {
		for j := range idx {
			if j >= n {
				idx[j] = r.rng.IntN(n)
				continue
			}
			k := j + r.rng.IntN(n-j)
			perm[j], perm[k] = perm[k], perm[j]
			idx[j] = perm[j]
		}
	}
}

func toAny(ts []*tensors.Tensor) []any {
	a := make([]any, len(ts))
	for i, t := range ts {
		a[i] = t
	}
	return a
}

// fillXY loads minibatch idx of a unit's cached inputs xin and targets y
// into their slots of args.
func fillXY(args []any, idx []int, xin, y *cache, xSlot, ySlot slot) error {
	xb, yb, err := xyBatch(idx, xin, y)
	if err != nil {
		return err
	}
	xSlot.set(args, xb)
	ySlot.set(args, yb)
	return nil
}

// xyBatch reads minibatch idx of a unit's cached inputs xin and targets y.
func xyBatch(idx []int, xin, y *cache) (xb, yb *tensors.Tensor, err error) {
	if xb, err = xin.batch(idx); err != nil {
		return nil, nil, err
	}
	if yb, err = y.batch(idx); err != nil {
		return nil, nil, err
	}
	return xb, yb, nil
}
