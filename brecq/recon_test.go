package brecq

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
)

func testBackend(t testing.TB) compute.Backend {
	return enginetest.Backend(t)
}

// testNet is a ResNet-8 (one block per stage) with random weights and
// random, non-trivial BatchNorm statistics, and n random images.
func testNet(t testing.TB, n int) (*models.Net, models.Params, *tensors.Tensor) {
	net, err := models.CIFARResNet(8, 1, 1, 12, 12, 10)
	if err != nil {
		t.Fatal(err)
	}
	p := fptrain.Init(net, 7)
	r := rand.New(rand.NewPCG(3, 4))
	for _, name := range net.ParamNames() {
		tt := p[name]
		v := tensors.MustCopyFlatData[float32](tt)
		switch {
		case hasSuffix(name, ".running_var"):
			for i := range v {
				v[i] = float32(0.5 + r.Float64())
			}
		case hasSuffix(name, ".running_mean"), hasSuffix(name, "bn1.bias"), hasSuffix(name, "bn2.bias"):
			for i := range v {
				v[i] = float32(0.2 * r.NormFloat64())
			}
		case hasSuffix(name, "bn1.weight"), hasSuffix(name, "bn2.weight"):
			for i := range v {
				v[i] = float32(0.5 + 0.5*r.Float64())
			}
		default:
			continue
		}
		p[name] = tensors.FromFlatDataAndDimensions(v, tt.Shape().Dimensions...)
	}
	x := make([]float32, n*144)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return net, p, tensors.FromFlatDataAndDimensions(x, n, 1, 12, 12)
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

func maxRelDiff(a, b []float32) float64 {
	m, scale := 0.0, 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return m / math.Max(scale, 1e-12)
}

// TestFoldBNLeavesOutputsUnchanged compares the network with BatchNorm in
// inference mode against the folded network.
func TestFoldBNLeavesOutputsUnchanged(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 6)
	ev, err := fptrain.NewEvaluator(b, net, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ev.Logits(x)
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultOptions(4, 32)
	q, err := NewQuantizer(b, net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	logits, done := q.Evaluator(FPMode())
	defer done()
	got, err := logits(x)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxRelDiff(tensors.MustCopyFlatData[float32](got), tensors.MustCopyFlatData[float32](want)); d > 1e-5 {
		t.Fatalf("folded logits differ from BN logits by %g (relative to max)", d)
	}
}

// TestUnitsCoverLayers checks each granularity's units: every weight layer but
// the stem belongs to exactly one unit, and the unit counts of ResNet-20.
func TestUnitsCoverLayers(t *testing.T) {
	net := models.ResNet20()
	wantCount := map[Granularity]int{Layer: 9*2 + 2 + 1, Block: 9 + 1, Stage: 3 + 1, Net: 1}
	for g, want := range wantCount {
		units, err := Units(net, g)
		if err != nil {
			t.Fatal(err)
		}
		if len(units) != want {
			t.Errorf("%s: %d units, want %d", g, len(units), want)
		}
		seen := map[string]int{}
		for _, u := range units {
			for _, l := range u.Layers {
				seen[l.Name]++
			}
		}
		for i, l := range net.Layers() {
			if i == 0 {
				if seen[l.Name] != 0 {
					t.Errorf("%s: the stem is reconstructed", g)
				}
				continue
			}
			if seen[l.Name] != 1 {
				t.Errorf("%s: layer %s is in %d units", g, l.Name, seen[l.Name])
			}
		}
	}
	if _, err := ParseGranularity("blocks"); err == nil {
		t.Error("ParseGranularity accepted \"blocks\"")
	}
}

// unitOutputError is the mean squared error between the unit's output with
// the given rounding of its own layers and the FP output, on the FP input.
func unitOutputError(t *testing.T, q *Quantizer, u *Unit, m RoundingMode) float64 {
	_, y, err := q.capture(FPMode(), u, false, imageStream(t, q), nil, true, true)
	if err != nil {
		t.Fatal(err)
	}
	_, yq, err := q.capture(q.weightMode(map[string]bool{}, u, m), u, false, imageStream(t, q), nil, true, true)
	if err != nil {
		t.Fatal(err)
	}
	s := 0.0
	for i := range y.data {
		d := float64(yq.data[i] - y.data[i])
		s += d * d
	}
	return s / float64(len(y.data))
}

// TestBlockReconstructionBeatsNearest: a short BRECQ run on one block brings
// its output error below that of nearest rounding, and the same seed gives
// identical rounding.
func TestBlockReconstructionBeatsNearest(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 64)
	opt := DefaultOptions(2, 32)
	opt.WeightIters, opt.Batch = 300, 16
	run := func() (*Quantizer, *Unit) {
		q, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		units, _ := Units(net, Block)
		u := units[1] // layer2.0, with a downsample shortcut
		qs, fs := streamAt(t, q, u.first, q.weightMode(map[string]bool{}, nil, RoundOff)), streamAt(t, q, u.first, FPMode())
		if err := q.reconstructWeights(u, map[string]bool{}, qs, fs); err != nil {
			t.Fatal(err)
		}
		return q, u
	}
	q, u := run()
	nearest := unitOutputError(t, q, u, RoundNearest)
	learned := unitOutputError(t, q, u, RoundHard)
	t.Logf("block %s W2: output MSE nearest %.5g, BRECQ %.5g", u.Name, nearest, learned)
	if !(learned < 0.8*nearest) {
		t.Fatalf("reconstruction did not beat nearest rounding: %g vs %g", learned, nearest)
	}
	q2, _ := run()
	for _, l := range u.Layers {
		a, c := q.Q.V[l.Name], q2.Q.V[l.Name]
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("same seed, different V for %s at %d: %g vs %g", l.Name, i, a[i], c[i])
			}
		}
	}
}

