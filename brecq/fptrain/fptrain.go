// Package fptrain trains and evaluates the full-precision networks of
// brecq/models: SGD with momentum and weight decay, cosine learning rate,
// BatchNorm with batch statistics and PyTorch's running-average update.
package fptrain

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/optim"
)

// BNMomentum is PyTorch's BatchNorm momentum: running = (1−m)·running + m·batch.
const BNMomentum = 0.1

// IsRunningStat tells BatchNorm running statistics (not trained by gradient) from trainable parameters.
func IsRunningStat(name string) bool {
	return strings.HasSuffix(name, ".running_mean") || strings.HasSuffix(name, ".running_var")
}

// Split returns the sorted names of trainable parameters and of running statistics.
func Split(net *models.Net) (trainable, stats []string) {
	for _, n := range net.ParamNames() {
		if IsRunningStat(n) {
			stats = append(stats, n)
		} else {
			trainable = append(trainable, n)
		}
	}
	return
}

// Init returns freshly initialised parameters: convolutions Kaiming-normal
// with fan-out and ReLU gain (std = √(2/(out·k²))), as torchvision's ResNet;
// the classifier U(−1/√in, 1/√in) for weight and bias, as nn.Linear; BatchNorm
// γ = 1, β = 0, running mean 0, running variance 1.
func Init(net *models.Net, seed uint64) models.Params {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := models.Params{}
	shapes := net.ParamShapes()
	for _, l := range net.Layers() {
		w := make([]float32, size(shapes[l.Name+".weight"]))
		switch l.Kind {
		case models.Conv:
			std := math.Sqrt(2 / float64(l.Out*l.Kernel*l.Kernel/l.Groups))
			for i := range w {
				w[i] = float32(r.NormFloat64() * std)
			}
		case models.Linear:
			bound := 1 / math.Sqrt(float64(l.In))
			for i := range w {
				w[i] = float32((2*r.Float64() - 1) * bound)
			}
		}
		p[l.Name+".weight"] = tensors.FromFlatDataAndDimensions(w, shapes[l.Name+".weight"]...)
		if l.Bias {
			b := make([]float32, l.Out)
			bound := 1 / math.Sqrt(float64(l.In))
			for i := range b {
				b[i] = float32((2*r.Float64() - 1) * bound)
			}
			p[l.Name+".bias"] = tensors.FromFlatDataAndDimensions(b, l.Out)
		}
		if l.BN != "" {
			p[l.BN+".weight"] = fill(l.Out, 1)
			p[l.BN+".bias"] = fill(l.Out, 0)
			p[l.BN+".running_mean"] = fill(l.Out, 0)
			p[l.BN+".running_var"] = fill(l.Out, 1)
		}
	}
	return p
}

func size(d []int) int {
	n := 1
	for _, x := range d {
		n *= x
	}
	return n
}

func fill(n int, v float32) *tensors.Tensor {
	d := make([]float32, n)
	for i := range d {
		d[i] = v
	}
	return tensors.FromFlatDataAndDimensions(d, n)
}

// trainOps computes layers with BatchNorm in training mode (batch statistics)
// and records each BatchNorm's batch mean and unbiased variance.
type trainOps struct {
	p     models.GraphParams
	stats map[string][2]*graph.Node
}

func (o *trainOps) Layer(l *models.Layer, x *graph.Node) *graph.Node {
	var bias *graph.Node
	if l.Bias {
		bias = o.p[l.Name+".bias"]
	}
	y := models.LinearOp(l, o.p[l.Name+".weight"], bias, x)
	if l.BN == "" {
		return y
	}
	// y is [C,N,H,W]: statistics over axes 1..3. Only the per-channel terms
	// are computed on small tensors; the full-size work is y², two reductions
	// and one multiply-add: out = y·a + c with a = γ/√(σ²+ε), c = β − μ·a.
	d := y.Shape().Dimensions
	count := float64(d[1] * d[2] * d[3])
	mean := graph.ReduceAndKeep(y, graph.ReduceMean, 1, 2, 3)
	meanSq := graph.ReduceAndKeep(graph.Square(y), graph.ReduceMean, 1, 2, 3)
	variance := graph.MaxScalar(graph.Sub(meanSq, graph.Square(mean)), 0)
	g := graph.Reshape(o.p[l.BN+".weight"], l.Out, 1, 1, 1)
	b := graph.Reshape(o.p[l.BN+".bias"], l.Out, 1, 1, 1)
	a := graph.Div(g, graph.Sqrt(graph.AddScalar(variance, models.BNEps)))
	c := graph.Sub(b, graph.Mul(mean, a))
	o.stats[l.BN] = [2]*graph.Node{
		graph.Reshape(mean, l.Out),
		graph.MulScalar(graph.Reshape(variance, l.Out), count/math.Max(count-1, 1)),
	}
	return graph.Add(graph.Mul(y, a), c)
}

