package brecq

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/internal/progress"
)

// Method is how weights are rounded.
type Method string

// The methods of `brecq quantize`.
const (
	// MethodNearest rounds every weight to nearest; activation ranges by L_p search.
	MethodNearest Method = "nearest"
	// MethodAdaRound is AdaRound: layer-wise reconstruction with MSE (Nagel et al. 2020).
	MethodAdaRound Method = "adaround"
	// MethodBRECQ is block reconstruction (or the granularity chosen) with MSE or Fisher loss.
	MethodBRECQ Method = "brecq"
	// MethodQDrop is QDrop (Wei et al., ICLR 2022): BRECQ's reconstruction
	// with activation quantization on during the weight stage, each element
	// kept quantized with probability DropProb, the unit's input drawn
	// element-wise from its quantized and FP versions the same way, and the
	// unit's activation step sizes learned jointly with the rounding.
	MethodQDrop Method = "qdrop"
)

// Loss is the reconstruction objective.
type Loss string

// The reconstruction losses (SPEC §4).
const (
	LossMSE    Loss = "mse"
	LossFisher Loss = "fisher"
)

// Options are the settings of a quantization run. DefaultOptions gives the
// paper's; CPUOptions a reduced iteration budget.
type Options struct {
	Method      Method
	WBits       int // weight bits of every layer but the first and last
	ABits       int // activation bits; ≥ 32 leaves activations unquantized
	Granularity Granularity
	Loss        Loss
	WeightIters int     // AdaRound iterations per unit (paper: 20 000)
	ActIters    int     // LSQ iterations per unit (paper: 5 000)
	Batch       int     // minibatch of the optimisation (32)
	Lambda      float64 // rounding regulariser weight λ (0.01)
	WeightLR    float64 // Adam learning rate on V (1e-3)
	ActLR       float64 // Adam learning rate on activation step sizes (4e-4, cosine to 0)
	WarmUp      float64 // fraction of iterations without the rounding term (0.2)
	BetaStart   float64 // β annealed from BetaStart (20) ...
	BetaEnd     float64 // ... to BetaEnd (2)
	ActP        float64 // L_p norm of the activation-stage loss (2.4)
	FirstLast   int     // bits of the stem and classifier weights (8)
	// ClassifierInputBits quantizes the activation feeding the classifier
	// (the last block's output) at this many bits (8). 0 keeps it at ABits,
	// which is what the authors' code does in effect.
	ClassifierInputBits int
	// StemOutputBits quantizes the stem's output activation (the first
	// layer's, after its ReLU) at this many bits (8), as the authors' code
	// does; 0 keeps it at ABits.
	StemOutputBits int `json:"stem_output_bits"`
	// FisherMix α: Fisher weights are (1 − α) + α·g²/mean(g²) over the unit's
	// calibration set (1 = pure diagonal Fisher).
	FisherMix float64
	// FisherDamped uses the authors' weights (|g| + 1)² instead.
	FisherDamped bool
	// LayerBits overrides the weight bits of the named layers (mixed
	// precision); other layers use WBits or FirstLast.
	LayerBits map[string]int `json:"layer_bits,omitempty"`
	// MaxCacheMB bounds each cached tensor set (a unit's inputs, targets or
	// Fisher weights over the calibration images) in memory; a larger one is
	// kept in an unlinked temporary file in CacheDir (default: the system's
	// temporary folder). 0 = no bound.
	MaxCacheMB float64 `json:"max_cache_mb,omitempty"`
	CacheDir   string  `json:"cache_dir,omitempty"`
	// DropProb is QDrop's probability of keeping an activation element
	// quantized during the weight stage (0.5).
	DropProb float64 `json:"drop_prob,omitempty"`
	// QDropActLR is QDrop's Adam learning rate on the step sizes learned with
	// the rounding (4e-5).
	QDropActLR float64 `json:"qdrop_act_lr,omitempty"`
	Seed       uint64
	// Progress receives a progress bar per unit (nil: quiet).
	Progress io.Writer `json:"-"`
}

// DefaultOptions are the paper's settings (SPEC §3–4) for BRECQ at block
// granularity with MSE loss.
func DefaultOptions(wbits, abits int) Options {
	return Options{Method: MethodBRECQ, WBits: wbits, ABits: abits, Granularity: Block, Loss: LossMSE,
		WeightIters: 20000, ActIters: 5000, Batch: 32, Lambda: 0.01, WeightLR: 1e-3, ActLR: 4e-4,
		WarmUp: 0.2, BetaStart: 20, BetaEnd: 2, ActP: 2.4, FirstLast: 8, ClassifierInputBits: 8, StemOutputBits: 8, FisherMix: 1,
		DropProb: 0.5, QDropActLR: 4e-5, MaxCacheMB: 2048, Seed: 1}
}

