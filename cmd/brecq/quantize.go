package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/runrecord"
	"github.com/brecq-go/brecq/datasets"
	"github.com/brecq-go/brecq/internal/runrec"
)

func init() { extraCommands["quantize"] = runQuantize }

// QuantRecord is the JSON record of a quantization run.
type QuantRecord = runrecord.Quant

func runQuantize(args []string) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	ckpt := fs.String("model", defaultModel(), "FP safetensors checkpoint (PyTorch state_dict layout)")
	data := fs.String("data", "fashion-mnist", "data set: fashion-mnist or mnist")
	depth := fs.Int("depth", 20, "ResNet depth (6n+2)")
	width := fs.Int("width", 1, "channel width multiplier of the checkpoint")
	method := fs.String("method", "brecq", "nearest | adaround (layer-wise, MSE) | brecq")
	wbits := fs.Int("wbits", 4, "weight bits (2..8); the stem and classifier use --first-last-bits")
	abits := fs.Int("abits", 32, "activation bits (2..8; 32 = unquantized)")
	gran := fs.String("granularity", "block", "reconstruction unit: layer | block | stage | net")
	loss := fs.String("loss", "mse", "reconstruction loss: mse | fisher")
	iters := fs.Int("iters", 20000, "weight-reconstruction iterations per unit (paper: 20000)")
	actIters := fs.Int("act-iters", 5000, "activation step-size iterations per unit (paper: 5000)")
	calib := fs.Int("calib", 1024, "calibration images from the training split")
	batch := fs.Int("batch", 32, "minibatch size of the optimisation")
	seed := fs.Uint64("seed", 1, "seed for the calibration sample and minibatches")
	lambda := fs.Float64("lambda", 0.01, "rounding regulariser weight λ")
	wlr := fs.Float64("lr", 1e-3, "Adam learning rate on AdaRound's V (paper: 1e-3; a reduced --iters budget may want more)")
	alr := fs.Float64("act-lr", 4e-4, "Adam learning rate on activation step sizes (cosine to 0)")
	firstLast := fs.Int("first-last-bits", 8, "bits of the first (stem) and last (classifier) weights")
	clsIn := fs.Int("classifier-input-bits", 8, "bits of the activation feeding the classifier (0 = same as --abits, the authors' code in effect)")
	fisherMix := fs.Float64("fisher-mix", 1, "Fisher weights (1−α) + α·g²/mean(g²); α in [0,1]")
	fisherDamped := fs.Bool("fisher-damped", false, "use the authors' Fisher weights (|g|+1)² instead")
	compare := fs.Bool("compare", false, "also evaluate the FP and nearest-rounding networks and print all three")
	out := fs.String("out", "", "write the quantized network (safetensors: dequantized weights, integer codes, scales)")
	jsonOut := fs.String("json", "", "write the run record (JSON) here")
	quiet := fs.Bool("quiet", false, "no progress bars")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: brecq quantize [flags]

Post-training quantization of a checkpoint with BRECQ (block reconstruction),
AdaRound (layer-wise) or nearest rounding, then top-1 on the 10 000 test images.

