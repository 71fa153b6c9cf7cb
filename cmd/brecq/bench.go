package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/datasets"
	"github.com/brecq-go/brecq/internal/runrec"
)

func init() { extraCommands["bench"] = runBench }

// Reference figures: the authors' PyTorch code (PyTorch 1.13 CPU, 2 threads)
// on this machine, ResNet-20 on Fashion-MNIST, batch 32.
const (
	refWeightIterMS   = 3.3  // block weight-reconstruction iteration, mean over the 10 units
	refActIterMS      = 6.1  // activation (LSQ) iteration, mean over the 10 units
	refLayerIterMS    = 1.6  // layer-wise AdaRound iteration
	refCalib2000S     = 96   // W2A4 at 2000/500 iterations per unit, whole calibration
	refCalib20000S    = 1071 // W2A4 at 20000/5000
	refTrainStep128S  = 0.1  // FP train step at batch 128
	referenceProvider = "PyTorch 1.13 CPU, 2 threads, the authors' code, recorded on this machine"
)

// BenchRecord is the JSON record of `brecq bench`.
type BenchRecord struct {
	Command      string              `json:"command"`
	Checkpoint   string              `json:"checkpoint"`
	Model        string              `json:"model"`
	Data         string              `json:"data"`
	Backend      string              `json:"backend"`
	GoVersion    string              `json:"go_version"`
	GOEXPERIMENT string              `json:"goexperiment"`
	CPU          string              `json:"cpu"`
	Cores        int                 `json:"cores"`
	Machine      string              `json:"machine"`
	Iters        int                 `json:"iters"`
	ActIters     int                 `json:"act_iters"`
	Calib        int                 `json:"calib_images"`
	Reference    string              `json:"reference"`
	Rows         []BenchRow          `json:"rows"`
	Runs         map[string]BenchRun `json:"runs"`
	PeakRSSKB    int64               `json:"peak_rss_kb"`
	WallSeconds  float64             `json:"wall_seconds"`
}

// BenchRow is one measure: the figure here, its spread where it has one
// (10th / 90th percentiles), the reference and here/reference.
type BenchRow struct {
	Measure   string  `json:"measure"`
	Unit      string  `json:"unit"`
	Here      float64 `json:"here"`
	Lo        float64 `json:"p10,omitempty"`
	Hi        float64 `json:"p90,omitempty"`
	Reference float64 `json:"reference,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"` // Here / Reference
	Note      string  `json:"note,omitempty"`
	LoadAvg   string  `json:"load_avg"` // 1, 5, 15 min load average when measured
}