// Validate reports impossible settings, naming the option.
func (o *Options) Validate() error {
	if err := ValidateBits(o.WBits); err != nil {
		return fmt.Errorf("weight bits: %w", err)
	}
	if o.ABits < 32 {
		if err := ValidateBits(o.ABits); err != nil {
			return fmt.Errorf("activation bits (32 = unquantized): %w", err)
		}
	}
	if o.FirstLast != 0 {
		if err := ValidateBits(o.FirstLast); err != nil {
			return fmt.Errorf("first/last layer bits: %w", err)
		}
	}
	if o.ClassifierInputBits != 0 {
		if err := ValidateBits(o.ClassifierInputBits); err != nil {
			return fmt.Errorf("classifier input bits: %w", err)
		}
	}
	if o.StemOutputBits != 0 {
		if err := ValidateBits(o.StemOutputBits); err != nil {
			return fmt.Errorf("stem output bits: %w", err)
		}
	}
	for name, b := range o.LayerBits {
		if err := ValidateBits(b); err != nil {
			return fmt.Errorf("bits of layer %s: %w", name, err)
		}
	}
	switch o.Method {
	case MethodNearest, MethodBRECQ:
	case MethodQDrop:
		if o.ABits >= 32 {
			return fmt.Errorf("method qdrop drops activation quantization: it needs activation bits < 32, not %d", o.ABits)
		}
		if !(o.DropProb > 0 && o.DropProb <= 1) {
			return fmt.Errorf("drop probability %g outside (0, 1]", o.DropProb)
		}
		if !(o.QDropActLR > 0) {
			return fmt.Errorf("qdrop step-size learning rate %g must be positive", o.QDropActLR)
		}
	case MethodAdaRound:
		o.Granularity, o.Loss = Layer, LossMSE
	default:
		return fmt.Errorf("method %q: want nearest, adaround, brecq or qdrop", o.Method)
	}
	if _, err := ParseGranularity(string(o.Granularity)); err != nil {
		return err
	}
	if o.Loss != LossMSE && o.Loss != LossFisher {
		return fmt.Errorf("loss %q: want mse or fisher", o.Loss)
	}
	if o.Method != MethodNearest && (o.WeightIters < 1 || (o.ABits < 32 && o.ActIters < 0)) {
		return fmt.Errorf("iterations must be positive (weights %d, activations %d)", o.WeightIters, o.ActIters)
	}
	if o.WeightLR <= 0 || o.ActLR <= 0 || math.IsNaN(o.WeightLR) || math.IsNaN(o.ActLR) {
		return fmt.Errorf("learning rates must be positive (weights %g, activations %g)", o.WeightLR, o.ActLR)
	}
	if o.Batch < 1 {
		return fmt.Errorf("batch %d < 1", o.Batch)
	}
	if o.MaxCacheMB < 0 || math.IsNaN(o.MaxCacheMB) {
		return fmt.Errorf("cache bound %g MB must be ≥ 0 (0 = none)", o.MaxCacheMB)
	}
	if o.FisherMix < 0 || o.FisherMix > 1 {
		return fmt.Errorf("fisher mix %g outside [0, 1]", o.FisherMix)
	}
	return nil
}

// UnitReport records one unit's optimisation.
type UnitReport struct {
	Unit       string  `json:"unit"`
	Stage      string  `json:"stage"` // "weights" or "activations"
	Iters      int     `json:"iters"`
	Seconds    float64 `json:"seconds"`
	CacheMB    float64 `json:"cache_mb"`
	RecLoss    float64 `json:"rec_loss_end"`
	RecLoss0   float64 `json:"rec_loss_start"`
	RoundLoss  float64 `json:"round_loss_end"`
	FisherMean float64 `json:"fisher_g2_mean,omitempty"`
	// CacheSeconds is the time spent caching the unit's inputs and targets;
	// FisherSeconds the time of the Fisher (gradient) pass, both included in Seconds.
	CacheSeconds float64 `json:"cache_seconds"`
	// CacheOnDisk is set when a cache passed Options.MaxCacheMB and was kept in a file.
	CacheOnDisk   bool    `json:"cache_on_disk,omitempty"`
	FisherSeconds float64 `json:"fisher_seconds,omitempty"`
	// IterMS is the median wall time of one optimisation iteration in
	// milliseconds, IterMSLo / IterMSHi its 10th and 90th percentiles.
	IterMS   float64 `json:"iter_ms"`
	IterMSLo float64 `json:"iter_ms_p10"`
	IterMSHi float64 `json:"iter_ms_p90"`
}

// iterTimes collects per-iteration wall times of one unit.
type iterTimes []float64

// record sets the median and the 10th / 90th percentiles of the times (ms) in rep.
func (t iterTimes) record(rep *UnitReport) {
	if len(t) == 0 {
		return
	}
	s := append([]float64(nil), t...)
	sort.Float64s(s)
	q := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] }
	rep.IterMS, rep.IterMSLo, rep.IterMSHi = q(0.5), q(0.1), q(0.9)
}

// Report is what a quantization run did.
type Report struct {
	Units   []UnitReport `json:"units"`
	Seconds float64      `json:"seconds"`
}

