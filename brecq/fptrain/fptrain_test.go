package fptrain_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/optim"
)

func goBackend(t testing.TB) compute.Backend {
	return enginetest.Backend(t)
}

// lossAndCorrect evaluates optim.CrossEntropy and Correct on the given logits and labels.
func lossAndCorrect(t *testing.T, logits [][]float32, labels []int32) (float64, int) {
	t.Helper()
	n, k := len(logits), len(logits[0])
	flat := make([]float32, 0, n*k)
	for _, row := range logits {
		flat = append(flat, row...)
	}
	exec, err := graph.NewExec(goBackend(t), func(l, y *graph.Node) (*graph.Node, *graph.Node) {
		return optim.CrossEntropy(l, y), fptrain.Correct(l, y)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(flat, n, k), tensors.FromFlatDataAndDimensions(labels, n))
	if err != nil {
		t.Fatal(err)
	}
	return float64(tensors.ToScalar[float32](out[0])), int(tensors.ToScalar[int32](out[1]))
}

func TestCrossEntropyAndCorrect(t *testing.T) {
	// Row 1: −log(e³/(e + e² + e³)) = log(1 + e⁻¹ + e⁻²) = 0.40760596444438;
	// row 2: log 3 = 1.09861228866811; row 3: −log(e⁰/(e⁰+e⁵)) = log(1 + e⁵) = 5.00671534848858.
	logits := [][]float32{{1, 2, 3}, {0, 0, 0}, {0, 5, -1000}}
	labels := []int32{2, 1, 0}
	want := (0.40760596444438 + 1.09861228866811 + 5.00671534848858) / 3
	loss, _ := lossAndCorrect(t, logits, labels)
	if math.Abs(loss-want) > 1e-6*want {
		t.Errorf("CrossEntropy = %.9g, want %.9g", loss, want)
	}
	// Without ties: rows 1 and 2 are right (arg-max 2, 1), row 3 is wrong (arg-max 1, label 0).
	if _, c := lossAndCorrect(t, [][]float32{{1, 2, 3}, {0, 4, 0}, {0, 5, -1000}}, labels); c != 2 {
		t.Errorf("Correct = %d, want 2", c)
	}
	// Large logits must not overflow: −log softmax is 1000 for the first row
	// (label 1, logit 0 against 1000) and 0 for the second; the mean is 500.
	loss, correct := lossAndCorrect(t, [][]float32{{1000, 0}, {0, 1000}}, []int32{1, 1})
	if math.Abs(loss-500) > 1e-3 || correct != 1 {
		t.Errorf("large logits: loss %g (want 500), correct %d (want 1)", loss, correct)
	}
	// CountCorrect (host side) agrees on unambiguous rows.
	lt := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 0, 4, 0, 0, 5, -1000, 7, 1, 1}, 4, 3)
	if c := fptrain.CountCorrect(lt, []int32{2, 1, 0, 0}); c != 3 {
		t.Errorf("CountCorrect = %d, want 3", c)
	}
}

func sampleStats(v []float32) (mean, std float64) {
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (float64(x) - mean) * (float64(x) - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)-1))
}

