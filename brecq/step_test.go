package brecq

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
)

// TestAdamLoopMatchesReference runs adamLoop on a step graph with two Adam
// groups (a 3-element V at learning rate 0.1, a step size at 0.05 with the
// MinScale floor) on f = Σ c_i (v_i − a_i)² + 4·(s − b)², the slots declared
// once and filled by name, and compares the parameters stored back into the
// QNet, the reported losses and those Options.OnIter receives (once per
// iteration) with a float64 Adam (refAdam) run by hand; b is negative, so the
// floor must hold s at MinScale.
func TestAdamLoopMatchesReference(t *testing.T) {
	a := []float64{3, -1, 0.5}
	c := []float64{1, 10, 0.1}
	const b = -0.2
	q := &QNet{FP: models.Params{"l.weight": tensors.FromFlatDataAndDimensions([]float32{0, 0, 0}, 3)},
		V:  map[string][]float32{"l": {0, 0, 0.5}},
		AQ: map[string]QParams{"p": {Bits: 4, Scale: []float32{0.5}, ZeroPoint: []float32{0}, Shape: []int{}}}}
	r := &Quantizer{Q: q, opt: DefaultOptions(2, 4), rng: rand.New(rand.NewPCG(1, 2))}
	in := newStepInputs(&feed{})
	vg := newAdamGroup(in, q, []key{{roundVT, "l"}}, 0)
	sg := newAdamGroup(in, q, []key{{aScaleT, "p"}}, MinScale)
	stepSlot := in.one()
	exec := graph.MustNewExec(qtBackend(t), func(inputs []*graph.Node) []*graph.Node {
		nodes := map[key]*graph.Node{}
		vg.bind(inputs, nodes)
		sg.bind(inputs, nodes)
		g := stepSlot.node(inputs).Graph()
		d := graph.Sub(nodes[key{roundVT, "l"}], graph.Const(g, []float32{3, -1, 0.5}))
		ds := graph.AddScalar(nodes[key{aScaleT, "p"}], -b)
		loss := graph.Add(graph.ReduceAllSum(graph.Mul(graph.Const(g, []float32{1, 10, 0.1}), graph.Mul(d, d))),
			graph.MulScalar(graph.Mul(ds, ds), 4))
		return append(adamSteps(inputs, loss, stepSlot.node(inputs), vg, sg), loss)
	})
	defer exec.Finalize()
	args := in.args()
	vg.lr.set(args, float32(0.1))
	sg.lr.set(args, float32(0.05))
	const iters = 12
	var losses []float64
	var traced []IterStats
	r.opt.OnIter = func(s IterStats) { traced = append(traced, s) }
	rep := UnitReport{Unit: "l", Stage: "weights"}
	err := r.adamLoop(exec, args, []*adamGroup{vg, sg}, iters, 1, make([]int, 2), &rep,
		func(it int, args []any) error { stepSlot.set(args, float32(it+1)); return nil },
		func(_ int, out []*tensors.Tensor, st *IterStats) string {
			st.Rec = float64(tensors.ToScalar[float32](out[0]))
			losses = append(losses, st.Rec)
			return ""
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(traced) != iters {
		t.Fatalf("OnIter called %d times in %d iterations", len(traced), iters)
	}
	rv, rs := []float64{0, 0, 0.5}, []float64{0.5}
	av, as := &refAdam{}, &refAdam{}
	var first float64
	for it := range iters {
		loss := 4 * (rs[0] - b) * (rs[0] - b)
		gv := make([]float64, 3)
		for i := range rv {
			loss += c[i] * (rv[i] - a[i]) * (rv[i] - a[i])
			gv[i] = 2 * c[i] * (rv[i] - a[i])
		}
		if it == 0 {
			first = loss
		}
		if !qtClose(losses[it], loss, 1e-5*loss) {
			t.Errorf("iteration %d: loss %g, reference %g", it, losses[it], loss)
		}
		if s := traced[it]; s.Iter != it || s.Iters != iters || s.Unit != "l" || s.Stage != "weights" || !qtClose(s.Rec, loss, 1e-5*loss) {
			t.Errorf("iteration %d: OnIter got %+v, want the reference loss %g", it, s, loss)
		}
		av.step(rv, gv, 0.1)
		as.step(rs, []float64{8 * (rs[0] - b)}, 0.05)
		rs[0] = math.Max(rs[0], MinScale)
	}
	for i, v := range q.V["l"] {
		if !qtClose(float64(v), rv[i], 2e-6) {
			t.Errorf("V[%d] = %g, reference %g", i, v, rv[i])
		}
	}
	if s := q.AQ["p"].Scale[0]; float64(s) != float64(float32(MinScale)) || rs[0] != MinScale {
		t.Errorf("step size %g (reference %g), want held at the floor %g", s, rs[0], MinScale)
	}
	if rep.RecLoss0 != losses[0] || rep.RecLoss != losses[iters-1] || !qtClose(rep.RecLoss0, first, 1e-5*first) {
		t.Errorf("report losses %g → %g, want %g → %g", rep.RecLoss0, rep.RecLoss, losses[0], losses[iters-1])
	}
}

// TestKeyTensorsRoundTrip: a trainable read from a QNet as a graph input and
// stored back is unchanged, and every weight-quantizer tensor has the
// quantizer's per-channel shape.
func TestKeyTensorsRoundTrip(t *testing.T) {
	net, p, x := testNet(t, 4)
	q, err := NewQuantizer(testBackend(t), net, p, x, DefaultOptions(2, 4))
	if err != nil {
		t.Fatal(err)
	}
	l := net.Layers()[1]
	v := append([]float32(nil), q.Q.V[l.Name]...)
	q.Q.store(key{roundVT, l.Name}, q.Q.tensor(key{roundVT, l.Name}))
	if d := maxRelDiff(v, q.Q.V[l.Name]); d != 0 {
		t.Errorf("V round trip differs by %g", d)
	}
	s := q.Q.tensor(key{wScaleT, l.Name})
	if got, want := s.Shape().Dimensions, q.Q.WQ[l.Name].Shape; len(got) != len(want) || got[0] != want[0] {
		t.Errorf("scale tensor dims %v, want %v", got, want)
	}
	q.Q.AQ["pt"] = QParams{Bits: 4, Scale: []float32{0.25}, ZeroPoint: []float32{0}, Shape: []int{}}
	q.Q.store(key{aScaleT, "pt"}, tensors.FromScalar(float32(0.75)))
	if got := q.Q.AQ["pt"].Scale[0]; got != 0.75 {
		t.Errorf("stored step size %g, want 0.75", got)
	}
	if q.Q.tensor(key{aScaleT, "pt"}).Shape().Rank() != 0 {
		t.Error("per-tensor step size is not a scalar input")
	}
}

// TestMinibatchDraw: MinibatchDistinct never repeats an image within a
// minibatch and, over many draws, picks every image about equally often (each
// of n = 40 images in a minibatch of 8 with probability 1/5: 4 000 draws give
// 800 ± 25 per image, so the bound 800 ± 6σ ≈ ±150 fails only if the draw is
// biased); MinibatchIID repeats images (a minibatch of 8 among 40 holds a
// repeat with probability 1 − Π_{k<8}(1 − k/40) ≈ 0.53); a minibatch larger
// than the cache holds every image once, then independent draws; both are
// reproducible from the seed.
func TestMinibatchDraw(t *testing.T) {
	const n, b, draws = 40, 8, 4000
	run := func(mode string, seed uint64, n, b int) (repeats int, count []int, first []int) {
		o := DefaultOptions(2, 4)
		o.Minibatch = mode
		r := &Quantizer{opt: o, rng: rand.New(rand.NewPCG(seed, 2))}
		draw := r.minibatchDraw(n)
		count = make([]int, n)
		idx := make([]int, b)
		for d := 0; d < draws; d++ {
			draw(idx)
			if d == 0 {
				first = append([]int(nil), idx...)
			}
			seen := map[int]bool{}
			rep := false
			for _, i := range idx {
				if i < 0 || i >= n {
					t.Fatalf("%s: index %d outside [0, %d)", mode, i, n)
				}
				rep = rep || seen[i]
				seen[i] = true
				count[i]++
			}
			if rep {
				repeats++
			}
		}
		return repeats, count, first
	}
	rep, count, first := run(MinibatchDistinct, 1, n, b)
	if rep != 0 {
		t.Errorf("distinct: %d of %d minibatches repeat an image", rep, draws)
	}
	for i, c := range count {
		if math.Abs(float64(c)-draws*b/n) > 150 {
			t.Errorf("distinct: image %d drawn %d times, want %d ± 150", i, c, draws*b/n)
		}
	}
	if _, _, again := run(MinibatchDistinct, 1, n, b); !slices.Equal(first, again) {
		t.Errorf("distinct: same seed, different first minibatch %v vs %v", first, again)
	}
	if rep, _, _ := run(MinibatchIID, 1, n, b); math.Abs(float64(rep)/draws-0.53) > 0.05 {
		t.Errorf("iid: %.3f of minibatches repeat an image, want ≈ 0.53", float64(rep)/draws)
	}
	// Batch larger than the cache: the first n places are the n images.
	_, _, big := run(MinibatchDistinct, 3, 5, 7)
	got := slices.Clone(big[:5])
	slices.Sort(got)
	if !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Errorf("distinct, batch 7 of 5 images: first five %v, want each image once", big[:5])
	}
	o := DefaultOptions(2, 4)
	o.Minibatch = "random"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), `"random"`) || !strings.Contains(err.Error(), "distinct") {
		t.Errorf("Minibatch \"random\": error %v, want one naming the value and the allowed ones", err)
	}
}