// Quantizer runs BRECQ / AdaRound / nearest rounding on one network.
type Quantizer struct {
	backend compute.Backend
	Q       *QNet
	Opt     Options
	calib   *tensors.Tensor // [N, C, H, W]
	rng     *rand.Rand
	Report  Report
}

// NewQuantizer folds BatchNorm, sets the bit-widths and initialises every
// weight quantizer by the per-channel L_p range search.
func NewQuantizer(backend compute.Backend, net *models.Net, params models.Params, calib *tensors.Tensor, opt Options) (*Quantizer, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	for name := range opt.LayerBits {
		if net.Layer(name) == nil {
			return nil, fmt.Errorf("bits given for layer %q, which %s does not have", name, net.Name)
		}
	}
	fp, err := FoldBN(net, params)
	if err != nil {
		return nil, err
	}
	q := &QNet{Net: net, FP: fp, WQ: map[string]QParams{}, V: map[string][]float32{}, AQ: map[string]QParams{}, ABits: map[string]int{}}
	layers := net.Layers()
	for i, l := range layers {
		bits := opt.WBits
		if opt.FirstLast != 0 && (i == 0 || i == len(layers)-1) {
			bits = opt.FirstLast
		}
		if b, ok := opt.LayerBits[l.Name]; ok {
			bits = b
		}
		w := tensors.MustCopyFlatData[float32](fp[l.Name+".weight"])
		wq, err := SearchWeightQParams(w, fp[l.Name+".weight"].Shape().Dimensions, bits)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Name, err)
		}
		q.WQ[l.Name] = wq
		if opt.Method != MethodNearest {
			q.V[l.Name] = InitAdaRoundV(w, wq)
		}
	}
	last := net.Blocks[net.LastBodyBlock()].Name
	stem := net.Blocks[0].Name
	for _, p := range ActPoints(net) {
		bits := opt.ABits
		if p == last && opt.ClassifierInputBits != 0 && opt.ABits < 32 {
			bits = opt.ClassifierInputBits
		}
		if p == stem && opt.StemOutputBits != 0 && opt.ABits < 32 {
			bits = opt.StemOutputBits
		}
		q.ABits[p] = bits
	}
	return &Quantizer{backend: backend, Q: q, Opt: opt, calib: calib, rng: rand.New(rand.NewPCG(opt.Seed, 0xb7ec))}, nil
}

// chunk is the number of calibration images per forward pass when caching.
const chunk = 128

// stream holds, for every calibration image, the input of block `block` of
// the network under some mode (channel-first cache). Streams advance block
// by block as units are finished, so each unit costs one pass over its own
// blocks instead of a pass over the whole prefix.
type stream struct {
	block int
	x     *cache
}

// imageStream is the input of block 0: the calibration images, channel-first.
func (r *Quantizer) imageStream() (*stream, error) {
	n := r.calib.Shape().Dimensions[0]
	c := r.newCache(n)
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		t := sliceImages(r.calib, start, end)
		d := t.Shape().Dimensions
		// [N, C, H, W] → [C, N, H, W] on the host.
		v := tensors.MustCopyFlatData[float32](t)
		S := d[2] * d[3]
		out := make([]float32, len(v))
		for i := 0; i < d[0]; i++ {
			for ch := 0; ch < d[1]; ch++ {
				copy(out[(ch*d[0]+i)*S:(ch*d[0]+i+1)*S], v[(i*d[1]+ch)*S:(i*d[1]+ch+1)*S])
			}
		}
		if err := c.appendTensor(tensors.FromFlatDataAndDimensions(out, d[1], d[0], d[2], d[3]), 1); err != nil {
			return nil, err
		}
	}
	return &stream{block: 0, x: c}, nil
}

// chunks calls fn with consecutive index ranges of at most chunk images.
func chunks(n int, fn func(idx []int) error) error {
	for start := 0; start < n; start += chunk {
		idx := make([]int, min(start+chunk, n)-start)
		for i := range idx {
			idx[i] = start + i
		}
		if err := fn(idx); err != nil {
			return err
		}
	}
	return nil
}

// advance runs blocks [s.block, to) under mode on the stream's images.
func (r *Quantizer) advance(s *stream, to int, mode Mode) error {
	if to < s.block {
		return fmt.Errorf("brecq: stream at block %d cannot go back to %d", s.block, to)
	}
	if to == s.block {
		return nil
	}
	f := r.Q.feed(nil)
	from := s.block
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
		return []*graph.Node{r.Q.Net.ForwardRange(ops, in[len(f.names)], from, to)}
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	next := r.newCache(s.x.n)
	err = chunks(s.x.n, func(idx []int) error {
		res, err := exec.Exec(f.args(s.x.batch(idx))...)
		if err != nil {
			return fmt.Errorf("caching the input of block %d: %w", to, err)
		}
		return next.appendTensor(res[0], 1)
	})
	if err != nil {
		return err
	}
	// The old cache may be shared with another stream; an on-disk one is
	// closed (and its unlinked file freed) by os.File's finalizer.
	s.block, s.x = to, next
	return nil
}