func TestInit(t *testing.T) {
	net, err := models.CIFARResNet(20, 2, 1, 8, 8, 10)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := fptrain.Init(net, 1), fptrain.Init(net, 1), fptrain.Init(net, 2)
	if err := net.Check(a); err != nil {
		t.Fatal(err)
	}
	sameAsC := 0
	for _, name := range net.ParamNames() {
		va, vb := tensors.MustCopyFlatData[float32](a[name]), tensors.MustCopyFlatData[float32](b[name])
		if !slices.Equal(va, vb) {
			t.Errorf("%s differs between two Init calls with the same seed", name)
		}
		if slices.Equal(va, tensors.MustCopyFlatData[float32](c[name])) {
			sameAsC++
		}
	}
	// Only the BatchNorm constants (4 per BN, 21 BNs) may coincide across seeds.
	if sameAsC != 21*4 {
		t.Errorf("%d tensors equal for seeds 1 and 2, want only the %d BatchNorm constants", sameAsC, 21*4)
	}
	// Kaiming normal, fan-out, ReLU gain: std √(2/(out·k²)). layer3.0.conv1
	// is [128, 64, 3, 3]: fan-out gives 0.0417, fan-in would give 0.0589.
	for name, wantStd := range map[string]float64{
		"layer3.1.conv2.weight":        math.Sqrt(2.0 / (128 * 9)),
		"layer3.0.conv1.weight":        math.Sqrt(2.0 / (128 * 9)),
		"layer1.0.conv1.weight":        math.Sqrt(2.0 / (32 * 9)),
		"layer3.0.downsample.0.weight": math.Sqrt(2.0 / 128),
	} {
		v := tensors.MustCopyFlatData[float32](a[name])
		mean, std := sampleStats(v)
		if math.Abs(std/wantStd-1) > 0.05 || math.Abs(mean) > 4*wantStd/math.Sqrt(float64(len(v))) && len(v) > 1000 {
			t.Errorf("%s (%d values): mean %.4g, std %.4g, want 0, %.4g", name, len(v), mean, std, wantStd)
		}
	}
	// nn.Linear: U(−1/√in, 1/√in) for weight and bias, in = 128.
	bound := 1 / math.Sqrt(128)
	for _, name := range []string{"fc.weight", "fc.bias"} {
		v := tensors.MustCopyFlatData[float32](a[name])
		for _, x := range v {
			if math.Abs(float64(x)) > bound {
				t.Fatalf("%s: %g outside ±%g", name, x, bound)
			}
		}
		if name == "fc.weight" {
			if _, std := sampleStats(v); math.Abs(std/(bound/math.Sqrt(3))-1) > 0.1 {
				t.Errorf("fc.weight std %g, want %g", std, bound/math.Sqrt(3))
			}
		}
	}
	for name, want := range map[string]float32{"bn1.weight": 1, "layer2.0.downsample.1.bias": 0, "layer3.1.bn2.running_mean": 0, "layer1.2.bn1.running_var": 1} {
		for _, x := range tensors.MustCopyFlatData[float32](a[name]) {
			if x != want {
				t.Fatalf("%s holds %g, want %g", name, x, want)
			}
		}
	}
}

// ---- Reference training-mode forward in float64 ----

type act struct {
	n, c, h, w int
	v          []float64
}

func conv(x act, w []float64, ws []int, stride int) act {
	O, I, k := ws[0], ws[1], ws[2]
	pad := (k - 1) / 2
	ho, wo := (x.h+2*pad-k)/stride+1, (x.w+2*pad-k)/stride+1
	y := act{x.n, O, ho, wo, make([]float64, x.n*O*ho*wo)}
	for n := 0; n < x.n; n++ {
		for o := 0; o < O; o++ {
			for i := 0; i < ho; i++ {
				for j := 0; j < wo; j++ {
					s := 0.0
					for c := 0; c < I; c++ {
						for u := 0; u < k; u++ {
							yy := i*stride + u - pad
							if yy < 0 || yy >= x.h {
								continue
							}
							for v := 0; v < k; v++ {
								xx := j*stride + v - pad
								if xx >= 0 && xx < x.w {
									s += w[((o*I+c)*k+u)*k+v] * x.v[((n*x.c+c)*x.h+yy)*x.w+xx]
								}
							}
						}
					}
					y.v[((n*O+o)*ho+i)*wo+j] = s
				}
			}
		}
	}
	return y
}

// refNet is a CIFAR ResNet of depth 6n+2 in float64 with BatchNorm in
// training mode.
type refNet struct {
	depth int
	v     map[string][]float64
	shape map[string][]int
	// batch statistics of the last forward: mean and unbiased variance per BN.
	mean, uvar map[string][]float64
}

func newRefNet(depth int, p models.Params) *refNet {
	r := &refNet{depth: depth, v: map[string][]float64{}, shape: map[string][]int{}}
	for name, t := range p {
		f := tensors.MustCopyFlatData[float32](t)
		d := make([]float64, len(f))
		for i, x := range f {
			d[i] = float64(x)
		}
		r.v[name], r.shape[name] = d, t.Shape().Dimensions
	}
	return r
}

