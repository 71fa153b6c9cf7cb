package brecq

import (
	"maps"
	"math/rand/v2"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/models"
)

// Quantizer runs BRECQ / AdaRound / nearest rounding on one network.
type Quantizer struct {
	backend compute.Backend
	Q       *QNet
	opt     Options         // fixed at construction (Options returns a copy)
	calib   *tensors.Tensor // [N, C, H, W]
	pcg     *rand.PCG       // the source of rng, whose state a RunState keeps
	rng     *rand.Rand
	budget  *memBudget // Options.MaxCacheMB over every cache in memory
	Report  Report
	// OnUnit, when set, is called with a copy of the run's state after each
	// finished unit (and after QDrop's range initialisation); an error stops
	// the run. Saved, the state lets an interrupted run continue (Resume).
	OnUnit   func(*RunState) error
	progress runProgress
}

// NewQuantizer folds BatchNorm, sets the bit-widths and initialises every
// weight quantizer by the per-channel L_p range search.
func NewQuantizer(backend compute.Backend, net *models.Net, params models.Params, calib *tensors.Tensor, opt Options) (*Quantizer, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	opt.LayerBits = maps.Clone(opt.LayerBits)
	for name := range opt.LayerBits {
		if net.Layer(name) == nil {
			return nil, errorf("bits given for layer %q, which %s does not have", name, net.Name)
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
			return nil, errorf("layer %s: %w", l.Name, err)
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
	pcg := rand.NewPCG(opt.Seed, 0xb7ec)
	return &Quantizer{backend: backend, Q: q, opt: opt, calib: calib, pcg: pcg, rng: rand.New(pcg), budget: newMemBudget(opt.MaxCacheMB)}, nil
}

// Options returns the options the Quantizer was built with (a copy).
func (r *Quantizer) Options() Options {
	o := r.opt
	o.LayerBits = maps.Clone(o.LayerBits)
	return o
}

// Run quantizes: weight reconstruction unit by unit (AdaRound / BRECQ), then,
// when activations are quantized, activation ranges and LSQ step sizes unit
// by unit. With MethodNearest it only initialises the activation ranges.
// After Resume it skips what the state has finished.
func (r *Quantizer) Run() error {
	t0 := time.Now()
	defer func() { r.Report.Seconds = time.Since(t0).Seconds() }()
	o := r.opt
	if o.Method == MethodQDrop && !r.progress.QDropInit {
		// QDrop switches activation quantization on during the weight stage,
		// so every range is initialised first (weights at nearest rounding).
		if err := r.activationStage(RoundNearest, false, false); err != nil {
			return err
		}
		r.progress.QDropInit = true
		if err := r.checkpoint(); err != nil {
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
		fs := &stream{block: 0, x: qs.x.share()}
		defer func() { qs.x.close(); fs.x.close() }()
		for i, u := range units {
			if i < r.progress.WeightUnits {
				for _, l := range u.Layers {
					done[l.Name] = true
				}
				continue
			}
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
			r.progress.WeightUnits = i + 1
			if err := r.checkpoint(); err != nil {
				return err
			}
		}
	}
	if o.ABits < 32 && o.Method != MethodQDrop {
		return r.activationStage(r.EvalMode().DefaultWeights, o.Method != MethodNearest, true)
	}
	return nil
}
