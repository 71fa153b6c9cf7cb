package nbkit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/datasets"
)

// Data is a set of flattened images X ([N, D] row-major float32) with labels Y.
type Data struct {
	X    []float32
	Y    []int32
	N, D int
}

// LoadMNIST returns the first n images of an MNIST split ("train" or "test"; n ≤ 0 or
// beyond the split means all of it), normalised with the data set's mean and std and
// flattened to 784 values.
func LoadMNIST(split string, n int) Data {
	ds, err := datasets.Load(datasets.MNIST)
	if err != nil {
		panic(err)
	}
	s := ds.Train
	if split == "test" {
		s = ds.Test
	} else if split != "train" {
		panic(fmt.Sprintf("nbkit: unknown split %q", split))
	}
	if n <= 0 || n > s.N {
		n = s.N
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	x, y, err := s.Batch(idx, ds.Norm)
	if err != nil {
		panic(err)
	}
	return Data{X: x, Y: y, N: n, D: s.H * s.W}
}

// Subset returns the rows idx of d.
func (d Data) Subset(idx []int) Data {
	out := Data{X: make([]float32, 0, len(idx)*d.D), Y: make([]int32, 0, len(idx)), N: len(idx), D: d.D}
	for _, i := range idx {
		out.X = append(out.X, d.X[i*d.D:(i+1)*d.D]...)
		out.Y = append(out.Y, d.Y[i])
	}
	return out
}

// Sample returns n rows of d drawn without replacement with the given seed.
func (d Data) Sample(n int, seed uint64) Data {
	r := rand.New(rand.NewPCG(seed, 0xda7a))
	return d.Subset(r.Perm(d.N)[:min(n, d.N)])
}

// Tensors returns X as a [N, D] tensor and Y as a [N] int32 tensor.
func (d Data) Tensors() (*tensors.Tensor, *tensors.Tensor) {
	return tensors.FromFlatDataAndDimensions(slices.Clone(d.X), d.N, d.D),
		tensors.FromFlatDataAndDimensions(slices.Clone(d.Y), d.N)
}

// MLP is a fully connected ReLU network: W[l] is [Sizes[l+1], Sizes[l]] row-major
// (PyTorch layout, output unit first), B[l] its bias; ReLU after every layer but the last.
type MLP struct {
	Sizes []int
	W, B  [][]float32
}

// NewMLP returns an MLP initialised like torch.nn.Linear (weights and biases uniform in
// ±1/√fan_in) from a seeded generator.
func NewMLP(seed uint64, sizes ...int) *MLP {
	r := rand.New(rand.NewPCG(seed, 0x31a9))
	m := &MLP{Sizes: slices.Clone(sizes)}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		bound := 1 / math.Sqrt(float64(in))
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32((2*r.Float64() - 1) * bound)
		}
		b := make([]float32, out)
		for i := range b {
			b[i] = float32((2*r.Float64() - 1) * bound)
		}
		m.W = append(m.W, w)
		m.B = append(m.B, b)
	}
	return m
}

// Layers returns the number of weight layers.
func (m *MLP) Layers() int { return len(m.W) }

// Clone returns a deep copy.
func (m *MLP) Clone() *MLP {
	c := &MLP{Sizes: slices.Clone(m.Sizes)}
	for l := range m.W {
		c.W = append(c.W, slices.Clone(m.W[l]))
		c.B = append(c.B, slices.Clone(m.B[l]))
	}
	return c
}

// WithWeight returns a copy of m whose layer-l weight is w.
func (m *MLP) WithWeight(l int, w []float32) *MLP {
	if len(w) != len(m.W[l]) {
		panic(fmt.Sprintf("nbkit: layer %d has %d weights, got %d", l, len(m.W[l]), len(w)))
	}
	c := m.Clone()
	c.W[l] = slices.Clone(w)
	return c
}

// Tensors returns the parameters in the order W0, B0, W1, B1, …
func (m *MLP) Tensors() []*tensors.Tensor {
	var ts []*tensors.Tensor
	for l := range m.W {
		ts = append(ts,
			tensors.FromFlatDataAndDimensions(slices.Clone(m.W[l]), m.Sizes[l+1], m.Sizes[l]),
			tensors.FromFlatDataAndDimensions(slices.Clone(m.B[l]), m.Sizes[l+1]))
	}
	return ts
}

// Dense returns x·wᵀ + b for x [N, in], w [out, in], b [out].
func Dense(x, w, b *graph.Node) *graph.Node {
	return graph.Add(graph.Einsum("ni,oi->no", x, w), graph.ExpandAxes(b, 0))
}

// ReLU returns max(x, 0).
func ReLU(x *graph.Node) *graph.Node { return graph.Max(x, graph.ScalarZero(x.Graph(), x.DType())) }

// Logits runs the MLP given its parameters as nodes (W0, B0, W1, B1, …) on x [N, D].
func Logits(params []*graph.Node, x *graph.Node) *graph.Node {
	h := x
	n := len(params) / 2
	for l := range n {
		h = Dense(h, params[2*l], params[2*l+1])
		if l < n-1 {
			h = ReLU(h)
		}
	}
	return h
}