// bn normalises each channel with its batch mean and biased variance (as
// PyTorch's BatchNorm2d in training mode) and records the mean and the
// unbiased variance.
func (r *refNet) bn(x act, name string) act {
	y := act{x.n, x.c, x.h, x.w, make([]float64, len(x.v))}
	hw := x.h * x.w
	cnt := float64(x.n * hw)
	r.mean[name], r.uvar[name] = make([]float64, x.c), make([]float64, x.c)
	for c := 0; c < x.c; c++ {
		m, ss := 0.0, 0.0
		for n := 0; n < x.n; n++ {
			for _, v := range x.v[(n*x.c+c)*hw : (n*x.c+c+1)*hw] {
				m += v
			}
		}
		m /= cnt
		for n := 0; n < x.n; n++ {
			for _, v := range x.v[(n*x.c+c)*hw : (n*x.c+c+1)*hw] {
				ss += (v - m) * (v - m)
			}
		}
		r.mean[name][c], r.uvar[name][c] = m, ss/(cnt-1)
		g, b, inv := r.v[name+".weight"][c], r.v[name+".bias"][c], 1/math.Sqrt(ss/cnt+1e-5)
		for n := 0; n < x.n; n++ {
			for i := 0; i < hw; i++ {
				k := (n*x.c+c)*hw + i
				y.v[k] = g*(x.v[k]-m)*inv + b
			}
		}
	}
	return y
}

func relu(x act) act {
	for i, v := range x.v {
		x.v[i] = math.Max(v, 0)
	}
	return x
}

// loss returns the mean cross-entropy of the batch and the number of rows
// whose arg-max is the label.
func (r *refNet) loss(x act, labels []int32) (float64, int) {
	r.mean, r.uvar = map[string][]float64{}, map[string][]float64{}
	cv := func(h act, name string, stride int) act {
		return conv(h, r.v[name+".weight"], r.shape[name+".weight"], stride)
	}
	h := relu(r.bn(cv(x, "conv1", 1), "bn1"))
	for s := 1; s <= 3; s++ {
		for j := 0; j < (r.depth-2)/6; j++ {
			pre := fmt.Sprintf("layer%d.%d", s, j)
			stride := 1
			if s > 1 && j == 0 {
				stride = 2
			}
			y := relu(r.bn(cv(h, pre+".conv1", stride), pre+".bn1"))
			y = r.bn(cv(y, pre+".conv2", 1), pre+".bn2")
			sc := h
			if stride == 2 {
				sc = r.bn(cv(h, pre+".downsample.0", stride), pre+".downsample.1")
			}
			for i := range y.v {
				y.v[i] += sc.v[i]
			}
			h = relu(y)
		}
	}
	fw, fb := r.v["fc.weight"], r.v["fc.bias"]
	total, correct := 0.0, 0
	for n := 0; n < h.n; n++ {
		pooled := make([]float64, h.c)
		for c := range pooled {
			for _, v := range h.v[(n*h.c+c)*h.h*h.w : (n*h.c+c+1)*h.h*h.w] {
				pooled[c] += v
			}
			pooled[c] /= float64(h.h * h.w)
		}
		logits := make([]float64, len(fb))
		best, mx := 0, math.Inf(-1)
		for o := range logits {
			logits[o] = fb[o]
			for c, p := range pooled {
				logits[o] += fw[o*h.c+c] * p
			}
			if logits[o] > mx {
				best, mx = o, logits[o]
			}
		}
		se := 0.0
		for _, l := range logits {
			se += math.Exp(l - mx)
		}
		total += mx + math.Log(se) - logits[labels[n]]
		if best == int(labels[n]) {
			correct++
		}
	}
	return total / float64(h.n), correct
}

// fdGrad is the central finite difference of the batch loss with respect to
// parameter name[idx].
func (r *refNet) fdGrad(x act, labels []int32, name string, idx int) float64 {
	const eps = 1e-5
	v := r.v[name]
	old := v[idx]
	v[idx] = old + eps
	lp, _ := r.loss(x, labels)
	v[idx] = old - eps
	lm, _ := r.loss(x, labels)
	v[idx] = old
	return (lp - lm) / (2 * eps)
}

func values(p models.Params) map[string][]float32 {
	m := map[string][]float32{}
	for n, t := range p {
		m[n] = tensors.MustCopyFlatData[float32](t)
	}
	return m
}