// TestFisherWeightsMatchFiniteDifferences checks the squared gradients of
// KL(FP ‖ quantized) at a block output against central differences of the
// KL computed with a perturbation added at that output.
func TestFisherWeightsMatchFiniteDifferences(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 4)
	opt := DefaultOptions(2, 32)
	opt.Loss = LossFisher
	q, err := NewQuantizer(b, net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	units, _ := Units(net, Block)
	u := units[0] // layer1.0, output at activation point "layer1.0"
	mode := q.weightMode(map[string]bool{}, u, RoundNearest)
	_, g2, err := q.capture(mode, u, true, imageStream(t, q), imageStream(t, q), true, true)
	if err != nil {
		t.Fatal(err)
	}
	// KL as a function of a perturbation δ added at the unit output.
	f := q.Q.feed(nil)
	exec := graph.MustNewExec(b, func(in []*graph.Node) []*graph.Node {
		nodes := f.nodes(in)
		img, delta := in[len(f.keys)], in[len(f.keys)+1]
		ops := &qOps{q: q.Q, n: nodes, mode: mode}
		ops.onAct = func(pt string, v *graph.Node) *graph.Node {
			if pt == u.outName {
				return graph.Add(v, delta)
			}
			return nil
		}
		y := net.Forward(ops, img)
		pfp := graph.Softmax(net.Forward(&qOps{q: q.Q, n: nodes, mode: FPMode()}, img), -1)
		// The Fisher pass's objective: Σ over images of KL, divided by 128.
		kl := graph.DivScalar(graph.ReduceAllSum(graph.Mul(pfp, graph.Sub(graph.Log(pfp), graph.LogSoftmax(y, -1)))), 128)
		return []*graph.Node{kl}
	})
	const C, N, S = 16, 4, 144 // layer1.0's output is [C, N, 12, 12]
	klAt := func(i int, h float32) float64 {
		d := make([]float32, C*N*S)
		d[i] = h
		out := exec.MustCall(f.args(x, tensors.FromFlatDataAndDimensions(d, C, N, 12, 12))...)
		return float64(tensors.ToScalar[float32](out[0]))
	}
	// The five elements with the largest squared gradient.
	type el struct {
		cacheIdx int
		g2       float64
	}
	var top []el
	for i, v := range g2.data {
		top = append(top, el{i, float64(v)})
	}
	for i := 0; i < 5; i++ {
		for j := i + 1; j < len(top); j++ {
			if top[j].g2 > top[i].g2 {
				top[i], top[j] = top[j], top[i]
			}
		}
	}
	const h = 2e-2
	for _, e := range top[:5] {
		j, rest := e.cacheIdx/(C*S), e.cacheIdx%(C*S)
		c, s := rest/S, rest%S
		di := (c*N+j)*S + s
		fd := (klAt(di, h) - klAt(di, -h)) / (2 * h)
		got := math.Sqrt(e.g2)
		// Tolerance: 5% plus the float32 rounding of KL differences (~1e-8 / 2h).
		if math.Abs(math.Abs(fd)-got) > 0.05*got+2e-6 {
			t.Errorf("element (image %d, channel %d, pos %d): |∂KL/∂y| = %.4g from the Fisher pass, %.4g by finite differences", j, c, s, got, math.Abs(fd))
		} else {
			t.Logf("element (image %d, channel %d, pos %d): %.4g vs finite differences %.4g", j, c, s, got, math.Abs(fd))
		}
	}
}

