package brecq

import (
	"encoding/json"
	"fmt"
	"math"
	"os"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/mixed"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/optim"
	"github.com/brecq-go/brecq/internal/atomicfile"
	"github.com/brecq-go/brecq/internal/progress"
)

// SensitivityFile is the on-disk cache of a sensitivity measurement: the
// problem (layers, blocks, S_b for every combination) and what it was
// measured on, so that a stale file is refused.
type SensitivityFile struct {
	Checkpoint string             `json:"checkpoint"`
	Model      string             `json:"model"`
	Data       string             `json:"data"`
	Calib      int                `json:"calib_images"`
	CalibSeed  uint64             `json:"calib_seed"`
	Options    SensitivityOptions `json:"options"`
	Seconds    float64            `json:"seconds"`
	Problem    *mixed.Problem     `json:"problem"`
}

// Save writes the file atomically (temporary file, then rename).
func (s *SensitivityFile) Save(path string) error { return atomicfile.WriteJSON(path, s) }

// LoadSensitivityFile reads a sensitivity cache. When want is not nil, the
// file must have been measured on the same checkpoint, model, data,
// calibration sample and options; the error names the first difference.
func LoadSensitivityFile(path string, want *SensitivityFile) (*SensitivityFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sf SensitivityFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, errorf("%s: not a sensitivity file: %w", path, err)
	}
	if sf.Problem == nil || len(sf.Problem.Blocks) == 0 {
		return nil, errorf("%s: no measured blocks in the sensitivity file", path)
	}
	if want == nil {
		return &sf, nil
	}
	diff := func(what string, a, b any) error {
		return errorf("%s was measured with %s %v, this run has %v: delete it or pass another file", path, what, a, b)
	}
	switch {
	case sf.Checkpoint != want.Checkpoint:
		return nil, diff("checkpoint", sf.Checkpoint, want.Checkpoint)
	case sf.Model != want.Model:
		return nil, diff("model", sf.Model, want.Model)
	case sf.Data != want.Data:
		return nil, diff("data", sf.Data, want.Data)
	case sf.Calib != want.Calib || sf.CalibSeed != want.CalibSeed:
		return nil, diff("calibration images/seed", fmt.Sprint(sf.Calib, "/", sf.CalibSeed), fmt.Sprint(want.Calib, "/", want.CalibSeed))
	case fmt.Sprint(sf.Options) != fmt.Sprint(want.Options):
		return nil, diff("options", sf.Options, want.Options)
	}
	return &sf, nil
}

// SensitivityOptions are the settings of MeasureSensitivity.
type SensitivityOptions struct {
	// Candidates are the weight bit-widths tried for every layer ({2, 4, 8}).
	Candidates []int `json:"candidates"`
	// Images is how many calibration images (the first ones) the measure
	// averages over (256).
	Images int `json:"images"`
}

// DefaultSensitivityOptions are {2, 4, 8} bits on 256 images.
func DefaultSensitivityOptions() SensitivityOptions {
	return SensitivityOptions{Candidates: []int{2, 4, 8}, Images: 256}
}

