package main

import (
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/runrecord"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// QuantRecord is the JSON record of a quantization run.
type QuantRecord = runrecord.Quant

// quantFlags are the flags quantize and mixed share: the checkpoint, the
// data, the calibration sample and every option of the reconstruction.
type quantFlags struct {
	*netFlags
	method, gran, loss, out, jsonOut, cacheDir               *string
	state, resume, onnxOut, actInput, actInit, layerBits     *string
	minibatch                                                *string
	actInitImages                                            *int
	authors, unitLosses                                      *bool
	wbits, abits, iters, actIters, calib                     *int
	batch, firstLast, clsIn, stemOut                         *int
	seed                                                     *uint64
	lambda, wlr, alr, fisherMix, dropProb, qdropLR, maxCache *float64
	memLimit                                                 *float64
	fisherDamped, compare, quiet                             *bool
}

func addQuantFlags(fs *flag.FlagSet) *quantFlags {
	return &quantFlags{
		netFlags:      addNetFlags(fs, "FP safetensors checkpoint (PyTorch state_dict layout)"),
		method:        fs.String("method", "brecq", "nearest | adaround (layer-wise, MSE) | brecq | qdrop (BRECQ + activation dropping, needs --abits < 32)"),
		wbits:         fs.Int("wbits", 4, "weight bits (2..8); the stem and classifier use --first-last-bits"),
		abits:         fs.Int("abits", 32, "activation bits (2..8, or 32 = unquantized)"),
		gran:          fs.String("granularity", "block", "reconstruction unit: layer | block | stage | net"),
		loss:          fs.String("loss", "mse", "reconstruction loss: mse | fisher"),
		iters:         fs.Int("iters", 20000, "weight-reconstruction iterations per unit (paper: 20000)"),
		actIters:      fs.Int("act-iters", 5000, "activation step-size iterations per unit (paper: 5000)"),
		calib:         fs.Int("calib", 1024, "calibration images from the training split"),
		batch:         fs.Int("batch", 32, "minibatch size of the optimisation"),
		seed:          fs.Uint64("seed", 1, "seed for the calibration sample and minibatches"),
		lambda:        fs.Float64("lambda", 0.01, "rounding regulariser weight λ"),
		wlr:           fs.Float64("lr", 1e-3, "Adam learning rate on AdaRound's V (paper: 1e-3; a reduced --iters budget may want more)"),
		alr:           fs.Float64("act-lr", 4e-4, "Adam learning rate on activation step sizes (cosine to 0)"),
		firstLast:     fs.Int("first-last-bits", 8, "bits of the first (stem) and last (classifier) weights"),
		layerBits:     fs.String("layer-bits", "", "per-layer weight bits overriding --wbits and --first-last-bits: comma-separated SEL=BITS, SEL a layer name, depthwise (convolutions with one input channel per group) or pointwise (1×1 convolutions with groups = 1); a layer name wins over a class"),
		clsIn:         fs.Int("classifier-input-bits", 8, "bits of the activation feeding the classifier (0 = same as --abits, the authors' code in effect)"),
		stemOut:       fs.Int("stem-output-bits", 8, "bits of the stem's output activation (8 as in the authors' code; 0 = same as --abits)"),
		fisherMix:     fs.Float64("fisher-mix", 1, "Fisher weights (1−α) + α·g²/mean(g²); α in [0,1]"),
		fisherDamped:  fs.Bool("fisher-damped", false, "use the authors' Fisher weights (|g|+1)² instead"),
		dropProb:      fs.Float64("drop-prob", 0.5, "qdrop: probability of keeping an activation element quantized during reconstruction"),
		qdropLR:       fs.Float64("qdrop-act-lr", 4e-5, "qdrop: Adam learning rate on the step sizes learned with the rounding"),
		maxCache:      fs.Float64("max-cache-mb", 2048, "bound (MB) on the sum of the cached sets (calibration streams, unit inputs/targets) kept in memory; a set past it goes to a temporary file instead, same results (0 = no bound)"),
		memLimit:      fs.Float64("mem-limit-mb", defaultMemLimitMB, "soft limit (MB) on the Go heap: the garbage collector works harder as the heap nears it (runtime/debug.SetMemoryLimit; 0 = none: collections only when the heap has grown 50 % over the live data, GOGC's default here; GOMEMLIMIT / GOGC, when set, win)"),
		cacheDir:      fs.String("cache-dir", "", "folder for those files (default: the system's temporary folder)"),
		compare:       fs.Bool("compare", false, "also evaluate the FP and nearest-rounding networks and print all three"),
		out:           fs.String("out", "", "write the quantized network (safetensors: dequantized weights, integer codes, scales)"),
		jsonOut:       fs.String("json", "", "write the run record (JSON) here"),
		onnxOut:       fs.String("onnx", "", "also write the quantized network as ONNX (QDQ, opset 13) here"),
		state:         fs.String("state", "", "save the run's state after every finished unit in this folder (default: --out or --json with .state for extension; removed when the run completes)"),
		resume:        fs.String("resume", "", "continue the interrupted run whose state is in this folder (same flags, checkpoint and data; its state folder is kept up to date)"),
		quiet:         fs.Bool("quiet", false, "no progress bars"),
		actInput:      fs.String("act-input", "quantized", "activation stage: LSQ reads each unit's input from the quantized network (quantized) or the FP network (fp, the authors' code)"),
		actInit:       fs.String("act-init", "unit", "activation ranges initialised unit by unit after the upstream LSQ (unit) or once over the whole network before any LSQ (network, the authors' code)"),
		actInitImages: fs.Int("act-init-images", 256, "calibration images (cached inputs) of the activation range search (the authors' code: 64)"),
		unitLosses:    fs.Bool("unit-losses", false, "record each unit's loss over its whole calibration cache before and after each stage (two extra passes per unit; the optimisation is unchanged)"),
		minibatch:     fs.String("minibatch", "iid", "how each iteration draws its --batch images among the cached ones: iid (independent draws, an image may repeat) or distinct (a random subset, as the authors' torch.randperm(N)[:batch])"),
		authors:       fs.Bool("authors", false, "the activation stage exactly as the BRECQ authors' code runs it: --act-input fp --act-init network --act-init-images 64 --classifier-input-bits 0 (overrides those flags)"),
	}
}

// check validates the flags' integer values: bit-widths and counts, naming
// the flag and what is allowed.
func (f *quantFlags) check() error {
	if err := checkBits("wbits", "weight bits", *f.wbits, false, false); err != nil {
		return err
	}
	if err := checkBits("abits", "activation bits", *f.abits, true, false); err != nil {
		return err
	}
	if err := checkBits("first-last-bits", "first/last layer bits", *f.firstLast, false, false); err != nil {
		return err
	}
	if err := checkBits("classifier-input-bits", "classifier input bits", *f.clsIn, false, true); err != nil {
		return err
	}
	if err := checkBits("stem-output-bits", "stem output bits", *f.stemOut, false, true); err != nil {
		return err
	}
	if err := checkInts(intFlag{"calib", f.calib, 1}, intFlag{"batch", f.batch, 1}, intFlag{"act-iters", f.actIters, 0}); err != nil {
		return err
	}
	if *f.method != string(brecq.MethodNearest) {
		if err := checkInts(intFlag{"iters", f.iters, 1}); err != nil {
			return err
		}
	}
	return nil
}

// checkFloats validates every float flag's range (after the options'
// own validation, whose messages name the concept).
func (f *quantFlags) checkFloats() error {
	return checkFloats(
		floatFlag{"lambda", f.lambda, nonNegative},
		floatFlag{"lr", f.wlr, positive},
		floatFlag{"act-lr", f.alr, positive},
		floatFlag{"fisher-mix", f.fisherMix, unit},
		floatFlag{"drop-prob", f.dropProb, unitOpenLo},
		floatFlag{"qdrop-act-lr", f.qdropLR, positive},
		floatFlag{"max-cache-mb", f.maxCache, nonNegative},
		floatFlag{"mem-limit-mb", f.memLimit, nonNegative},
	)
}

// paths validates the output paths against each other and the inputs
// before any work (see checkPaths); extra are more outputs and inputs of
// the command.
func (f *quantFlags) paths(extraOut, extraIn []namedPath) error {
	return checkPaths(append([]namedPath{{"--out", *f.out}, {"--json", *f.jsonOut}, {"--onnx", *f.onnxOut}}, extraOut...),
		append([]namedPath{{"--model", *f.model}}, extraIn...))
}

// options builds and validates the run's options from the flags.
func (f *quantFlags) options() (brecq.Options, error) {
	if err := f.check(); err != nil {
		return brecq.Options{}, err
	}
	opt := brecq.DefaultOptions(*f.wbits, *f.abits)
	opt.Method = brecq.Method(*f.method)
	opt.Granularity = brecq.Granularity(*f.gran)
	opt.Loss = brecq.Loss(*f.loss)
	if opt.Method == brecq.MethodAdaRound && *f.gran == "block" {
		// AdaRound is layer-wise with MSE: the --granularity default gives way
		// (an explicit other granularity or loss is reported by Validate).
		opt.Granularity = brecq.Layer
	}
	opt.WeightIters, opt.ActIters, opt.Batch, opt.Seed, opt.Lambda = *f.iters, *f.actIters, *f.batch, *f.seed, *f.lambda
	opt.WeightLR, opt.ActLR = *f.wlr, *f.alr
	opt.FirstLast, opt.ClassifierInputBits, opt.FisherMix, opt.FisherDamped = *f.firstLast, *f.clsIn, *f.fisherMix, *f.fisherDamped
	opt.DropProb, opt.QDropActLR, opt.StemOutputBits = *f.dropProb, *f.qdropLR, *f.stemOut
	opt.MaxCacheMB, opt.CacheDir = *f.maxCache, *f.cacheDir
	switch *f.actInput {
	case "quantized":
		opt.ActInput = brecq.ActInputQuantized
	case "fp":
		opt.ActInput = brecq.ActInputFP
	default:
		return opt, fmt.Errorf("--act-input %q: want quantized or fp", *f.actInput)
	}
	switch *f.actInit {
	case "unit":
		opt.ActInit = brecq.ActInitUnit
	case "network":
		opt.ActInit = brecq.ActInitNetwork
	default:
		return opt, fmt.Errorf("--act-init %q: want unit or network", *f.actInit)
	}
	switch *f.minibatch {
	case "iid":
		opt.Minibatch = brecq.MinibatchIID
	case "distinct":
		opt.Minibatch = brecq.MinibatchDistinct
	default:
		return opt, fmt.Errorf("--minibatch %q: want iid or distinct", *f.minibatch)
	}
	if *f.actInitImages < 1 {
		return opt, fmt.Errorf("--act-init-images %d: want at least 1", *f.actInitImages)
	}
	if *f.actInitImages != 256 {
		opt.ActInitImages = *f.actInitImages
	}
	opt.UnitLosses = *f.unitLosses
	if *f.authors {
		opt = opt.AuthorsActivationStage()
	}
	if !*f.quiet {
		opt.Progress = os.Stderr
	}
	if opt.Method == brecq.MethodAdaRound {
		// AdaRound is layer-wise MSE reconstruction by definition.
		opt.Granularity, opt.Loss = brecq.Layer, brecq.LossMSE
	}
	if err := opt.Validate(); err != nil {
		return opt, fmt.Errorf("bad flags: %w", err)
	}
	if err := f.checkFloats(); err != nil {
		return opt, err
	}
	setMemoryLimit(*f.memLimit)
	return opt, nil
}

// defaultMemLimitMB is --mem-limit-mb's default: with the caches bounded by
// --max-cache-mb (2 048) and one minibatch step's buffers, ResNet-18 at
// 224×224 lives in ~4.5 GB; the limit keeps the heap from doubling past
// that (measured: README, "At ImageNet size").
const defaultMemLimitMB = 6000

// defaultGCPercent is the garbage collector's target (GOGC) that quantize,
// mixed and bench set unless the GOGC environment variable is given: a
// collection starts when the heap has grown by 50 % over the live data left
// by the previous one, instead of Go's 100 %. Measured on ResNet-20 W2A4
// (README, "Memory"): peak resident memory 1 786 → 1 321 MB, total CPU time
// +4 %, the same export.
const defaultGCPercent = 50

// setMemoryLimit sets the Go runtime's soft memory limit to mb megabytes
// (10⁶ bytes; 0 = none) unless the GOMEMLIMIT environment variable is set,
// and the collector's target to defaultGCPercent unless GOGC is set.
func setMemoryLimit(mb float64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if mb == 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	debug.SetMemoryLimit(int64(mb * 1e6))
}

// releaseMemory hands the memory of finished work back before the next job
// starts, so that two jobs in one process do not add up: a collection, then
// debug.FreeOSMemory (a second collection, returning the freed pages). The Go
// backend keeps released buffers in sync.Pools, which a collection only
// empties on the second cycle after their last use.
func releaseMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// quantEnv is what a quantization job runs on.
type quantEnv struct {
	backend     compute.Backend
	ds          *data
	net         *models.Net
	params      models.Params
	idx         []int
	calib       *tensors.Tensor
	calibLabels []int32
}

// load prints the backend, loads the data, the checkpoint and the seeded
// calibration sample.
func (f *quantFlags) load() (*quantEnv, error) {
	backend, ds, net, err := f.setup(true)
	if err != nil {
		return nil, err
	}
	net, params, _, err := f.loadParams(*f.model, net)
	if err != nil {
		return nil, err
	}
	calibT, cy, idx, err := ds.calibration(*f.calib, *f.seed)
	if err != nil {
		return nil, err
	}
	return &quantEnv{backend: backend, ds: ds, net: net, params: params, idx: idx, calib: calibT, calibLabels: cy}, nil
}

// record starts the run record of a job.
func (f *quantFlags) record(cmd string, args []string, e *quantEnv, opt brecq.Options) QuantRecord {
	rec := QuantRecord{Command: cmd + " " + strings.Join(args, " "), Checkpoint: *f.model, Model: e.net.Name, Data: e.ds.Name,
		Backend: engine.Name(), Machine: machine(), Calib: *f.calib, CalibSeed: *f.seed, CalibIndices: e.idx}
	rec.Options = opt
	rec.Options.Progress = nil
	return rec
}

func runQuantize(args []string) error {
	fs := newFlagSet("quantize", `Usage: brecq quantize [flags]

Post-training quantization of a checkpoint with BRECQ (block reconstruction),
AdaRound (layer-wise), QDrop or nearest rounding, then top-1 on the 10 000
test images.

Examples:
  brecq quantize --wbits 2 --abits 4 --compare                       # paper budget, W2A4
  brecq quantize --wbits 2 --abits 4 --iters 500 --act-iters 100     # reduced CPU budget
  brecq quantize --method adaround --wbits 4 --abits 32
  brecq quantize --granularity stage --loss fisher --wbits 2 --abits 2 --json run.json
  brecq quantize --method qdrop --drop-prob 0.5 --wbits 2 --abits 4
  brecq quantize --model mine.safetensors --out mine-w4a4.safetensors --wbits 4 --abits 4
  brecq quantize --rounding-from w2a2.safetensors --wbits 2 --abits 2 --act-iters 500  # activation stage only
`)
	f := addQuantFlags(fs)
	roundingFrom := fs.String("rounding-from", "", "skip the weight stage: take every layer's rounding (integer codes, scales and zero points, as --out writes them) from this safetensors file, then run the activation stage on it (not with --method qdrop)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opt, err := f.options()
	if err != nil {
		return err
	}
	if err := f.paths(nil, []namedPath{{"--rounding-from", *roundingFrom}}); err != nil {
		return err
	}
	var rounding brecq.Rounding
	if *roundingFrom != "" {
		if opt.Method == brecq.MethodQDrop || opt.Method == brecq.MethodNearest {
			return fmt.Errorf("--rounding-from replaces the weight stage of --method brecq or adaround, not %s", opt.Method)
		}
		if rounding, err = brecq.ReadRounding(*roundingFrom); err != nil {
			return fmt.Errorf("--rounding-from: %w", err)
		}
	}
	e, err := f.load()
	if err != nil {
		return err
	}
	if opt.LayerBits, err = parseLayerBits(*f.layerBits, e.net); err != nil {
		return err
	}
	rec := f.record("quantize", args, e, opt)
	fmt.Printf("quantize %s: method %s, W%dA%d, granularity %s, loss %s, %d/%d iterations per unit, %d calibration images\n",
		e.net.Name, opt.Method, opt.WBits, opt.ABits, opt.Granularity, opt.Loss, opt.WeightIters, opt.ActIters, *f.calib)
	q, err := brecq.NewQuantizer(e.backend, e.net, e.params, e.calib, opt)
	if err != nil {
		return err
	}
	if *roundingFrom != "" {
		if err := q.SetRounding(rounding); err != nil {
			return fmt.Errorf("--rounding-from %s: %w", *roundingFrom, err)
		}
		if rec.RoundingSHA256, err = fileSHA256(*roundingFrom); err != nil {
			return err
		}
		rec.RoundingFrom = *roundingFrom
		fmt.Printf("weight stage: the rounding of %s\n", *roundingFrom)
	}
	return f.runAndReport(e, q, &rec, "", nil, "")
}

// runAndReport calibrates q, evaluates it (and with --compare the FP and
// nearest networks), prints the table and writes --out and --json, together
// with what outs already holds (may be nil; extraOut names it). label names
// the method in the table ("" = from the options).
func (f *quantFlags) runAndReport(e *quantEnv, q *brecq.Quantizer, rec *QuantRecord, label string, outs *atomicfile.Batch, extraOut string) error {
	opt := q.Options()
	ds := e.ds
	stateDir, stopSignals, err := f.prepareState(e, q, strings.Fields(rec.Command))
	if err != nil {
		return err
	}
	defer stopSignals()
	t0 := time.Now()
	if err := q.Run(); err != nil {
		return err
	}
	rec.CalibSeconds = time.Since(t0).Seconds()
	rec.Units = q.Report.Units
	if kb, ok := peakRSSKB(); ok {
		rec.CalibPeakRSSMB = float64(kb) / 1024
	}
	releaseMemory() // the calibration's caches and buffers, before the evaluations
	fmt.Printf("calibration: %.1f s\n", rec.CalibSeconds)
	te := time.Now()
	// testAccuracy is top-1 and mean cross-entropy of a quantizer's network
	// in mode m on the test split (its loader stopped when done).
	testAccuracy := func(q *brecq.Quantizer, m brecq.Mode) (float64, float64, error) {
		logits, done := q.Evaluator(m)
		defer done()
		bf, stop := ds.testBatchFn(ds.evalBatch(e.net))
		defer stop()
		return fptrain.AccuracyAndLoss(ds.testN(), ds.evalBatch(e.net), bf, logits)
	}
	evalMode := func(m brecq.Mode) (float64, error) {
		acc, _, err := testAccuracy(q, m)
		return acc, err
	}
	{
		// One evaluator for the test split and the calibration images.
		logits, done := q.Evaluator(q.EvalMode())
		bf, stop := ds.testBatchFn(ds.evalBatch(e.net))
		rec.QuantTop1, rec.TestLoss, err = fptrain.AccuracyAndLoss(ds.testN(), ds.evalBatch(e.net), bf, logits)
		stop()
		if err == nil {
			// The same network on its own calibration images: over-fitting shows as
			// a calibration loss far below the test loss.
			var cx []float32
			if cx, err = tensors.CopyFlatData[float32](e.calib); err == nil {
				per := len(cx) / len(e.idx)
				rec.CalibTop1, rec.CalibLoss, err = fptrain.AccuracyAndLoss(len(e.idx), ds.evalBatch(e.net), func(b []int) (*tensors.Tensor, []int32, error) {
					x := make([]float32, 0, len(b)*per)
					y := make([]int32, len(b))
					for i, j := range b {
						x = append(x, cx[j*per:(j+1)*per]...)
						y[i] = e.calibLabels[j]
					}
					return ds.tensor(x, len(b)), y, nil
				}, logits)
			}
		}
		done()
		if err != nil {
			return err
		}
	}
	if *f.compare {
		if rec.FPTop1, err = evalMode(brecq.FPMode()); err != nil {
			return err
		}
		nm := q.EvalMode()
		nm.DefaultWeights = brecq.RoundNearest
		if opt.ABits < 32 {
			// Nearest rounding keeps the activation ranges found here, without LSQ.
			releaseMemory() // q's evaluations, before a second calibration
			nq, err := brecq.NewQuantizer(e.backend, e.net, e.params, e.calib, withMethod(opt, brecq.MethodNearest))
			if err != nil {
				return err
			}
			if err := nq.Run(); err != nil {
				return err
			}
			if rec.NearestTop1, _, err = testAccuracy(nq, nq.EvalMode()); err != nil {
				return err
			}
		} else if rec.NearestTop1, err = evalMode(nm); err != nil {
			return err
		}
	}
	rec.EvalSeconds = time.Since(te).Seconds()
	wa := fmt.Sprintf("W%dA%d", opt.WBits, opt.ABits)
	if label == "" {
		switch opt.Method {
		case brecq.MethodBRECQ:
			label = fmt.Sprintf("BRECQ (%s, %s) %s", opt.Granularity, opt.Loss, wa)
		case brecq.MethodQDrop:
			label = fmt.Sprintf("QDrop (%s, %s, p=%g) %s", opt.Granularity, opt.Loss, opt.DropProb, wa)
		default:
			label = fmt.Sprintf("%s %s", opt.Method, wa)
		}
	}
	fmt.Printf("\n| model | top-1 (%%) |\n|---|---|\n")
	if *f.compare {
		fmt.Printf("| FP | %.2f |\n| nearest %s | %.2f |\n", rec.FPTop1, wa, rec.NearestTop1)
	}
	fmt.Printf("| %s | %.2f |\n\n", label, rec.QuantTop1)
	fmt.Printf("(%s, %d calibration images, seed %d, %d/%d iterations per unit, calibration %.0f s, backend %s)\n",
		ds.Name, *f.calib, *f.seed, opt.WeightIters, opt.ActIters, rec.CalibSeconds, engine.Name())
	if kb, ok := peakRSSKB(); ok {
		rec.PeakRSSMB = float64(kb) / 1024
		fmt.Printf("peak resident memory: %.0f MB (%.0f MB by the end of the calibration; load average %s)\n",
			rec.PeakRSSMB, rec.CalibPeakRSSMB, loadAvg())
	}
	// Every output is staged, then all are renamed into place together.
	if outs == nil {
		outs = &atomicfile.Batch{}
	}
	defer outs.Discard()
	if *f.out != "" {
		meta := map[string]string{"producer": "brecq " + strings.Fields(rec.Command)[0], "method": string(opt.Method), "model": e.net.Name,
			"wbits": fmt.Sprint(opt.WBits), "abits": fmt.Sprint(opt.ABits), "top1": fmt.Sprintf("%.2f", rec.QuantTop1)}
		if err := outs.Add(*f.out, func(tmp string) error { return q.Q.Export(tmp, q.EvalMode(), meta) }); err != nil {
			return err
		}
		rec.Output = *f.out
	}
	if *f.onnxOut != "" {
		meta := map[string]string{"producer": "brecq " + strings.Fields(rec.Command)[0], "method": string(opt.Method),
			"wbits": fmt.Sprint(opt.WBits), "abits": fmt.Sprint(opt.ABits), "top1": fmt.Sprintf("%.2f", rec.QuantTop1)}
		if err := outs.Add(*f.onnxOut, func(tmp string) error { return writeONNX(tmp, q, meta) }); err != nil {
			return err
		}
	}
	if *f.jsonOut != "" {
		if err := outs.AddJSON(*f.jsonOut, rec); err != nil {
			return err
		}
	}
	if err := outs.Commit(); err != nil {
		return err
	}
	for _, p := range []string{extraOut, *f.out, *f.onnxOut, *f.jsonOut} {
		if p != "" {
			fmt.Printf("wrote %s\n", p)
		}
	}
	if stateDir != "" {
		// The outputs are in place: the state is no longer needed.
		if err := os.RemoveAll(stateDir); err != nil {
			fmt.Fprintf(os.Stderr, "warning: could not remove the state folder: %v\n", err)
		}
	}
	return nil
}

func withMethod(o brecq.Options, m brecq.Method) brecq.Options {
	o.Method = m
	o.Progress = nil
	return o
}

// parseLayerBits reads --layer-bits: comma-separated SEL=BITS where SEL is a
// layer of net, "depthwise" (every convolution with Groups = In, one input
// channel per group) or "pointwise" (every 1×1 convolution with Groups = 1).
// A layer named explicitly takes its own bits over its class's. Empty: nil.
func parseLayerBits(spec string, net *models.Net) (map[string]int, error) {
	if spec == "" {
		return nil, nil
	}
	classes, named := map[string]int{}, map[string]int{}
	for _, item := range strings.Split(spec, ",") {
		sel, bs, ok := strings.Cut(strings.TrimSpace(item), "=")
		b, err := strconv.Atoi(bs)
		if !ok || err != nil {
			return nil, fmt.Errorf("--layer-bits %q: %q is not SEL=BITS (SEL a layer name, depthwise or pointwise; BITS 2..8)", spec, item)
		}
		if err := checkBits("layer-bits", "bits of "+sel, b, false, false); err != nil {
			return nil, err
		}
		switch {
		case sel == "depthwise" || sel == "pointwise":
			classes[sel] = b
		case net.Layer(sel) != nil:
			named[sel] = b
		default:
			return nil, fmt.Errorf("--layer-bits %q: %s has no layer %q (want a layer name, depthwise or pointwise)", spec, net.Name, sel)
		}
	}
	out, found := map[string]int{}, map[string]int{}
	for _, l := range net.Layers() {
		class := ""
		switch {
		case l.Kind != models.Conv:
		case l.Groups > 1 && l.Groups == l.In:
			class = "depthwise"
		case l.Kernel == 1 && l.Groups == 1:
			class = "pointwise"
		}
		if b, ok := classes[class]; ok {
			out[l.Name] = b
			found[class]++
		}
	}
	for k := range classes {
		if found[k] == 0 {
			return nil, fmt.Errorf("--layer-bits %q: %s has no %s convolution", spec, net.Name, k)
		}
	}
	maps.Copy(out, named)
	return out, nil
}