// capture runs the network under mode from the stream src (the input of
// block src.block ≤ u.first) and returns the unit's input and its output
// (the value before any output quantizer). With fisher, instead of the
// output, the squared gradient of KL(FP ‖ mode) w.r.t. the unit output; the
// FP logits then come from fpSrc, the FP stream at the same block.
func (r *Quantizer) capture(mode Mode, u *Unit, fisher bool, src, fpSrc *stream) (in, out *cache, err error) {
	if src.block > u.first || (fisher && (fpSrc == nil || fpSrc.block != src.block)) {
		return nil, nil, fmt.Errorf("brecq: unit %s: caching stream at the wrong block", u.Name)
	}
	f := r.Q.feed(nil)
	net := r.Q.Net
	from := src.block
	exec, err := graph.NewExec(r.backend, func(inputs []*graph.Node) []*graph.Node {
		nodes := f.nodes(inputs)
		x := inputs[len(f.names)]
		var inNode, outNode *graph.Node
		ops := &qOps{q: r.Q, n: nodes, mode: mode}
		ops.onIn = func(l *models.Layer, x *graph.Node) {
			if l.Name == u.InLayer && inNode == nil {
				inNode = x
			}
		}
		ops.onOut = func(l *models.Layer, y *graph.Node) *graph.Node {
			if u.outKind == outLayer && l.Name == u.outName {
				outNode = y
			}
			return nil
		}
		ops.onAct = func(p string, x *graph.Node) *graph.Node {
			if u.outKind == outAct && p == u.outName {
				outNode = x
			}
			return nil
		}
		end := u.last + 1
		if fisher {
			end = len(net.Blocks)
		}
		y := net.ForwardRange(ops, x, from, end)
		if u.outKind == outLogits {
			outNode = y
		}
		if !fisher {
			return []*graph.Node{inNode, outNode}
		}
		fpLogits := net.ForwardRange(&qOps{q: r.Q, n: nodes, mode: FPMode()}, inputs[len(f.names)+1], from, len(net.Blocks))
		pfp := graph.Softmax(graph.StopGradient(fpLogits), -1)
		kl := graph.ReduceAllMean(graph.ReduceSum(graph.Mul(pfp, graph.Sub(graph.Log(graph.MaxScalar(pfp, 1e-30)), graph.LogSoftmax(y, -1))), -1))
		g := graph.Gradient(kl, outNode)[0]
		return []*graph.Node{inNode, graph.Square(g)}
	})
	if err != nil {
		return nil, nil, err
	}
	defer exec.Finalize()
	in, out = r.newCache(src.x.n), r.newCache(src.x.n)
	ob := 1
	if u.outKind == outLogits {
		ob = 0
	}
	err = chunks(src.x.n, func(idx []int) error {
		args := f.args(src.x.batch(idx))
		if fisher {
			args = append(args, fpSrc.x.batch(idx))
		}
		res, err := exec.Exec(args...)
		if err != nil {
			return fmt.Errorf("caching unit %s: %w", u.Name, err)
		}
		if err := in.appendTensor(res[0], 1); err != nil {
			return err
		}
		return out.appendTensor(res[1], ob)
	})
	if err != nil {
		return nil, nil, err
	}
	return in, out, nil
}

// sliceImages returns images [start, end) of an [N, ...] tensor.
func sliceImages(images *tensors.Tensor, start, end int) *tensors.Tensor {
	dims := images.Shape().Dimensions
	per := 1
	for _, d := range dims[1:] {
		per *= d
	}
	all := tensors.MustCopyFlatData[float32](images)
	nd := append([]int{end - start}, dims[1:]...)
	return tensors.FromFlatDataAndDimensions(append([]float32(nil), all[start*per:end*per]...), nd...)
}

// recLoss is the reconstruction loss of SPEC §4: Σ over channels of
// w·|ŷ − y|^p, averaged over the batch and positions. Channel-first
// outputs ([C,N,…]) sum over axis 0; logits ([N,K]) over axis 1. weights may be nil.
func recLoss(pred, target, weights *graph.Node, p float64, chAxis int) *graph.Node {
	d := graph.Sub(pred, target)
	var e *graph.Node
	if p == 2 {
		e = graph.Square(d)
	} else {
		// (|d| + ε)^p as exp(p·log(|d| + ε)): the Go backend's Pow (and its
		// gradient) costs several times Exp and Log.
		e = graph.Exp(graph.MulScalar(graph.Log(graph.AddScalar(graph.Abs(d), 1e-12)), p))
	}
	if weights != nil {
		e = graph.Mul(e, weights)
	}
	return graph.ReduceAllMean(graph.ReduceSum(e, chAxis))
}