// MeasureSensitivity measures, for every residual block b and every
// combination c of candidate bit-widths of the layers inside it, the
// block's Fisher-weighted output error (BRECQ §3.4; docs/algorithm.md §8)
//
//	S_b(c) = ½ · mean_x Σ_i g_i(x)² · (ŷ_i(x; c) − y_i(x))²,
//
// where y is the FP block output on FP input x, ŷ the same block with its
// weights rounded to nearest at the bits of c (per-channel ranges by the
// L_p search at each bit-width), and g = ∂CE(FP logits, label)/∂y the
// per-image gradient of the task loss — the diagonal (empirical) Fisher, so
// S_b is the second-order estimate of the loss increase. Layers inside a
// block keep their dependency (every combination is run through the whole
// block); blocks are assumed to add up. labels are the calibration labels
// (in the calibration tensor's order). The stem and the classifier are not
// searched: they stay at FirstLast bits. The returned problem has no budget.
func (r *Quantizer) MeasureSensitivity(labels []int32, opt SensitivityOptions) (*mixed.Problem, error) {
	net := r.Q.Net
	n := min(opt.Images, r.calib.Shape().Dimensions[0])
	if n < 1 {
		return nil, errorf("sensitivity: need at least one image, have %d", n)
	}
	if len(labels) < n {
		return nil, errorf("sensitivity: %d labels for %d images", len(labels), n)
	}
	for _, b := range opt.Candidates {
		if err := ValidateBits(b); err != nil {
			return nil, errorf("sensitivity candidate: %w", err)
		}
	}
	if len(opt.Candidates) == 0 {
		return nil, errorf("sensitivity: no candidate bit-widths")
	}
	full, err := r.imageStream()
	if err != nil {
		return nil, err
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	stream := &stream{block: 0, x: &cache{}}
	first, err := full.x.batch(idx)
	full.x.close()
	if err != nil {
		return nil, err
	}
	defer func() { stream.x.close() }()
	if err := stream.x.appendTensor(first, 1); err != nil {
		return nil, err
	}
	lab := tensors.FromFlatDataAndDimensions(append([]int32(nil), labels[:n]...), n)

	prob := &mixed.Problem{Candidates: append([]int(nil), opt.Candidates...), ABits: r.opt.ABits}
	var bar *progress.Bar
	if r.opt.Progress != nil {
		total := 0
		for _, b := range net.Blocks {
			if b.Body() {
				total += intPow(len(opt.Candidates), len(b.AllLayers()))
			}
		}
		bar = progress.New(r.opt.Progress, "sensitivity       ", total)
	}
	evaluated := 0
	for bi, b := range net.Blocks {
		if !b.Body() {
			continue
		}
		if err := r.advance(stream, bi, FPMode()); err != nil {
			return nil, err
		}
		y, g2, hw, err := r.blockFisher(bi, stream.x, lab)
		if err != nil {
			return nil, err
		}
		blk := mixed.Block{Name: b.Name}
		layers := b.AllLayers()
		for _, l := range layers {
			d := r.Q.FP[l.Name+".weight"].Shape().Dimensions
			params := int64(1)
			for _, v := range d {
				params *= int64(v)
			}
			blk.Layers = append(blk.Layers, len(prob.Layers))
			prob.Layers = append(prob.Layers, mixed.Layer{Name: l.Name, Params: params, MACs: params * int64(hw[l.Name])})
		}
		sens, err := r.blockSensitivities(bi, layers, stream.x, y, g2, opt.Candidates, func() {
			evaluated++
			if bar != nil {
				bar.Update(evaluated, b.Name)
			}
		})
		if err != nil {
			return nil, err
		}
		blk.Sens = sens
		prob.Blocks = append(prob.Blocks, blk)
	}
	return prob, nil
}

func intPow(b, e int) int {
	r := 1
	for range e {
		r *= b
	}
	return r
}

// blockFisher returns, for the images of the FP stream x at block bi, the
// FP block output y, the squared per-image gradients g² of the summed
// cross-entropy w.r.t. it, and the output positions (H·W) of every layer
// of the block.
func (r *Quantizer) blockFisher(bi int, x *cache, labels *tensors.Tensor) (y, g2 *cache, hw map[string]int, err error) {
	net := r.Q.Net
	name := net.Blocks[bi].Name
	f := r.Q.feed(nil)
	hw = map[string]int{}
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		var out *graph.Node
		ops := &qOps{q: r.Q, n: f.nodes(in), mode: FPMode()}
		ops.onOut = func(l *models.Layer, v *graph.Node) *graph.Node {
			if d := v.Shape().Dimensions; len(d) == 4 {
				hw[l.Name] = d[2] * d[3]
			}
			return nil
		}
		ops.onAct = func(p string, v *graph.Node) *graph.Node {
			if p == name && out == nil {
				out = v
			}
			return nil
		}
		logits := net.ForwardRange(ops, in[len(f.keys)], bi, len(net.Blocks))
		lab := in[len(f.keys)+1]
		ce := graph.ReduceAllSum(optim.CrossEntropyPerImage(logits, lab))
		g := graph.Gradient(ce, out)[0]
		return []*graph.Node{out, graph.Square(g)}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	defer exec.Finalize()
	y, g2 = &cache{}, &cache{}
	labs := tensors.MustCopyFlatData[int32](labels)
	err = chunks(x.n, chunkSize(2*x.imageBytes(), maxChunk), func(idx []int) error {
		l := make([]int32, len(idx))
		for i, j := range idx {
			l[i] = labs[j]
		}
		xb, err := x.batch(idx)
		if err != nil {
			return err
		}
		res, err := exec.Call(f.args(xb, tensors.FromFlatDataAndDimensions(l, len(l)))...)
		if err != nil {
			return errorf("Fisher pass of block %s: %w", name, err)
		}
		if err := y.appendTensor(res[0], 1); err != nil {
			return err
		}
		return g2.appendTensor(res[1], 1)
	})
	return y, g2, hw, err
}

// blockSensitivities evaluates S_b(c) for every combination c (mixed radix
// over candidates, first layer most significant).
func (r *Quantizer) blockSensitivities(bi int, layers []*models.Layer, x, y, g2 *cache, cands []int, tick func()) ([]float64, error) {
	skip := map[key]bool{}
	for _, l := range layers {
		skip[key{weightT, l.Name}] = true
	}
	f := r.Q.feed(skip)
	k := len(layers)
	net := r.Q.Net
	// The block's weights are inputs: one set of rounded weights per combination.
	in := newStepInputs(f)
	wSlot, xSlot, ySlot, gSlot := in.add(k), in.one(), in.one(), in.one()
	exec, err := graph.NewExec(r.backend, func(inputs []*graph.Node) []*graph.Node {
		nodes := f.nodes(inputs)
		for i, w := range wSlot.nodes(inputs) {
			nodes[key{weightT, layers[i].Name}] = w
		}
		ops := &qOps{q: r.Q, n: nodes, mode: FPMode()}
		yhat := net.ForwardRange(ops, xSlot.node(inputs), bi, bi+1)
		return []*graph.Node{graph.ReduceAllSum(graph.Mul(gSlot.node(inputs), graph.Square(graph.Sub(yhat, ySlot.node(inputs)))))}
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	// Nearest-rounded weights of every layer at every candidate bit-width.
	qw := make([][]*tensors.Tensor, k)
	for i, l := range layers {
		w := r.Q.FP[l.Name+".weight"]
		dims := w.Shape().Dimensions
		flat := tensors.MustCopyFlatData[float32](w)
		qw[i] = make([]*tensors.Tensor, len(cands))
		for j, bits := range cands {
			qp, err := SearchWeightQParams(flat, dims, bits)
			if err != nil {
				return nil, errorf("layer %s at %d bits: %w", l.Name, bits, err)
			}
			qw[i][j] = tensors.FromFlatDataAndDimensions(FakeQuantHost(flat, qp), dims...)
		}
	}
	combos := intPow(len(cands), k)
	sens := make([]float64, combos)
	digits := make([]int, k)
	for c := range combos {
		for i, rem := k-1, c; i >= 0; i-- {
			digits[i] = rem % len(cands)
			rem /= len(cands)
		}
		total := 0.0
		err := chunks(x.n, chunkSize(x.imageBytes(), maxChunk), func(idx []int) error {
			args := in.args()
			ws := make([]any, k)
			for i := range layers {
				ws[i] = qw[i][digits[i]]
			}
			wSlot.set(args, ws...)
			for _, s := range []struct {
				sl slot
				c  *cache
			}{{xSlot, x}, {ySlot, y}, {gSlot, g2}} {
				t, err := s.c.batch(idx)
				if err != nil {
					return err
				}
				s.sl.set(args, t)
			}
			res, err := exec.Call(args...)
			if err != nil {
				return err
			}
			total += float64(tensors.ToScalar[float32](res[0]))
			return nil
		})
		if err != nil {
			return nil, errorf("sensitivity of block %s: %w", net.Blocks[bi].Name, err)
		}
		if math.IsNaN(total) || math.IsInf(total, 0) {
			return nil, errorf("sensitivity of block %s is %v", net.Blocks[bi].Name, total)
		}
		sens[c] = 0.5 * total / float64(x.n)
		tick()
	}
	return sens, nil
}