func (o *trainOps) Act(_ string, x *graph.Node) *graph.Node { return x }

// Correct counts the rows whose arg-max logit equals the label.
func Correct(logits, labels *graph.Node) *graph.Node {
	pred := graph.ArgMax(logits, -1, dtypes.Int32)
	return graph.ReduceAllSum(graph.ConvertDType(graph.Equal(pred, graph.ConvertDType(labels, dtypes.Int32)), dtypes.Int32))
}

// Options are the SGD settings.
type Options struct {
	Momentum    float64 // 0.9
	WeightDecay float64 // 5e-4, coupled (added to the gradient) as in torch.optim.SGD
}

// Trainer holds the compiled SGD step and the state between steps.
type Trainer struct {
	net              *models.Net
	trainable, stats []string
	params           []*tensors.Tensor
	momenta          []*tensors.Tensor
	running          []*tensors.Tensor
	exec             *graph.Exec
}

// NewTrainer compiles one SGD step for net starting from params:
//
//	g = ∇L + wd·θ;  b = μ·b + g;  θ = θ − lr·b
//
// with L the mean cross-entropy of the batch, BatchNorm on batch statistics,
// and running statistics updated as r = (1−0.1)·r + 0.1·batch (variance unbiased).
func NewTrainer(backend compute.Backend, net *models.Net, params models.Params, opt Options) (*Trainer, error) {
	if err := net.Check(params); err != nil {
		return nil, err
	}
	t := &Trainer{net: net}
	t.trainable, t.stats = Split(net)
	for _, n := range t.trainable {
		t.params = append(t.params, params[n])
		t.momenta = append(t.momenta, tensors.FromShape(params[n].Shape()))
	}
	for _, n := range t.stats {
		t.running = append(t.running, params[n])
	}
	nt, ns := len(t.trainable), len(t.stats)
	var err error
	t.exec, err = graph.NewExec(backend, func(in []*graph.Node) []*graph.Node {
		p := models.GraphParams{}
		for i, n := range t.trainable {
			p[n] = in[i]
		}
		mom := in[nt : 2*nt]
		run := in[2*nt : 2*nt+ns]
		x, labels, lr := in[2*nt+ns], in[2*nt+ns+1], in[2*nt+ns+2]
		ops := &trainOps{p: p, stats: map[string][2]*graph.Node{}}
		logits := net.Forward(ops, x)
		loss := optim.CrossEntropy(logits, labels)
		grads := graph.Gradient(loss, in[:nt]...)
		var out []*graph.Node
		var newMom []*graph.Node
		for i := range t.trainable {
			g := graph.Add(grads[i], graph.MulScalar(in[i], opt.WeightDecay))
			b := graph.Add(graph.MulScalar(mom[i], opt.Momentum), g)
			newMom = append(newMom, b)
			out = append(out, graph.Sub(in[i], graph.Mul(lr, b)))
		}
		out = append(out, newMom...)
		for i, n := range t.stats {
			bn, kind := n[:strings.LastIndex(n, ".")], n[strings.LastIndex(n, ".")+1:]
			k := 0
			if kind == "running_var" {
				k = 1
			}
			batch := ops.stats[bn][k]
			out = append(out, graph.Add(graph.MulScalar(run[i], 1-BNMomentum), graph.MulScalar(batch, BNMomentum)))
		}
		out = append(out, loss, Correct(logits, labels))
		return out
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Step runs one SGD step on x [N,C,H,W] with int32 labels [N] at learning
// rate lr, returning the batch loss and the number of correct predictions.
func (t *Trainer) Step(x, labels *tensors.Tensor, lr float64) (loss float64, correct int, err error) {
	nt, ns := len(t.trainable), len(t.stats)
	args := make([]any, 0, 2*nt+ns+3)
	for _, p := range t.params {
		args = append(args, p)
	}
	for _, m := range t.momenta {
		args = append(args, m)
	}
	for _, r := range t.running {
		args = append(args, r)
	}
	args = append(args, x, labels, float32(lr))
	out, err := t.exec.Call(args...)
	if err != nil {
		return 0, 0, err
	}
	t.params, t.momenta, t.running = out[:nt], out[nt:2*nt], out[2*nt:2*nt+ns]
	loss = float64(tensors.ToScalar[float32](out[2*nt+ns]))
	correct = int(tensors.ToScalar[int32](out[2*nt+ns+1]))
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return loss, correct, fmt.Errorf("fptrain: loss is %v: training diverged (lower the learning rate)", loss)
	}
	return loss, correct, nil
}

// Params returns the current parameters (trainable and running statistics).
func (t *Trainer) Params() models.Params {
	p := models.Params{}
	for i, n := range t.trainable {
		p[n] = t.params[i]
	}
	for i, n := range t.stats {
		p[n] = t.running[i]
	}
	return p
}

// Evaluator runs the FP network in inference mode.
type Evaluator struct {
	names []string
	args  []any
	exec  *graph.Exec
}

// NewEvaluator compiles the inference graph x [N,C,H,W] → logits [N,classes].
func NewEvaluator(backend compute.Backend, net *models.Net, params models.Params) (*Evaluator, error) {
	if err := net.Check(params); err != nil {
		return nil, err
	}
	e := &Evaluator{names: net.ParamNames()}
	sort.Strings(e.names)
	for _, n := range e.names {
		e.args = append(e.args, params[n])
	}
	var err error
	e.exec, err = graph.NewExec(backend, func(in []*graph.Node) []*graph.Node {
		p := models.GraphParams{}
		for i, n := range e.names {
			p[n] = in[i]
		}
		return []*graph.Node{net.Forward(models.EvalOps{P: p}, in[len(e.names)])}
	})
	return e, err
}

// Logits returns the logits for x [N,C,H,W].
func (e *Evaluator) Logits(x *tensors.Tensor) (*tensors.Tensor, error) {
	out, err := e.exec.Call(append(append([]any{}, e.args...), x)...)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Accuracy returns the top-1 accuracy (in %) of logitsFn over n examples
// served in batches by batchFn (x [b,C,H,W], labels [b]).
func Accuracy(n, batch int, batchFn func(idx []int) (*tensors.Tensor, []int32, error), logitsFn func(*tensors.Tensor) (*tensors.Tensor, error)) (float64, error) {
	acc, _, err := AccuracyAndLoss(n, batch, batchFn, logitsFn)
	return acc, err
}

// AccuracyAndLoss is Accuracy that also returns the mean cross-entropy
// −log softmax(logits)[label] over the n examples.
func AccuracyAndLoss(n, batch int, batchFn func(idx []int) (*tensors.Tensor, []int32, error), logitsFn func(*tensors.Tensor) (*tensors.Tensor, error)) (acc, loss float64, err error) {
	correct := 0
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		idx := make([]int, end-start)
		for i := range idx {
			idx[i] = start + i
		}
		x, y, err := batchFn(idx)
		if err != nil {
			return 0, 0, err
		}
		logits, err := logitsFn(x)
		if err != nil {
			return 0, 0, err
		}
		correct += CountCorrect(logits, y)
		loss += SumCrossEntropy(logits, y)
	}
	return 100 * float64(correct) / float64(n), loss / float64(n), nil
}

// SumCrossEntropy is Σ_i −log softmax(logits_i)[label_i] on the host in
// float64: the evaluation metric of a run record (the graph's training loss
// is optim.CrossEntropy, which it matches to float32 precision).
func SumCrossEntropy(logits *tensors.Tensor, labels []int32) float64 {
	d := logits.Shape().Dimensions
	v := tensors.MustCopyFlatData[float32](logits)
	total := 0.0
	for i := 0; i < d[0]; i++ {
		row := v[i*d[1] : (i+1)*d[1]]
		m := math.Inf(-1)
		for _, x := range row {
			m = math.Max(m, float64(x))
		}
		z := 0.0
		for _, x := range row {
			z += math.Exp(float64(x) - m)
		}
		total += m + math.Log(z) - float64(row[labels[i]])
	}
	return total
}

// CountCorrect counts rows of logits [b, classes] whose arg-max equals the label.
func CountCorrect(logits *tensors.Tensor, labels []int32) int {
	d := logits.Shape().Dimensions
	v := tensors.MustCopyFlatData[float32](logits)
	c := 0
	for i := 0; i < d[0]; i++ {
		row := v[i*d[1] : (i+1)*d[1]]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if int32(best) == labels[i] {
			c++
		}
	}
	return c
}