// unitLayersMode is the mode for optimising unit u's weights: units before it
// hard-rounded, u's layers with the given rounding, the stem at nearest.
func (r *Quantizer) weightMode(done map[string]bool, u *Unit, cur RoundingMode) Mode {
	m := Mode{DefaultWeights: RoundOff, Weights: map[string]RoundingMode{}}
	stem := r.Q.Net.Blocks[0].Layers[0].Name
	m.Weights[stem] = RoundNearest
	for l := range done {
		m.Weights[l] = RoundHard
	}
	if u != nil {
		for _, l := range u.Layers {
			m.Weights[l.Name] = cur
		}
	}
	return m
}

// Run quantizes: weight reconstruction unit by unit (AdaRound / BRECQ), then,
// when activations are quantized, activation ranges and LSQ step sizes unit
// by unit. With MethodNearest it only initialises the activation ranges.
func (r *Quantizer) Run() error {
	t0 := time.Now()
	defer func() { r.Report.Seconds = time.Since(t0).Seconds() }()
	o := r.Opt
	if o.Method == MethodQDrop {
		// QDrop switches activation quantization on during the weight stage,
		// so every range is initialised first (weights at nearest rounding).
		if err := r.activationStage(RoundNearest, false); err != nil {
			return err
		}
	}
	if o.Method != MethodNearest {
		units, err := Units(r.Q.Net, o.Granularity)
		if err != nil {
			return err
		}
		done := map[string]bool{}
		qs, err := r.imageStream()
		if err != nil {
			return err
		}
		fs := &stream{block: 0, x: qs.x}
		for _, u := range units {
			if err := r.advance(qs, u.first, r.prefixMode(done)); err != nil {
				return err
			}
			if err := r.advance(fs, u.first, FPMode()); err != nil {
				return err
			}
			if err := r.reconstructWeights(u, done, qs, fs); err != nil {
				return err
			}
			for _, l := range u.Layers {
				done[l.Name] = true
			}
		}
	}
	if o.ABits < 32 && o.Method != MethodQDrop {
		return r.activationStage(r.EvalMode().DefaultWeights, o.Method != MethodNearest)
	}
	return nil
}

// prefixMode is the mode of the network before a unit whose predecessors'
// layers are done: those hard-rounded, the stem at nearest, and under QDrop
// every activation point quantized.
func (r *Quantizer) prefixMode(done map[string]bool) Mode {
	return r.unitMode(done, nil, RoundOff)
}

// allActs switches on every activation point with a quantizer.
func (r *Quantizer) allActs() map[string]bool {
	on := map[string]bool{}
	for p := range r.Q.AQ {
		on[p] = true
	}
	return on
}

// EvalMode is the mode of the finished quantized network.
func (r *Quantizer) EvalMode() Mode {
	m := Mode{DefaultWeights: RoundHard, Acts: map[string]bool{}}
	if r.Opt.Method == MethodNearest {
		m.DefaultWeights = RoundNearest
	}
	stem := r.Q.Net.Blocks[0].Layers[0].Name
	m.Weights = map[string]RoundingMode{stem: RoundNearest}
	if r.Opt.ABits < 32 {
		for _, p := range ActPoints(r.Q.Net) {
			m.Acts[p] = true
		}
	}
	return m
}

