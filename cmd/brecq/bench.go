package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	benchmarks "github.com/janpfeifer/go-benchmarks"
	"github.com/streadway/quantile"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/datasets"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

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
	// FPPeakRSSMB is the peak resident memory (MB) of the FP timing alone
	// (Linux; 0 where not measured).
	FPPeakRSSMB float64 `json:"fp_peak_rss_mb,omitempty"`
	WallSeconds float64 `json:"wall_seconds"`
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
	Options brecq.Options `json:"options"`
	Seconds float64       `json:"seconds"`
	// PeakRSSMB is the peak resident memory (MB of 2^20 bytes) during this
	// calibration alone: the high-water mark is reset after the memory of
	// the previous one is released (Linux only; 0 where not measured).
	PeakRSSMB float64            `json:"peak_rss_mb,omitempty"`
	Units     []brecq.UnitReport `json:"units"`
}

func runBench(args []string) error {
	fs := newFlagSet("bench", `Usage: brecq bench [flags]

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
`)
	nf := addNetFlags(fs, "FP safetensors checkpoint (the references are for the shipped ResNet-20)")
	iters := fs.Int("iters", 30, "weight-reconstruction iterations per unit to time")
	actIters := fs.Int("act-iters", 30, "activation iterations per unit to time")
	calib := fs.Int("calib", 1024, "calibration images")
	full := fs.Bool("full", false, "also run a whole W2A4 calibration at 2000/500 iterations per unit (long)")
	fpSeconds := fs.Float64("fp-seconds", 10, "time each FP measure (inference, train step) for this many seconds after a warm-up run")
	jsonOut := fs.String("json", "", "write the benchmark record (JSON) here")
	memLimit := fs.Float64("mem-limit-mb", defaultMemLimitMB, "soft limit (MB) on the Go heap, as quantize's (0 = none; GOMEMLIMIT, when set, wins)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkFloats(floatFlag{"mem-limit-mb", memLimit, nonNegative}); err != nil {
		return err
	}
	setMemoryLimit(*memLimit)
	if *iters < 2 || *actIters < 2 {
		return fmt.Errorf("--iters %d, --act-iters %d: need at least 2 iterations for a median", *iters, *actIters)
	}
	if *calib < 1 {
		return fmt.Errorf("--calib %d: need at least one image", *calib)
	}
	if err := checkFloats(floatFlag{"fp-seconds", fpSeconds, positive}); err != nil {
		return err
	}
	if err := checkPaths([]namedPath{{"--json", *jsonOut}}, []namedPath{{"--model", *nf.model}}); err != nil {
		return err
	}
	start := time.Now()
	backend, ds, net, err := nf.setup(true)
	if err != nil {
		return err
	}
	net, params, _, err := nf.loadParams(*nf.model, net)
	if err != nil {
		return err
	}
	calibT, _, _, err := ds.calibration(*calib, 1)
	if err != nil {
		return err
	}
	cpu, cores := cpuModel(), runtime.NumCPU()
	rec := BenchRecord{Command: "bench " + strings.Join(args, " "), Checkpoint: *nf.model, Model: net.Name, Data: ds.Name,
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
	// notePeak keeps the process's peak across the resets of resetPeakRSS.
	notePeak := func() {
		if kb, ok := peakRSSKB(); ok && kb > rec.PeakRSSKB {
			rec.PeakRSSKB = kb
		}
	}
	// ownPeak runs fn and returns the peak resident memory (MB) of fn alone:
	// the memory of earlier work is released and the high-water mark reset
	// first (0 where that is not possible).
	ownPeak := func(fn func() error) (float64, error) {
		notePeak()
		releaseMemory()
		reset := resetPeakRSS()
		if err := fn(); err != nil {
			return 0, err
		}
		if kb, ok := peakRSSKB(); ok && reset {
			return float64(kb) / 1024, nil
		}
		return 0, nil
	}
	quant := func(key string, opt brecq.Options) (BenchRun, error) {
		if err := opt.Validate(); err != nil {
			return BenchRun{}, fmt.Errorf("%s: %w", key, err)
		}
		fmt.Printf("timing %s: %s %s, W%dA%d, loss %s, %d/%d iterations per unit ... ", key, opt.Method, opt.Granularity,
			opt.WBits, opt.ABits, opt.Loss, opt.WeightIters, opt.ActIters)
		var run BenchRun
		peak, err := ownPeak(func() (err error) {
			run, err = timeCalibration(backend, net, params, calibT, opt)
			return err
		})
		if err != nil {
			return run, fmt.Errorf("%s: %w", key, err)
		}
		run.PeakRSSMB = peak
		rec.Runs[key] = run
		fmt.Printf("%.1f s, peak RSS %.0f MB (load %s)\n", run.Seconds, run.PeakRSSMB, loadAvg())
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
	fmt.Printf("timing the FP network (%g s each):\n", *fpSeconds)
	var fwd, step timing
	var n256 int
	fpPeakMB, err := ownPeak(func() (err error) {
		fwd, step, n256, err = timeFP(backend, net, params, ds, time.Duration(*fpSeconds*float64(time.Second)))
		return err
	})
	if err != nil {
		return err
	}
	rec.FPPeakRSSMB = fpPeakMB
	fmt.Printf("(load %s)\n", loadAvg())
	add(BenchRow{Measure: "FP inference, batch 256", Unit: "images/s", Here: float64(n256) / fwd.Median.Seconds(),
		Lo: float64(n256) / fwd.P90.Seconds(), Hi: float64(n256) / fwd.P10.Seconds()})
	add(BenchRow{Measure: "FP train step, batch 128", Unit: "s", Here: step.Median.Seconds(), Lo: step.P10.Seconds(), Hi: step.P90.Seconds(),
		Reference: refTrainStep128S})

	notePeak()
	if rec.PeakRSSKB > 0 {
		for _, key := range []string{"block-w2a4", "layer-w2a32", "fisher-w2a32", "full-w2a4"} {
			if r, ok := rec.Runs[key]; ok && r.PeakRSSMB > 0 {
				add(BenchRow{Measure: "peak resident memory during " + key, Unit: "MB", Here: r.PeakRSSMB})
			}
		}
		if fpPeakMB > 0 {
			add(BenchRow{Measure: "peak resident memory during the FP timing", Unit: "MB", Here: fpPeakMB})
		}
		add(BenchRow{Measure: "peak resident memory of the whole benchmark", Unit: "MB", Here: float64(rec.PeakRSSKB) / 1024})
	}
	rec.WallSeconds = time.Since(start).Seconds()
	fmt.Println()
	printBenchTable(rec.Rows)
	fmt.Printf("\nreference: %s; ratio = here / reference (time: above 1 is slower here).\n", referenceProvider)
	if net.Name != "resnet20" || ds.Kind != datasets.FashionMNIST {
		fmt.Printf("The references are for resnet20 on %s, not %s on %s.\n", datasets.FashionMNIST, net.Name, ds.Name)
	}
	fmt.Println("Live PyTorch timing is not implemented: the recorded reference is used.")
	fmt.Printf("(%s; backend %s; GOEXPERIMENT=%s; %d calibration images; %d/%d iterations per unit timed; wall %.0f s)\n",
		cpu, engine.Name(), rec.GOEXPERIMENT, *calib, *iters, *actIters, rec.WallSeconds)
	if *jsonOut != "" {
		if err := atomicfile.WriteJSON(*jsonOut, rec); err != nil {
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

// timeFP times FP inference at batch 256 of test images and one SGD step
// at batch 128 of training images (smaller batches if a split is smaller),
// each for about d after a warm-up (compilation) run, with go-benchmarks
// (which prints its table: mean, median, 10th / 90th percentiles, count).
// It returns both timings and the inference batch size.
func timeFP(backend compute.Backend, net *models.Net, params models.Params, ds *data, d time.Duration) (fwd, step timing, n256 int, err error) {
	ev, err := fptrain.NewEvaluator(backend, net, params)
	if err != nil {
		return fwd, step, 0, err
	}
	x256, _, err := ds.batch(ds.Test, seq(min(256, ds.testN())))
	if err != nil {
		return fwd, step, 0, err
	}
	tr, err := fptrain.NewTrainer(backend, net, params, fptrain.Options{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		return fwd, step, 0, err
	}
	x128, y, err := ds.batch(ds.Train, seq(min(128, ds.trainN())))
	if err != nil {
		return fwd, step, 0, err
	}
	y128 := tensors.FromFlatDataAndDimensions(y, len(y))
	ts, err := timeFuncs(d, []namedFunc{
		{"FP inference, batch 256", func() error { _, err := ev.Logits(x256); return err }},
		{"FP train step, batch 128", func() error { _, _, err := tr.Step(x128, y128, 0.01); return err }},
	})
	if err != nil {
		return fwd, step, 0, err
	}
	return ts[0], ts[1], x256.Shape().Dimensions[0], nil
}

// namedFunc is a function to time.
type namedFunc struct {
	name string
	fn   func() error
}

// timing is the distribution of a function's wall time.
type timing struct {
	Median, P10, P90 time.Duration
	Count            int
}

// timeFuncs runs each function once to warm up, then repeatedly for about
// d, with github.com/janpfeifer/go-benchmarks, which prints the table; the
// returned median and percentiles come from the same quantile estimator
// (github.com/streadway/quantile) over the timed runs. The first error of
// a function stops its timing and is returned.
func timeFuncs(d time.Duration, fns []namedFunc) ([]timing, error) {
	type state struct {
		est    *quantile.Estimator
		warmed bool
		err    error
	}
	states := make([]*state, len(fns))
	named := make([]benchmarks.NamedFunction, len(fns))
	for i, f := range fns {
		st := &state{est: quantile.New(quantile.Known(0.5, 0.001), quantile.Known(0.1, 0.001), quantile.Known(0.9, 0.001))}
		states[i] = st
		named[i] = benchmarks.NamedFunction{Name: f.name, Func: func() {
			if st.err != nil {
				return
			}
			t0 := time.Now()
			st.err = f.fn()
			if st.warmed {
				st.est.Add(float64(time.Since(t0)))
			}
			st.warmed = true
		}}
	}
	benchmarks.New(named...).WithWarmUps(1).WithDuration(d).WithQuantiles(10, 90).Done()
	out := make([]timing, len(fns))
	for i, st := range states {
		if st.err != nil {
			return nil, fmt.Errorf("%s: %w", fns[i].name, st.err)
		}
		if st.est.Samples() == 0 {
			return nil, fmt.Errorf("%s: no timed run in %v", fns[i].name, d)
		}
		out[i] = timing{Median: time.Duration(st.est.Get(0.5)), P10: time.Duration(st.est.Get(0.1)),
			P90: time.Duration(st.est.Get(0.9)), Count: st.est.Samples()}
	}
	return out, nil
}

// seq is 0, 1, …, n−1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
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
