package brecq

import (
	"io"
	"math"
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

// The reconstruction losses: MSE on the unit output, or the Fisher-weighted
// output error of BRECQ (Li et al., 2021) §3.3.
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
	// MaxCacheMB bounds the sum of the cached tensor sets kept in memory at
	// once (the calibration streams and a unit's inputs, targets or Fisher
	// weights over the calibration images): Σ sizes ≤ MaxCacheMB·10⁶ bytes. A
	// set that would pass the bound is kept in an unlinked temporary file in
	// CacheDir (default: the system's temporary folder) instead; the results
	// are the same. 0 = no bound.
	MaxCacheMB float64 `json:"max_cache_mb,omitempty"`
	CacheDir   string  `json:"cache_dir,omitempty"`
	// DropProb is QDrop's probability of keeping an activation element
	// quantized during the weight stage (0.5).
	DropProb float64 `json:"drop_prob,omitempty"`
	// QDropActLR is QDrop's Adam learning rate on the step sizes learned with
	// the rounding (4e-5).
	QDropActLR float64 `json:"qdrop_act_lr,omitempty"`
	// ActInput is where the activation stage's LSQ reads each unit's input:
	// ActInputQuantized (""; the unit's input in the quantized network,
	// upstream weights rounded and activations quantized) or ActInputFP (the
	// FP network's, as the BRECQ authors' code does).
	ActInput string `json:"act_input,omitempty"`
	// ActInit is how activation ranges are initialised: ActInitUnit ("";
	// unit by unit, each from the unit's cached quantized inputs after the
	// upstream units' LSQ) or ActInitNetwork (every point once, in network
	// order, before any LSQ, from calibration images through the whole
	// network with every upstream point at its initial range — the
	// authors' code).
	ActInit string `json:"act_init,omitempty"`
	// ActInitImages is how many calibration images (or cached inputs) the
	// activation range search uses (0 = 256; the authors' code: 64).
	ActInitImages int `json:"act_init_images,omitempty"`
	// Minibatch is how each optimisation iteration draws its Batch images
	// among a unit's N cached ones: MinibatchIID ("": Batch independent
	// uniform draws, so an image can appear twice — with N = 1 024 and
	// Batch = 32, 1 − Π_{k<32}(1 − k/1 024) ≈ 38 % of minibatches hold a
	// repeat) or MinibatchDistinct (a uniformly random Batch-subset, as the
	// BRECQ authors' torch.randperm(N)[:Batch]; Batch > N draws all N).
	// Each iteration's draw is independent of the others either way.
	Minibatch string `json:"minibatch,omitempty"`
	// UnitLosses records, for every unit and stage, the loss over the
	// unit's whole calibration cache before and after the stage
	// (UnitReport.LossBefore / LossAfter): two extra passes of the unit over
	// its cache; the optimisation is unchanged.
	UnitLosses bool `json:"unit_losses,omitempty"`
	Seed       uint64
	// Progress receives a progress bar per unit (nil: quiet).
	Progress io.Writer `json:"-"`
	// OnIter, when set, is called once per optimisation iteration of every
	// unit and stage, after the iteration's Adam step, with the iteration's
	// minibatch losses (IterStats): the trace behind convergence curves. It
	// changes nothing in the run; nil costs nothing.
	OnIter func(IterStats) `json:"-"`
}

// The Minibatch values.
const (
	MinibatchIID      = ""
	MinibatchDistinct = "distinct"
)

// The ActInput and ActInit values.
const (
	ActInputQuantized = ""
	ActInputFP        = "fp"
	ActInitUnit       = ""
	ActInitNetwork    = "network"
)

// AuthorsActivationStage sets the activation stage as the BRECQ authors'
// code runs it: ranges initialised once over the network from 64 images
// (ActInitNetwork), LSQ on FP inputs (ActInputFP), and the classifier input
// at the activation bits (ClassifierInputBits 0).
func (o Options) AuthorsActivationStage() Options {
	o.ActInput, o.ActInit, o.ActInitImages, o.ClassifierInputBits = ActInputFP, ActInitNetwork, 64, 0
	return o
}

// DefaultOptions are the paper's settings (BRECQ, Li et al., 2021; AdaRound, Nagel et al., 2020) for BRECQ at block
// granularity with MSE loss.
func DefaultOptions(wbits, abits int) Options {
	return Options{Method: MethodBRECQ, WBits: wbits, ABits: abits, Granularity: Block, Loss: LossMSE,
		WeightIters: 20000, ActIters: 5000, Batch: 32, Lambda: 0.01, WeightLR: 1e-3, ActLR: 4e-4,
		WarmUp: 0.2, BetaStart: 20, BetaEnd: 2, ActP: 2.4, FirstLast: 8, ClassifierInputBits: 8, StemOutputBits: 8, FisherMix: 1,
		DropProb: 0.5, QDropActLR: 4e-5, MaxCacheMB: 2048, Seed: 1}
}