func (r *Quantizer) reconstructWeights(u *Unit, done map[string]bool, qs, fs *stream) error {
	o := r.Opt
	qdrop := o.Method == MethodQDrop
	t0 := time.Now()
	// Input from the partly quantized network, target from the FP network.
	xin, _, err := r.capture(r.prefixMode(done), u, false, qs, nil)
	if err != nil {
		return err
	}
	xfp, yfp, err := r.capture(FPMode(), u, false, fs, nil)
	if err != nil {
		return err
	}
	if !qdrop {
		xfp = nil
	}
	var wts *cache
	rep := UnitReport{Unit: u.Name, Stage: "weights", Iters: o.WeightIters, CacheSeconds: time.Since(t0).Seconds()}
	if o.Loss == LossFisher {
		tf := time.Now()
		_, g2, err := r.capture(r.unitMode(done, u, RoundNearest), u, true, qs, fs)
		rep.FisherSeconds = time.Since(tf).Seconds()
		if err != nil {
			return err
		}
		mean := g2.mean()
		rep.FisherMean = mean
		if math.IsNaN(mean) {
			return fmt.Errorf("unit %s: Fisher weights are NaN", u.Name)
		}
		err = g2.apply(func(v float32) float32 {
			switch {
			case o.FisherDamped:
				return float32(math.Pow(math.Sqrt(float64(v))+1, 2))
			case mean > 0:
				return float32((1 - o.FisherMix) + o.FisherMix*float64(v)/mean)
			default:
				return 1
			}
		})
		if err != nil {
			return err
		}
		wts = g2
	}
	for _, c := range []*cache{xin, yfp, wts, xfp} {
		if c != nil {
			rep.CacheMB += float64(c.bytes()) / 1e6
			rep.CacheOnDisk = rep.CacheOnDisk || c.onDisk()
			if c != qs.x && c != fs.x {
				defer c.close()
			}
		}
	}

	// The step graph's trainables: V of the unit's layers and, under QDrop,
	// the step sizes of the unit's quantized activation points; each with its
	// Adam moments.
	var names, acts []string
	skip := map[string]bool{}
	for _, l := range u.Layers {
		names = append(names, "v:"+l.Name)
	}
	if qdrop {
		for _, p := range u.ActPoints {
			if _, ok := r.Q.AQ[p]; ok && r.Q.ABits[p] < 32 {
				acts = append(acts, "as:"+p)
			}
		}
	}
	for _, n := range append(append([]string{}, names...), acts...) {
		skip[n] = true
	}
	f := r.Q.feed(skip)
	k, ka := len(names), len(acts)
	mode := r.unitMode(done, u, RoundSoft)
	if qdrop {
		mode.DropProb = o.DropProb
	}
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		nodes := f.nodes(in)
		rest := in[len(f.names):]
		vs, ms, ss := rest[:k], rest[k:2*k], rest[2*k:3*k]
		rest = rest[3*k:]
		as, am, av := rest[:ka], rest[ka:2*ka], rest[2*ka:3*ka]
		rest = rest[3*ka:]
		for i, n := range names {
			nodes[n] = vs[i]
		}
		for i, n := range acts {
			nodes[n] = as[i]
		}
		x, y := rest[0], rest[1]
		rest = rest[2:]
		var w *graph.Node
		if wts != nil {
			w, rest = rest[0], rest[1:]
		}
		ops := &qOps{q: r.Q, n: nodes, mode: mode}
		if qdrop {
			// The unit's input: quantized where the draw keeps it, FP elsewhere.
			ops.rng = rest[1]
			x = ops.drop(x, rest[0])
			rest = rest[2:]
		}
		lr, step, beta, lam := rest[0], rest[1], rest[2], rest[3]
		yhat := u.forward(ops, x)
		rec := recLoss(yhat, y, w, 2, u.channelAxis())
		var reg *graph.Node
		for _, v := range vs {
			t := RoundingRegularizer(v, beta)
			if reg == nil {
				reg = t
			} else {
				reg = graph.Add(reg, t)
			}
		}
		total := graph.Add(rec, graph.Mul(lam, reg))
		grads := graph.Gradient(total, append(append([]*graph.Node{}, vs...), as...)...)
		nv, nm, ns := AdamUpdateAll(vs, grads[:k], ms, ss, lr, step, DefaultAdamConfig())
		out := append(append(append([]*graph.Node{}, nv...), nm...), ns...)
		if ka > 0 {
			na, nam, nav := AdamUpdateAll(as, grads[k:], am, av, rest[4], step, DefaultAdamConfig())
			for i := range na {
				na[i] = graph.MaxScalar(na[i], MinScale)
			}
			out = append(append(append(out, na...), nam...), nav...)
		}
		out = append(out, rec, reg)
		if qdrop {
			out = append(out, ops.rng)
		}
		return out
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	ns := 3*k + 3*ka
	state := make([]*tensors.Tensor, ns)
	for i, l := range u.Layers {
		shape := r.Q.FP[l.Name+".weight"].Shape()
		state[i] = tensors.FromFlatDataAndDimensions(append([]float32(nil), r.Q.V[l.Name]...), shape.Dimensions...)
		state[k+i] = tensors.FromShape(shape)
		state[2*k+i] = tensors.FromShape(shape)
	}
	for i, n := range acts {
		state[3*k+i] = tensors.FromScalar(r.Q.AQ[n[3:]].Scale[0])
		state[3*k+ka+i] = tensors.FromScalar(float32(0))
		state[3*k+2*ka+i] = tensors.FromScalar(float32(0))
	}
	var rng *tensors.Tensor
	if qdrop {
		if rng, err = graph.RNGStateFromSeed(int64(r.rng.Uint64() >> 1)); err != nil {
			return err
		}
	}
	sched := BetaSchedule{Iters: o.WeightIters, Warmup: o.WarmUp, Start: o.BetaStart, End: o.BetaEnd}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, fmt.Sprintf("W %-16s", u.Name), o.WeightIters)
	}
	idx := make([]int, o.Batch)
	times := make(iterTimes, 0, o.WeightIters)
	for it := 0; it < o.WeightIters; it++ {
		ti := time.Now()
		for j := range idx {
			idx[j] = r.rng.IntN(xin.n)
		}
		lam := 0.0
		if sched.RegActive(it) {
			lam = o.Lambda
		}
		args := make([]any, 0, len(f.vals)+ns+9)
		args = append(args, f.args()...)
		for _, s := range state {
			args = append(args, s)
		}
		args = append(args, xin.batch(idx), yfp.batch(idx))
		if wts != nil {
			args = append(args, wts.batch(idx))
		}
		if qdrop {
			args = append(args, xfp.batch(idx), rng)
		}
		args = append(args, float32(o.WeightLR), float32(it+1), float32(sched.Beta(it)), float32(lam))
		if ka > 0 {
			args = append(args, float32(o.QDropActLR))
		}
		res, err := exec.Exec(args...)
		if err != nil {
			return fmt.Errorf("unit %s iteration %d: %w", u.Name, it, err)
		}
		copy(state, res[:ns])
		rec := float64(tensors.ToScalar[float32](res[ns]))
		reg := float64(tensors.ToScalar[float32](res[ns+1]))
		if qdrop {
			rng = res[ns+2]
		}
		if math.IsNaN(rec) || math.IsInf(rec, 0) {
			return fmt.Errorf("unit %s iteration %d: reconstruction loss is %v", u.Name, it, rec)
		}
		if it == 0 {
			rep.RecLoss0 = rec
		}
		rep.RecLoss, rep.RoundLoss = rec, reg*lam
		times = append(times, float64(time.Since(ti).Microseconds())/1e3)
		if bar != nil {
			bar.Update(it+1, fmt.Sprintf("rec %.4g round %.4g β %.1f", rec, reg*lam, sched.Beta(it)))
		}
	}
	for i, l := range u.Layers {
		r.Q.V[l.Name] = tensors.MustCopyFlatData[float32](state[i])
	}
	for i, n := range acts {
		aq := r.Q.AQ[n[3:]]
		aq.Scale = []float32{tensors.ToScalar[float32](state[3*k+i])}
		r.Q.AQ[n[3:]] = aq
	}
	times.record(&rep)
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}