// BenchRun is one timed calibration: its settings, the wall time of
// NewQuantizer + Run and the per-unit report.
type BenchRun struct {
	Options brecq.Options      `json:"options"`
	Seconds float64            `json:"seconds"`
	Units   []brecq.UnitReport `json:"units"`
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	ckpt := fs.String("model", defaultModel(), "FP safetensors checkpoint (the references are for the shipped ResNet-20)")
	data := fs.String("data", "fashion-mnist", "data set: fashion-mnist or mnist")
	depth := fs.Int("depth", 20, "ResNet depth (6n+2)")
	width := fs.Int("width", 1, "channel width multiplier of the checkpoint")
	iters := fs.Int("iters", 30, "weight-reconstruction iterations per unit to time")
	actIters := fs.Int("act-iters", 30, "activation iterations per unit to time")
	calib := fs.Int("calib", 1024, "calibration images")
	full := fs.Bool("full", false, "also run a whole W2A4 calibration at 2000/500 iterations per unit (long)")
	jsonOut := fs.String("json", "", "write the benchmark record (JSON) here")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: brecq bench [flags]

Times BRECQ calibration of the shipped ResNet-20 on Fashion-MNIST (W2A4, block
granularity, batch 32) with a few iterations per unit, and prints each figure
beside the authors' PyTorch code on this machine (`+referenceProvider+`)
as a ratio here/reference. Whole-calibration times are extrapolated from the
median iteration times unless --full measures one. Timings are wall time:
other load on the machine shows in them (the load average is printed).

Examples:
  brecq bench
  brecq bench --iters 100 --act-iters 100 --json results/bench.json
  brecq bench --full

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *iters < 2 || *actIters < 2 {
		return fmt.Errorf("--iters %d, --act-iters %d: need at least 2 iterations for a median", *iters, *actIters)
	}
	if *calib < 1 {
		return fmt.Errorf("--calib %d: need at least one image", *calib)
	}
	start := time.Now()
	backend, ds, net, err := setup(*data, *depth, *width)
	if err != nil {
		return err
	}
	params, _, err := models.LoadParams(*ckpt, net)
	if err != nil {
		return err
	}
	idx, err := datasets.SampleCalibration(ds.Train, *calib, 1)
	if err != nil {
		return fmt.Errorf("--calib: %w", err)
	}
	calibT, _, err := splitImages(ds.Train, ds.Norm, idx)
	if err != nil {
		return err
	}
	cpu, cores := cpuModel(), runtime.NumCPU()
	rec := BenchRecord{Command: "bench " + strings.Join(args, " "), Checkpoint: *ckpt, Model: net.Name, Data: ds.Name,
		Backend: engine.Name(), GoVersion: runtime.Version(), GOEXPERIMENT: engine.BuildExperiments(),
		CPU: cpu, Cores: cores, Machine: machine(), Iters: *iters, ActIters: *actIters, Calib: *calib,
		Reference: referenceProvider, Runs: map[string]BenchRun{}}
	fmt.Printf("bench %s: %s, %d cores, %s, load average %s\n", net.Name, cpu, cores, runtime.Version(), loadAvg())
	add := func(r BenchRow) {
		if r.Reference > 0 {
			r.Ratio = r.Here / r.Reference
		}
		r.LoadAvg = loadAvg()
		rec.Rows = append(rec.Rows, r)
	}
	quant := func(key string, opt brecq.Options) (BenchRun, error) {
		if err := opt.Validate(); err != nil { // (sets the granularity of AdaRound)
			return BenchRun{}, fmt.Errorf("%s: %w", key, err)
		}
		fmt.Printf("timing %s: %s %s, W%dA%d, loss %s, %d/%d iterations per unit ... ", key, opt.Method, opt.Granularity,
			opt.WBits, opt.ABits, opt.Loss, opt.WeightIters, opt.ActIters)
		run, err := timeCalibration(backend, net, params, calibT, opt)
		if err != nil {
			return run, fmt.Errorf("%s: %w", key, err)
		}
		rec.Runs[key] = run
		fmt.Printf("%.1f s (load %s)\n", run.Seconds, loadAvg())
		return run, nil
	}

	// Block granularity, W2A4: weight and activation iterations, caching.
	opt := benchOptions(2, 4, *iters, *actIters)
	block, err := quant("block-w2a4", opt)
	if err != nil {
		return err
	}
	for _, stage := range []string{"weights", "activations"} {
		kind := map[string]string{"weights": "weight", "activations": "activation"}[stage]
		for s := 1; s <= net.NumStages; s++ {
			b := net.Blocks[middle(net.StageBlocks(s))].Name
			if u, ok := findUnit(block.Units, stage, b); ok {
				add(BenchRow{Measure: fmt.Sprintf("%s iteration, stage-%d block %s", kind, s, b), Unit: "ms",
					Here: u.IterMS, Lo: u.IterMSLo, Hi: u.IterMSHi})
			}
		}
		ref := map[string]float64{"weights": refWeightIterMS, "activations": refActIterMS}[stage]
		m, lo, hi, n := meanIterMS(block.Units, stage)
		add(BenchRow{Measure: fmt.Sprintf("%s iteration, mean of the %d units' medians", kind, n), Unit: "ms",
			Here: m, Lo: lo, Hi: hi, Reference: ref})
		cs, _ := meanOf(block.Units, stage, func(u brecq.UnitReport) float64 { return u.CacheSeconds })
		add(BenchRow{Measure: fmt.Sprintf("caching before the %s stage, mean per unit", kind), Unit: "s", Here: cs})
	}

	// Layer granularity (AdaRound, W2A32).
	lopt := benchOptions(2, 32, *iters, 0)
	lopt.Method, lopt.Granularity = brecq.MethodAdaRound, brecq.Layer
	layer, err := quant("layer-w2a32", lopt)
	if err != nil {
		return err
	}
	m, lo, hi, n := meanIterMS(layer.Units, "weights")
	add(BenchRow{Measure: fmt.Sprintf("layer-wise weight iteration, mean of the %d units' medians", n), Unit: "ms",
		Here: m, Lo: lo, Hi: hi, Reference: refLayerIterMS})

	// Fisher pass (block granularity, a few iterations: only the pass matters).
	fopt := benchOptions(2, 32, 2, 0)
	fopt.Loss = brecq.LossFisher
	fisher, err := quant("fisher-w2a32", fopt)
	if err != nil {
		return err
	}
	fsec, n := meanOf(fisher.Units, "weights", func(u brecq.UnitReport) float64 { return u.FisherSeconds })
	add(BenchRow{Measure: fmt.Sprintf("Fisher (gradient) pass, mean per unit over %d units", n), Unit: "s", Here: fsec})

	// Whole W2A4 calibrations: the measured short run plus the remaining
	// iterations of every unit at its median.
	for _, c := range []struct {
		w, a int
		ref  float64
	}{{2000, 500, refCalib2000S}, {20000, 5000, refCalib20000S}} {
		add(BenchRow{Measure: fmt.Sprintf("W2A4 calibration, %d/%d iterations per unit", c.w, c.a), Unit: "s",
			Here: extrapolate(block, c.w, c.a), Reference: c.ref, Note: "extrapolated"})
	}
	if *full {
		full, err := quant("full-w2a4", benchOptions(2, 4, 2000, 500))
		if err != nil {
			return err
		}
		add(BenchRow{Measure: "W2A4 calibration, 2000/500 iterations per unit", Unit: "s", Here: full.Seconds,
			Reference: refCalib2000S, Note: "measured"})
	}

	// FP network: inference images/s at batch 256, one SGD step at batch 128.
	fmt.Printf("timing the FP network ... ")
	ips, step, err := timeFP(backend, net, params, ds)
	if err != nil {
		return err
	}
	fmt.Printf("done (load %s)\n", loadAvg())
	add(BenchRow{Measure: "FP inference, batch 256", Unit: "images/s", Here: ips})
	add(BenchRow{Measure: "FP train step, batch 128", Unit: "s", Here: step, Reference: refTrainStep128S})

	if kb, ok := peakRSSKB(); ok {
		rec.PeakRSSKB = kb
		add(BenchRow{Measure: "peak resident memory", Unit: "MB", Here: float64(kb) / 1024})
	}
	rec.WallSeconds = time.Since(start).Seconds()
	fmt.Println()
	printBenchTable(rec.Rows)
	fmt.Printf("\nreference: %s; ratio = here / reference (time: above 1 is slower here).\n", referenceProvider)
	if net.Name != "resnet20" || ds.Name != datasets.FashionMNIST {
		fmt.Printf("The references are for resnet20 on %s, not %s on %s.\n", datasets.FashionMNIST, net.Name, ds.Name)
	}
	fmt.Println("Live PyTorch timing is not implemented: the recorded reference is used.")
	fmt.Printf("(%s; backend %s; GOEXPERIMENT=%s; %d calibration images; %d/%d iterations per unit timed; wall %.0f s)\n",
		cpu, engine.Name(), rec.GOEXPERIMENT, *calib, *iters, *actIters, rec.WallSeconds)
	if *jsonOut != "" {
		if err := runrec.WriteJSON(*jsonOut, rec); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", *jsonOut)
	}
	return nil
}