Examples:
  brecq quantize --wbits 2 --abits 4 --compare                       # paper budget, W2A4
  brecq quantize --wbits 2 --abits 4 --iters 500 --act-iters 100     # reduced CPU budget
  brecq quantize --method adaround --wbits 4 --abits 32
  brecq quantize --granularity stage --loss fisher --wbits 2 --abits 2 --json run.json
  brecq quantize --model mine.safetensors --out mine-w4a4.safetensors --wbits 4 --abits 4

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt := brecq.DefaultOptions(*wbits, *abits)
	opt.Method = brecq.Method(*method)
	opt.Granularity = brecq.Granularity(*gran)
	opt.Loss = brecq.Loss(*loss)
	opt.WeightIters, opt.ActIters, opt.Batch, opt.Seed, opt.Lambda = *iters, *actIters, *batch, *seed, *lambda
	opt.WeightLR, opt.ActLR = *wlr, *alr
	opt.FirstLast, opt.ClassifierInputBits, opt.FisherMix, opt.FisherDamped = *firstLast, *clsIn, *fisherMix, *fisherDamped
	if !*quiet {
		opt.Progress = os.Stderr
	}
	if err := opt.Validate(); err != nil {
		return fmt.Errorf("bad flags: %w", err)
	}
	if *calib < 1 {
		return fmt.Errorf("--calib %d: need at least one image", *calib)
	}
	backend, ds, net, err := setup(*data, *depth, *width)
	if err != nil {
		return err
	}
	params, _, err := models.LoadParams(*ckpt, net)
	if err != nil {
		return err
	}
	idx, err := datasets.SampleCalibration(ds.Train, *calib, *seed)
	if err != nil {
		return fmt.Errorf("--calib: %w", err)
	}
	cx, _, err := ds.Train.Batch(idx, ds.Norm)
	if err != nil {
		return err
	}
	calibT := tensors.FromFlatDataAndDimensions(cx, len(idx), 1, ds.Train.H, ds.Train.W)
	rec := QuantRecord{Command: "quantize " + strings.Join(args, " "), Checkpoint: *ckpt, Model: net.Name, Data: ds.Name,
		Backend: engine.Name(), Machine: machine(), Calib: *calib, CalibSeed: *seed, CalibIndices: idx}
	rec.Options = opt
	rec.Options.Progress = nil
	fmt.Printf("quantize %s: method %s, W%dA%d, granularity %s, loss %s, %d/%d iterations per unit, %d calibration images\n",
		net.Name, opt.Method, opt.WBits, opt.ABits, opt.Granularity, opt.Loss, opt.WeightIters, opt.ActIters, *calib)
	t0 := time.Now()
	q, err := brecq.NewQuantizer(backend, net, params, calibT, opt)
	if err != nil {
		return err
	}
	if err := q.Run(); err != nil {
		return err
	}
	rec.CalibSeconds = time.Since(t0).Seconds()
	rec.Units = q.Report.Units
	fmt.Printf("calibration: %.1f s\n", rec.CalibSeconds)
	te := time.Now()
	evalMode := func(m brecq.Mode) (float64, error) {
		logits, done := q.Evaluator(m)
		defer done()
		return fptrain.Accuracy(ds.Test.N, 500, testBatchFn(ds), logits)
	}
	{
		logits, done := q.Evaluator(q.EvalMode())
		rec.QuantTop1, rec.TestLoss, err = fptrain.AccuracyAndLoss(ds.Test.N, 500, testBatchFn(ds), logits)
		if err == nil {
			// The same network on its own calibration images: over-fitting shows as
			// a calibration loss far below the test loss.
			rec.CalibTop1, rec.CalibLoss, err = fptrain.AccuracyAndLoss(len(idx), 512, func(b []int) (*tensors.Tensor, []int32, error) {
				sel := make([]int, len(b))
				for i, j := range b {
					sel[i] = idx[j]
				}
				x, y, err := ds.Train.Batch(sel, ds.Norm)
				if err != nil {
					return nil, nil, err
				}
				return tensors.FromFlatDataAndDimensions(x, len(sel), 1, ds.Train.H, ds.Train.W), y, nil
			}, logits)
		}
		done()
		if err != nil {
			return err
		}
	}
	if *compare {
		if rec.FPTop1, err = evalMode(brecq.FPMode()); err != nil {
			return err
		}
		nm := q.EvalMode()
		nm.DefaultWeights = brecq.RoundNearest
		if opt.ABits < 32 {
			// Nearest rounding keeps the activation ranges found here, without LSQ.
			nq, err := brecq.NewQuantizer(backend, net, params, calibT, withMethod(opt, brecq.MethodNearest))
			if err != nil {
				return err
			}
			if err := nq.Run(); err != nil {
				return err
			}
			logits, done := nq.Evaluator(nq.EvalMode())
			rec.NearestTop1, err = fptrain.Accuracy(ds.Test.N, 500, testBatchFn(ds), logits)
			done()
			if err != nil {
				return err
			}
		} else if rec.NearestTop1, err = evalMode(nm); err != nil {
			return err
		}
	}
	rec.EvalSeconds = time.Since(te).Seconds()
	label := fmt.Sprintf("%s W%dA%d", opt.Method, opt.WBits, opt.ABits)
	if opt.Method == brecq.MethodBRECQ {
		label = fmt.Sprintf("BRECQ (%s, %s) W%dA%d", opt.Granularity, opt.Loss, opt.WBits, opt.ABits)
	}
	fmt.Printf("\n| model | top-1 (%%) |\n|---|---|\n")
	if *compare {
		fmt.Printf("| FP | %.2f |\n| nearest W%dA%d | %.2f |\n", rec.FPTop1, opt.WBits, opt.ABits, rec.NearestTop1)
	}
	fmt.Printf("| %s | %.2f |\n\n", label, rec.QuantTop1)
	fmt.Printf("(%s, %d calibration images, seed %d, %d/%d iterations per unit, calibration %.0f s, backend %s)\n",
		ds.Name, *calib, *seed, opt.WeightIters, opt.ActIters, rec.CalibSeconds, engine.Name())
	if *out != "" {
		meta := map[string]string{"producer": "brecq quantize", "method": string(opt.Method), "model": net.Name,
			"wbits": fmt.Sprint(opt.WBits), "abits": fmt.Sprint(opt.ABits), "top1": fmt.Sprintf("%.2f", rec.QuantTop1)}
		if err := q.Q.Export(*out, q.EvalMode(), meta); err != nil {
			return err
		}
		rec.Output = *out
		fmt.Printf("wrote %s\n", *out)
	}
	if *jsonOut != "" {
		if err := runrec.WriteJSON(*jsonOut, rec); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", *jsonOut)
	}
	return nil
}

func withMethod(o brecq.Options, m brecq.Method) brecq.Options {
	o.Method = m
	o.Progress = nil
	return o
}