// unitMode is weightMode plus, under QDrop, every activation point quantized.
func (r *Quantizer) unitMode(done map[string]bool, u *Unit, cur RoundingMode) Mode {
	m := r.weightMode(done, u, cur)
	if r.Opt.Method == MethodQDrop {
		m.Acts = r.allActs()
	}
	return m
}

// actMode: every weight rounded by w (the stem at nearest), the given
// activation points quantized.
func (r *Quantizer) actMode(on map[string]bool, w RoundingMode) Mode {
	m := r.EvalMode()
	m.DefaultWeights = w
	m.Acts = on
	return m
}

// activationStage initialises activation ranges point by point (L_p search
// with everything upstream quantized, weights rounded by w) and, when learn
// is set, learns the step sizes with LSQ unit by unit.
func (r *Quantizer) activationStage(w RoundingMode, learn bool) error {
	o := r.Opt
	net := r.Q.Net
	on := map[string]bool{}
	// The stem output: range from the calibration images.
	stem := net.Blocks[0].Name
	if err := r.initActPoints(&Unit{Name: stem, ActPoints: []string{stem}, InLayer: stem, first: 0, last: 0,
		forward: func(ops models.Ops, x *graph.Node) *graph.Node { return net.ForwardRange(ops, x, 0, 1) }}, nil, on, w, true); err != nil {
		return err
	}
	units, err := ActUnits(net, o.Granularity)
	if err != nil {
		return err
	}
	qs, err := r.imageStream()
	if err != nil {
		return err
	}
	fs := &stream{block: 0, x: qs.x}
	for _, u := range units {
		if len(u.ActPoints) == 0 {
			continue
		}
		t0 := time.Now()
		if err := r.advance(qs, u.first, r.actMode(on, w)); err != nil {
			return err
		}
		if err := r.advance(fs, u.first, FPMode()); err != nil {
			return err
		}
		xin, _, err := r.capture(r.actMode(on, w), u, false, qs, nil)
		if err != nil {
			return err
		}
		if err := r.initActPoints(u, xin, on, w, false); err != nil {
			return err
		}
		if !learn || o.ActIters == 0 {
			continue
		}
		_, yfp, err := r.capture(FPMode(), u, false, fs, nil)
		if err != nil {
			return err
		}
		if err := r.learnStepSizes(u, xin, yfp, on, w, t0); err != nil {
			return err
		}
	}
	return nil
}

// actCalibImages is how many cached inputs the activation range search uses.
const actCalibImages = 256

// initActPoints sets the range of each activation point of u in order, from
// the values reaching it with the points before it already quantized.
func (r *Quantizer) initActPoints(u *Unit, xin *cache, on map[string]bool, w RoundingMode, fromImages bool) error {
	for _, p := range u.ActPoints {
		bits := r.Q.ABits[p]
		if bits >= 32 {
			continue
		}
		f := r.Q.feed(nil)
		mode := r.actMode(on, w)
		exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
			var got *graph.Node
			ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
			ops.onAct = func(point string, x *graph.Node) *graph.Node {
				if point == p && got == nil {
					got = x
				}
				return nil
			}
			x := in[len(f.names)]
			if fromImages {
				x = models.ToCNHW(x)
			}
			u.forward(ops, x)
			return []*graph.Node{got}
		})
		if err != nil {
			return err
		}
		var x *tensors.Tensor
		if fromImages {
			x = sliceImages(r.calib, 0, min(actCalibImages, r.calib.Shape().Dimensions[0]))
		} else {
			idx := make([]int, min(actCalibImages, xin.n))
			for i := range idx {
				idx[i] = i
			}
			x = xin.batch(idx)
		}
		res, err := exec.Exec(f.args(x)...)
		exec.Finalize()
		if err != nil {
			return fmt.Errorf("activation range of %s: %w", p, err)
		}
		aq, err := SearchActivationQParams(tensors.MustCopyFlatData[float32](res[0]), bits)
		if err != nil {
			return fmt.Errorf("activation range of %s: %w", p, err)
		}
		r.Q.AQ[p] = aq
		on[p] = true
	}
	return nil
}