// benchOptions are the paper's options at wbits/abits with the iteration
// budget given and no progress output.
func benchOptions(wbits, abits, iters, actIters int) brecq.Options {
	o := brecq.DefaultOptions(wbits, abits)
	o.WeightIters, o.ActIters = iters, actIters
	return o
}

// timeCalibration runs NewQuantizer + Run with validated options and times it.
func timeCalibration(backend compute.Backend, net *models.Net, params models.Params, calib *tensors.Tensor, opt brecq.Options) (BenchRun, error) {
	run := BenchRun{Options: opt}
	t0 := time.Now()
	q, err := brecq.NewQuantizer(backend, net, params, calib, opt)
	if err != nil {
		return run, err
	}
	if err := q.Run(); err != nil {
		return run, err
	}
	run.Seconds = time.Since(t0).Seconds()
	run.Units = q.Report.Units
	return run, nil
}

// extrapolate is the time of a calibration with w/a iterations per unit: the
// measured run plus, for every unit, the iterations it did not do at its
// median iteration time.
func extrapolate(run BenchRun, w, a int) float64 {
	t := run.Seconds
	for _, u := range run.Units {
		n := w
		if u.Stage == "activations" {
			n = a
		}
		t += float64(n-u.Iters) * u.IterMS / 1e3
	}
	return t
}

// middle is the middle element of idx (idx is not empty).
func middle(idx []int) int { return idx[len(idx)/2] }