// TestTrainerStepMatchesHandRolledSGD checks two SGD-momentum steps of the
// compiled trainer against gradients from finite differences of an
// independent float64 implementation of the training-mode loss, and the
// BatchNorm running statistics against batch statistics computed by hand.
func TestTrainerStepMatchesHandRolledSGD(t *testing.T) {
	const (
		depth = 8
		N     = 4
		H     = 6
		mom   = 0.9
		wd    = 0.05
	)
	net, err := models.CIFARResNet(depth, 1, 1, H, H, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := fptrain.Init(net, 3)
	// Non-trivial BatchNorm parameters and running statistics.
	r := rand.New(rand.NewPCG(11, 12))
	for _, name := range net.ParamNames() {
		if strings.HasSuffix(name, ".weight") && len(p[name].Shape().Dimensions) == 1 ||
			strings.HasSuffix(name, ".running_var") || strings.HasSuffix(name, ".running_mean") ||
			(strings.HasSuffix(name, ".bias") && name != "fc.bias") {
			v := tensors.MustCopyFlatData[float32](p[name])
			for i := range v {
				switch {
				case strings.HasSuffix(name, "running_var"), strings.HasSuffix(name, ".weight"):
					v[i] = float32(0.5 + r.Float64())
				default:
					v[i] = float32(0.3 * r.NormFloat64())
				}
			}
			p[name] = tensors.FromFlatDataAndDimensions(v, p[name].Shape().Dimensions...)
		}
	}
	theta0 := values(p)
	batch := func() (*tensors.Tensor, act, []int32) {
		xv := make([]float32, N*H*H)
		xd := make([]float64, len(xv))
		for i := range xv {
			xv[i] = float32(r.NormFloat64())
			xd[i] = float64(xv[i])
		}
		y := make([]int32, N)
		for i := range y {
			y[i] = int32(r.IntN(3))
		}
		return tensors.FromFlatDataAndDimensions(xv, N, 1, H, H), act{N, 1, H, H, xd}, y
	}
	tr, err := fptrain.NewTrainer(goBackend(t), net, p, fptrain.Options{Momentum: mom, WeightDecay: wd})
	if err != nil {
		t.Fatal(err)
	}
	checked := []struct {
		name string
		idx  int
	}{
		{"conv1.weight", 4}, {"bn1.weight", 3}, {"bn1.bias", 5},
		{"layer1.0.conv2.weight", 100}, {"layer1.0.bn2.weight", 7},
		{"layer2.0.conv1.weight", 321}, {"layer2.0.downsample.0.weight", 7}, {"layer2.0.downsample.1.bias", 2},
		{"layer3.0.conv1.weight", 1000}, {"layer3.0.bn2.bias", 10},
		{"fc.weight", 13}, {"fc.bias", 2},
	}

	// Step 1: the momentum buffer is zero, so θ1 = θ0 − lr·(∇L(θ0) + wd·θ0).
	const lr1, lr2 = 0.5, 0.3
	x1, x1d, y1 := batch()
	ref0 := newRefNet(depth, p)
	wantLoss, wantCorrect := ref0.loss(x1d, y1)
	batchMean, batchVar := ref0.mean, ref0.uvar
	loss, correct, err := tr.Step(x1, tensors.FromFlatDataAndDimensions(y1, N), lr1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss-wantLoss) > 1e-5*math.Max(1, wantLoss) || correct != wantCorrect {
		t.Errorf("step 1: loss %.7g, correct %d; reference %.7g, %d", loss, correct, wantLoss, wantCorrect)
	}
	p1 := tr.Params()
	theta1 := values(p1)
	g1 := map[string]float64{}
	for _, c := range checked {
		fd := ref0.fdGrad(x1d, y1, c.name, c.idx)
		th0, th1 := float64(theta0[c.name][c.idx]), float64(theta1[c.name][c.idx])
		got := -(th1-th0)/lr1 - wd*th0
		g1[c.name] = fd
		if math.Abs(fd) < 1e-4 {
			t.Errorf("test setup: gradient of %s[%d] is only %g", c.name, c.idx, fd)
		}
		if math.Abs(got-fd) > 1e-3*math.Abs(fd)+5e-6 {
			t.Errorf("step 1, %s[%d]: Δθ/(−lr) − wd·θ = %.6g, finite differences %.6g", c.name, c.idx, got, fd)
		}
	}
	// Running statistics: r = 0.9·r + 0.1·batch (mean, unbiased variance), for every BatchNorm.
	nbn := 0
	for bn, mean := range batchMean {
		nbn++
		for _, kind := range []string{"running_mean", "running_var"} {
			batchStat := mean
			if kind == "running_var" {
				batchStat = batchVar[bn]
			}
			old, got := theta0[bn+"."+kind], theta1[bn+"."+kind]
			for c := range batchStat {
				want := 0.9*float64(old[c]) + 0.1*batchStat[c]
				if math.Abs(float64(got[c])-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Errorf("%s.%s[%d] = %.7g, want 0.9·%.7g + 0.1·%.7g = %.7g", bn, kind, c, got[c], old[c], batchStat[c], want)
					break
				}
			}
		}
	}
	if nbn != 9 {
		t.Errorf("reference saw %d BatchNorms, want 9", nbn)
	}
	// Hand check of the first BN's statistics from the stem convolution output.
	stem := conv(x1d, ref0.v["conv1.weight"], ref0.shape["conv1.weight"], 1)
	var m, s2 float64
	for n := 0; n < N; n++ {
		for _, v := range stem.v[(n*16+0)*H*H : (n*16+1)*H*H] {
			m += v
		}
	}
	m /= N * H * H
	for n := 0; n < N; n++ {
		for _, v := range stem.v[(n*16+0)*H*H : (n*16+1)*H*H] {
			s2 += (v - m) * (v - m)
		}
	}
	s2 /= N*H*H - 1
	if got := float64(theta1["bn1.running_var"][0]); math.Abs(got-(0.9*float64(theta0["bn1.running_var"][0])+0.1*s2)) > 1e-5 {
		t.Errorf("bn1.running_var[0] = %.7g, want %.7g", got, 0.9*float64(theta0["bn1.running_var"][0])+0.1*s2)
	}
	if got := float64(theta1["bn1.running_mean"][0]); math.Abs(got-(0.9*float64(theta0["bn1.running_mean"][0])+0.1*m)) > 1e-5 {
		t.Errorf("bn1.running_mean[0] = %.7g, want %.7g", got, 0.9*float64(theta0["bn1.running_mean"][0])+0.1*m)
	}

	// Step 2: b1 = ∇L(θ0) + wd·θ0, θ2 = θ1 − lr2·(μ·b1 + ∇L(θ1) + wd·θ1).
	x2, x2d, y2 := batch()
	ref1 := newRefNet(depth, p1)
	wantLoss, _ = ref1.loss(x2d, y2)
	loss, _, err = tr.Step(x2, tensors.FromFlatDataAndDimensions(y2, N), lr2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(loss-wantLoss) > 1e-5*math.Max(1, wantLoss) {
		t.Errorf("step 2: loss %.7g, reference %.7g", loss, wantLoss)
	}
	theta2 := values(tr.Params())
	for _, c := range checked {
		fd := ref1.fdGrad(x2d, y2, c.name, c.idx)
		th0, th1, th2 := float64(theta0[c.name][c.idx]), float64(theta1[c.name][c.idx]), float64(theta2[c.name][c.idx])
		b1 := g1[c.name] + wd*th0
		want := th1 - lr2*(mom*b1+fd+wd*th1)
		if math.Abs(th2-want) > lr2*(1e-3*(math.Abs(fd)+math.Abs(b1))+1e-5) {
			t.Errorf("step 2, %s[%d]: θ2 = %.7g, want %.7g", c.name, c.idx, th2, want)
		}
	}
}

func TestTrainerRejectsBadParams(t *testing.T) {
	net, err := models.CIFARResNet(8, 1, 1, 6, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	p := fptrain.Init(net, 1)
	delete(p, "layer1.0.bn1.running_var")
	if _, err := fptrain.NewTrainer(goBackend(t), net, p, fptrain.Options{}); err == nil || !strings.Contains(err.Error(), "layer1.0.bn1.running_var") {
		t.Errorf("NewTrainer with a missing tensor: %v", err)
	}
	if _, err := fptrain.NewEvaluator(goBackend(t), net, p); err == nil || !strings.Contains(err.Error(), "layer1.0.bn1.running_var") {
		t.Errorf("NewEvaluator with a missing tensor: %v", err)
	}
}