func imageStream(t *testing.T, q *Quantizer) *stream {
	s, err := q.imageStream()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func streamAt(t *testing.T, q *Quantizer, block int, m Mode) *stream {
	s := imageStream(t, q)
	if err := q.advance(s, block, m); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStreamCachingMatchesFullPrefix: a unit's input and output cached from a
// stream advanced block by block equal those from a pass over the whole
// prefix, for every block unit and the classifier.
func TestStreamCachingMatchesFullPrefix(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 200) // more than one chunk of images
	q, err := NewQuantizer(b, net, p, x, DefaultOptions(3, 32))
	if err != nil {
		t.Fatal(err)
	}
	mode := q.weightMode(map[string]bool{}, nil, RoundNearest)
	units, _ := Units(net, Block)
	s := imageStream(t, q)
	for _, u := range units {
		if err := q.advance(s, u.first, mode); err != nil {
			t.Fatal(err)
		}
		in1, out1, err := q.capture(mode, u, false, s, nil, true, true)
		if err != nil {
			t.Fatal(err)
		}
		in2, out2, err := q.capture(mode, u, false, imageStream(t, q), nil, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if in1.n != 200 || out1.n != 200 {
			t.Fatalf("%s: cached %d inputs and %d outputs, want 200", u.Name, in1.n, out1.n)
		}
		if d := maxRelDiff(in1.data, in2.data); d > 1e-6 {
			t.Errorf("%s: inputs differ by %g", u.Name, d)
		}
		if d := maxRelDiff(out1.data, out2.data); d > 1e-6 {
			t.Errorf("%s: outputs differ by %g", u.Name, d)
		}
	}
}

// TestRunEndToEnd runs every stage (weights at each granularity, activation
// ranges and LSQ) on a small network and checks that the quantized logits are
// closer to the FP logits than nearest rounding's, and that every activation
// point got a quantizer.
// logitsOf evaluates q under mode m on the images x.
func logitsOf(t *testing.T, q *Quantizer, m Mode, x *tensors.Tensor) []float32 {
	t.Helper()
	f, done := q.Evaluator(m)
	defer done()
	out, err := f(x)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](out)
}

// runQuantizer builds a Quantizer with opt and runs it, failing the test on error.
func runQuantizer(t *testing.T, b compute.Backend, net *models.Net, p models.Params, x *tensors.Tensor, opt Options) *Quantizer {
	t.Helper()
	q, err := NewQuantizer(b, net, p, x, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Run(); err != nil {
		t.Fatal(err)
	}
	return q
}

// mse is the mean squared difference of two equally long vectors.
func mse(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		d := float64(a[i] - b[i])
		s += d * d
	}
	return s / float64(len(a))
}

func TestRunEndToEnd(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 64)
	for _, tc := range []struct {
		g      Granularity
		loss   Loss
		iters  int
		better bool // must end closer to FP than nearest rounding
	}{{Layer, LossMSE, 150, true}, {Block, LossFisher, 150, true}, {Net, LossMSE, 20, false}} {
		// Network-wise reconstruction only has to complete: with one loss at the
		// logits and the rounding term summed over every layer it can end worse
		// than nearest rounding on a short budget (seen here: 0.0048 vs 0.0032).
		opt := DefaultOptions(2, 4)
		opt.Granularity, opt.Loss, opt.WeightIters, opt.ActIters, opt.Batch = tc.g, tc.loss, tc.iters, 20, 16
		q, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Run(); err != nil {
			t.Fatalf("%s/%s: %v", tc.g, tc.loss, err)
		}
		for _, pt := range ActPoints(net) {
			if _, ok := q.Q.AQ[pt]; !ok {
				t.Errorf("%s: activation point %s has no quantizer", tc.g, pt)
			}
		}
		nopt := opt
		nopt.Method = MethodNearest
		nq := runQuantizer(t, b, net, p, x, nopt)
		fp := logitsOf(t, q, FPMode(), x)
		got, near := mse(logitsOf(t, q, q.EvalMode(), x), fp), mse(logitsOf(t, nq, nq.EvalMode(), x), fp)
		t.Logf("%s/%s W2A4: logit MSE to FP %.4g (nearest %.4g)", tc.g, tc.loss, got, near)
		if tc.better && !(got < near) {
			t.Errorf("%s/%s: reconstruction (%g) not closer to FP than nearest (%g)", tc.g, tc.loss, got, near)
		}
	}
}