func findUnit(units []brecq.UnitReport, stage, name string) (brecq.UnitReport, bool) {
	for _, u := range units {
		if u.Stage == stage && u.Unit == name {
			return u, true
		}
	}
	return brecq.UnitReport{}, false
}

// meanOf is the mean of f over the units of the stage, and their number.
func meanOf(units []brecq.UnitReport, stage string, f func(brecq.UnitReport) float64) (float64, int) {
	s, n := 0.0, 0
	for _, u := range units {
		if u.Stage == stage {
			s += f(u)
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return s / float64(n), n
}

// meanIterMS is the mean over the stage's units of the median, 10th and 90th
// percentile iteration times, and the number of units.
func meanIterMS(units []brecq.UnitReport, stage string) (med, lo, hi float64, n int) {
	med, n = meanOf(units, stage, func(u brecq.UnitReport) float64 { return u.IterMS })
	lo, _ = meanOf(units, stage, func(u brecq.UnitReport) float64 { return u.IterMSLo })
	hi, _ = meanOf(units, stage, func(u brecq.UnitReport) float64 { return u.IterMSHi })
	return med, lo, hi, n
}

// splitImages returns the images idx of split as a [N,1,H,W] tensor, and their labels.
func splitImages(s *datasets.Split, norm datasets.Normalization, idx []int) (*tensors.Tensor, *tensors.Tensor, error) {
	x, y, err := s.Batch(idx, norm)
	if err != nil {
		return nil, nil, err
	}
	return tensors.FromFlatDataAndDimensions(x, len(idx), 1, s.H, s.W), tensors.FromFlatDataAndDimensions(y, len(y)), nil
}

// timeFP times FP inference (images/s at batch 256 of test images) and one
// SGD step at batch 128 of training images (smaller batches if a split is
// smaller), each the median of 5 runs after a warm-up (compilation) run.
func timeFP(backend compute.Backend, net *models.Net, params models.Params, ds *datasets.Dataset) (imagesPerSec, stepSec float64, err error) {
	ev, err := fptrain.NewEvaluator(backend, net, params)
	if err != nil {
		return 0, 0, err
	}
	x256, _, err := splitImages(ds.Test, ds.Norm, seq(min(256, ds.Test.N)))
	if err != nil {
		return 0, 0, err
	}
	fwd, err := medianSeconds(5, func() error { _, err := ev.Logits(x256); return err })
	if err != nil {
		return 0, 0, err
	}
	tr, err := fptrain.NewTrainer(backend, net, params, fptrain.Options{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		return 0, 0, err
	}
	x128, y128, err := splitImages(ds.Train, ds.Norm, seq(min(128, ds.Train.N)))
	if err != nil {
		return 0, 0, err
	}
	stepSec, err = medianSeconds(5, func() error { _, _, err := tr.Step(x128, y128, 0.01); return err })
	return float64(x256.Shape().Dimensions[0]) / fwd, stepSec, err
}

// seq is 0, 1, …, n−1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// medianSeconds runs fn once to warm up, then reps times, and returns the
// median wall time.
func medianSeconds(reps int, fn func() error) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	t := make([]float64, reps)
	for i := range t {
		t0 := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		t[i] = time.Since(t0).Seconds()
	}
	sort.Float64s(t)
	return t[reps/2], nil
}

// printBenchTable prints the rows as a Markdown table.
func printBenchTable(rows []BenchRow) {
	fmt.Println("| measure | here | reference | ratio | load avg |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range rows {
		here := fmt.Sprintf("%s %s", benchNum(r.Here), r.Unit)
		if r.Hi > 0 {
			here += fmt.Sprintf(" (p10 %s, p90 %s)", benchNum(r.Lo), benchNum(r.Hi))
		}
		if r.Note != "" {
			here += ", " + r.Note
		}
		ref, ratio := "–", "–"
		if r.Reference > 0 {
			ref, ratio = fmt.Sprintf("%s %s", benchNum(r.Reference), r.Unit), fmt.Sprintf("%.1f×", r.Ratio)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.Measure, here, ref, ratio, r.LoadAvg)
	}
}

// benchNum prints x with three significant digits, without exponent below 10⁶.
func benchNum(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	case x >= 1:
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// cpuModel is the CPU's model name from /proc/cpuinfo, or GOARCH elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the 1, 5 and 15 minute load average from /proc/loadavg ("?" elsewhere).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}