// CrossEntropy returns the mean softmax cross-entropy of logits z [N, K] and labels y [N].
func CrossEntropy(z, y *graph.Node) *graph.Node {
	oh := graph.OneHot(y, z.Shape().Dimensions[1], z.DType())
	return graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(graph.LogSoftmax(z, -1), oh), -1)))
}

// TrainConfig configures TrainMLP: Adam (PyTorch defaults) with a cosine learning rate
// from LR to 0 over Steps, minibatches of Batch rows drawn by epoch permutations
// (Batch ≤ 0 or ≥ N: full batch). OnStep, if set, is called after every step with the
// step number (1-based), the batch loss and the current network.
type TrainConfig struct {
	Steps, Batch int
	LR           float64
	Seed         uint64
	OnStep       func(step int, loss float64, m *MLP)
}

// TrainMLP trains m on d in place (plain GoMLX graph, brecq.AdamUpdateAll for the update)
// and returns the per-step batch losses.
func TrainMLP(backend compute.Backend, m *MLP, d Data, cfg TrainConfig) []float64 {
	P := 2 * m.Layers()
	step := graph.MustNewExec(backend, func(in []*graph.Node) []*graph.Node {
		p, ms, vs := in[:P], in[P:2*P], in[2*P:3*P]
		x, y, lr, t := in[3*P], in[3*P+1], in[3*P+2], in[3*P+3]
		loss := CrossEntropy(Logits(p, x), y)
		np, nm, nv := brecq.AdamUpdateAll(p, graph.Gradient(loss, p...), ms, vs, lr, t, brecq.DefaultAdamConfig())
		return append(append(append(np, nm...), nv...), loss)
	})
	defer step.Finalize()
	params := m.Tensors()
	var ms, vs []*tensors.Tensor
	for _, p := range params {
		ms = append(ms, tensors.FromShape(p.Shape()))
		vs = append(vs, tensors.FromShape(p.Shape()))
	}
	full := cfg.Batch <= 0 || cfg.Batch >= d.N
	var fx, fy *tensors.Tensor
	if full {
		fx, fy = d.Tensors()
	}
	r := rand.New(rand.NewPCG(cfg.Seed, 0x7a11))
	var perm []int
	losses := make([]float64, 0, cfg.Steps)
	for it := 1; it <= cfg.Steps; it++ {
		x, y := fx, fy
		if !full {
			if len(perm) < cfg.Batch {
				perm = r.Perm(d.N)
			}
			x, y = d.Subset(perm[:cfg.Batch]).Tensors()
			perm = perm[cfg.Batch:]
		}
		lr := float32(cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(it-1)/float64(cfg.Steps))))
		args := make([]any, 0, 3*P+4)
		for _, group := range [][]*tensors.Tensor{params, ms, vs} {
			for _, t := range group {
				args = append(args, t)
			}
		}
		args = append(args, x, y, lr, float32(it))
		res := step.MustCall(args...)
		params, ms, vs = res[:P], res[P:2*P], res[2*P:3*P]
		loss := float64(tensors.ToScalar[float32](res[3*P]))
		losses = append(losses, loss)
		if cfg.OnStep != nil || it == cfg.Steps {
			for l := range m.W {
				m.W[l] = tensors.MustCopyFlatData[float32](params[2*l])
				m.B[l] = tensors.MustCopyFlatData[float32](params[2*l+1])
			}
		}
		if cfg.OnStep != nil {
			cfg.OnStep(it, loss, m)
		}
	}
	return losses
}

// Evaluate returns the mean cross-entropy and the accuracy of m on d.
func Evaluate(backend compute.Backend, m *MLP, d Data) (loss, acc float64) {
	x, y := d.Tensors()
	args := []any{}
	for _, t := range m.Tensors() {
		args = append(args, t)
	}
	args = append(args, x, y)
	res := graph.MustExecOnceN(backend, func(in []*graph.Node) []*graph.Node {
		n := len(in) - 2
		z := Logits(in[:n], in[n])
		correct := graph.Equal(graph.ArgMax(z, -1, in[n+1].DType()), in[n+1])
		return []*graph.Node{CrossEntropy(z, in[n+1]), graph.ReduceAllMean(graph.ConvertDType(correct, z.DType()))}
	}, args...)
	return float64(tensors.ToScalar[float32](res[0])), float64(tensors.ToScalar[float32](res[1]))
}

// Activations returns the post-ReLU output of hidden layer l (0-based; l = Layers()-1
// gives the logits) on d, as [N, Sizes[l+1]] row-major.
func Activations(backend compute.Backend, m *MLP, d Data, l int) []float32 {
	x, _ := d.Tensors()
	args := []any{}
	for _, t := range m.Tensors()[:2*(l+1)] {
		args = append(args, t)
	}
	args = append(args, x)
	res := graph.MustExecOnce(backend, func(in []*graph.Node) *graph.Node {
		n := len(in) - 1
		h := in[n]
		for k := range n / 2 {
			h = Dense(h, in[2*k], in[2*k+1])
			if k < len(m.W)-1 {
				h = ReLU(h)
			}
		}
		return h
	}, args...)
	return tensors.MustCopyFlatData[float32](res)
}