// learnStepSizes is the LSQ stage of one unit: Adam (cosine learning rate
// to 0) on the step sizes of the unit's activation points, loss ‖ŷ − y‖_p^p
// with p = ActP against the FP output, weights final.
func (r *Quantizer) learnStepSizes(u *Unit, xin, yfp *cache, on map[string]bool, w RoundingMode, t0 time.Time) error {
	o := r.Opt
	cacheSec := time.Since(t0).Seconds()
	var names []string
	skip := map[string]bool{}
	for _, p := range u.ActPoints {
		if r.Q.ABits[p] < 32 {
			names = append(names, "as:"+p)
			skip["as:"+p] = true
		}
	}
	k := len(names)
	f := r.Q.feed(skip)
	mode := r.actMode(on, w)
	exec, err := graph.NewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		nodes := f.nodes(in)
		rest := in[len(f.names):]
		ss, ms, vs := rest[:k], rest[k:2*k], rest[2*k:3*k]
		for i, n := range names {
			nodes[n] = ss[i]
		}
		x, y, lr, step := rest[3*k], rest[3*k+1], rest[3*k+2], rest[3*k+3]
		yhat := u.forward(&qOps{q: r.Q, n: nodes, mode: mode}, x)
		loss := recLoss(yhat, y, nil, o.ActP, u.channelAxis())
		grads := graph.Gradient(loss, ss...)
		ns, nm, nv := AdamUpdateAll(ss, grads, ms, vs, lr, step, DefaultAdamConfig())
		for i := range ns {
			ns[i] = graph.MaxScalar(ns[i], MinScale)
		}
		out := append(append(append([]*graph.Node{}, ns...), nm...), nv...)
		return append(out, loss)
	})
	if err != nil {
		return err
	}
	defer exec.Finalize()
	state := make([]*tensors.Tensor, 3*k)
	for i, n := range names {
		state[i] = tensors.FromScalar(r.Q.AQ[n[3:]].Scale[0])
		state[k+i] = tensors.FromScalar(float32(0))
		state[2*k+i] = tensors.FromScalar(float32(0))
	}
	rep := UnitReport{Unit: u.Name, Stage: "activations", Iters: o.ActIters, CacheMB: float64(xin.bytes()+yfp.bytes()) / 1e6,
		CacheSeconds: cacheSec}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.New(o.Progress, fmt.Sprintf("A %-16s", u.Name), o.ActIters)
	}
	idx := make([]int, o.Batch)
	times := make(iterTimes, 0, o.ActIters)
	for it := 0; it < o.ActIters; it++ {
		ti := time.Now()
		for j := range idx {
			idx[j] = r.rng.IntN(xin.n)
		}
		args := f.args()
		for _, s := range state {
			args = append(args, s)
		}
		args = append(args, xin.batch(idx), yfp.batch(idx), float32(CosineLR(o.ActLR, it, o.ActIters)), float32(it+1))
		res, err := exec.Exec(args...)
		if err != nil {
			return fmt.Errorf("unit %s activation iteration %d: %w", u.Name, it, err)
		}
		copy(state, res[:3*k])
		loss := float64(tensors.ToScalar[float32](res[3*k]))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("unit %s activation iteration %d: loss is %v", u.Name, it, loss)
		}
		if it == 0 {
			rep.RecLoss0 = loss
		}
		rep.RecLoss = loss
		times = append(times, float64(time.Since(ti).Microseconds())/1e3)
		if bar != nil {
			bar.Update(it+1, fmt.Sprintf("lp %.4g", loss))
		}
	}
	for i, n := range names {
		aq := r.Q.AQ[n[3:]]
		aq.Scale = []float32{tensors.ToScalar[float32](state[i])}
		r.Q.AQ[n[3:]] = aq
	}
	times.record(&rep)
	rep.Seconds = time.Since(t0).Seconds()
	r.Report.Units = append(r.Report.Units, rep)
	return nil
}

// Logits evaluates the network under mode on images [N,C,H,W] in batches.
func (r *Quantizer) Evaluator(mode Mode) (func(*tensors.Tensor) (*tensors.Tensor, error), func()) {
	f := r.Q.feed(nil)
	exec := graph.MustNewExec(r.backend, func(in []*graph.Node) []*graph.Node {
		ops := &qOps{q: r.Q, n: f.nodes(in), mode: mode}
		return []*graph.Node{r.Q.Net.Forward(ops, in[len(f.names)])}
	})
	return func(x *tensors.Tensor) (*tensors.Tensor, error) {
		res, err := exec.Exec(f.args(x)...)
		if err != nil {
			return nil, err
		}
		return res[0], nil
	}, exec.Finalize
}