// AdaRoundOptions are DefaultOptions for AdaRound (Nagel et al., 2020):
// MethodAdaRound, layer granularity, MSE loss.
func AdaRoundOptions(wbits, abits int) Options {
	o := DefaultOptions(wbits, abits)
	o.Method, o.Granularity, o.Loss = MethodAdaRound, Layer, LossMSE
	return o
}

// Validate reports impossible or inconsistent settings, naming the option
// and the allowed values; it changes nothing. MethodAdaRound needs layer
// granularity and MSE loss (AdaRoundOptions).
func (o Options) Validate() error {
	if err := ValidateBits(o.WBits); err != nil {
		return errorf("weight bits: %w", err)
	}
	if o.ABits < 32 {
		if err := ValidateBits(o.ABits); err != nil {
			return errorf("activation bits (32 = unquantized): %w", err)
		}
	}
	if o.FirstLast != 0 {
		if err := ValidateBits(o.FirstLast); err != nil {
			return errorf("first/last layer bits: %w", err)
		}
	}
	if o.ClassifierInputBits != 0 {
		if err := ValidateBits(o.ClassifierInputBits); err != nil {
			return errorf("classifier input bits: %w", err)
		}
	}
	if o.StemOutputBits != 0 {
		if err := ValidateBits(o.StemOutputBits); err != nil {
			return errorf("stem output bits: %w", err)
		}
	}
	for name, b := range o.LayerBits {
		if err := ValidateBits(b); err != nil {
			return errorf("bits of layer %s: %w", name, err)
		}
	}
	switch o.ActInput {
	case ActInputQuantized, ActInputFP:
	default:
		return errorf("activation-stage input %q: want %q (quantized network) or %q", o.ActInput, "quantized", ActInputFP)
	}
	switch o.ActInit {
	case ActInitUnit, ActInitNetwork:
	default:
		return errorf("activation range initialisation %q: want %q or %q", o.ActInit, "unit", ActInitNetwork)
	}
	switch o.Minibatch {
	case MinibatchIID, MinibatchDistinct:
	default:
		return errorf("minibatch sampling %q: want %q (independent draws) or %q", o.Minibatch, "iid", MinibatchDistinct)
	}
	if o.ActInitImages < 0 {
		return errorf("activation range images %d: want ≥ 1 (0 = 256)", o.ActInitImages)
	}
	switch o.Method {
	case MethodNearest, MethodBRECQ:
	case MethodQDrop:
		if o.ABits >= 32 {
			return errorf("method qdrop drops activation quantization: it needs activation bits < 32, not %d", o.ABits)
		}
		if !(o.DropProb > 0 && o.DropProb <= 1) {
			return errorf("drop probability %g outside (0, 1]", o.DropProb)
		}
		if !(o.QDropActLR > 0) {
			return errorf("qdrop step-size learning rate %g must be positive", o.QDropActLR)
		}
	case MethodAdaRound:
		if o.Granularity != Layer || o.Loss != LossMSE {
			return errorf("method adaround is layer-wise with MSE loss, not granularity %q with loss %q (use method brecq for other settings)", o.Granularity, o.Loss)
		}
	default:
		return errorf("method %q: want nearest, adaround, brecq or qdrop", o.Method)
	}
	if _, err := ParseGranularity(string(o.Granularity)); err != nil {
		return err
	}
	if o.Loss != LossMSE && o.Loss != LossFisher {
		return errorf("loss %q: want mse or fisher", o.Loss)
	}
	if o.Method != MethodNearest && (o.WeightIters < 1 || (o.ABits < 32 && o.ActIters < 0)) {
		return errorf("iterations must be positive (weights %d, activations %d)", o.WeightIters, o.ActIters)
	}
	if o.WeightLR <= 0 || o.ActLR <= 0 || math.IsNaN(o.WeightLR) || math.IsNaN(o.ActLR) {
		return errorf("learning rates must be positive (weights %g, activations %g)", o.WeightLR, o.ActLR)
	}
	if o.Batch < 1 {
		return errorf("batch %d < 1", o.Batch)
	}
	if o.MaxCacheMB < 0 || math.IsNaN(o.MaxCacheMB) {
		return errorf("cache bound %g MB must be ≥ 0 (0 = none)", o.MaxCacheMB)
	}
	if o.FisherMix < 0 || o.FisherMix > 1 {
		return errorf("fisher mix %g outside [0, 1]", o.FisherMix)
	}
	return nil
}
