package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/brecq-go/brecq/brecq"
	"github.com/brecq-go/brecq/brecq/mixed"
	"github.com/brecq-go/brecq/brecq/runrecord"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// parseBudget reads --budget: average bits per searched weight ("3",
// "2.5") or a size of the searched weights in bytes ("20000B", "20kB",
// "1.5MB"; k = 1000). It returns the budget in bits.
func parseBudget(s string, params int64) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 0.0
	for _, u := range []struct {
		suf string
		m   float64
	}{{"MB", 8e6}, {"kB", 8e3}, {"KB", 8e3}, {"B", 8}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("--budget %q: want average bits per weight (e.g. 3) or bytes (e.g. 20kB)", s)
	}
	if mult == 0 {
		if v > 32 {
			return 0, fmt.Errorf("--budget %q: %g bits per weight is more than 32 (bytes need a unit: B, kB, MB)", s, v)
		}
		return v * float64(params), nil
	}
	return v * mult, nil
}

func parseCandidates(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("--candidates %q: %q is not an integer", s, f)
		}
		if err := brecq.ValidateBits(b); err != nil {
			return nil, fmt.Errorf("--candidates %q: %w", s, err)
		}
		out = append(out, b)
	}
	sort.Ints(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, fmt.Errorf("--candidates %q: %d given twice", s, out[i])
		}
	}
	return out, nil
}

func runMixed(args []string) error {
	fs := newFlagSet("mixed", `Usage: brecq mixed [flags]

Mixed-precision BRECQ (paper §3.4): measures every residual block's
Fisher-weighted output error for every combination of candidate bit-widths
of its layers (weights rounded to nearest), searches per-layer bit-widths
with a genetic algorithm minimising the summed sensitivity under a size
budget, then reconstructs with those bit-widths and evaluates.
The stem and the classifier stay at --first-last-bits and are not counted
in the budget.

Examples:
  brecq mixed --budget 3 --abits 32 --iters 300 --sens results/sens.json
  brecq mixed --budget 2.5 --abits 4 --candidates 2,3,4 --assign bits.json
  brecq mixed --budget 30kB --search-only --sens results/sens.json
`)
	f := addQuantFlags(fs)
	budget := fs.String("budget", "3", "model-size budget of the searched layers: average bits per weight (e.g. 2.5, 3) or bytes (e.g. 40kB)")
	cands := fs.String("candidates", "2,4,8", "candidate weight bit-widths, comma-separated")
	sensImages := fs.Int("sens-images", 256, "calibration images the sensitivity is averaged over")
	sensPath := fs.String("sens", "", "sensitivity cache (JSON): read when it exists, else measured and written there")
	bitops := fs.Float64("max-bitops", 0, "optional BitOPs budget Σ MACs·wbits·abits per image over the searched layers (0 = none)")
	pop := fs.Int("ga-population", 50, "genetic search: population")
	gens := fs.Int("ga-generations", 200, "genetic search: generations")
	assign := fs.String("assign", "", "write the chosen per-layer bit-widths (JSON) here")
	searchOnly := fs.Bool("search-only", false, "stop after the search (no reconstruction)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The budget's syntax is checked before any work (its value in bits
	// needs the searched layers' size, known after loading).
	if _, err := parseBudget(*budget, 1); err != nil {
		return err
	}
	candidates, err := parseCandidates(*cands)
	if err != nil {
		return err
	}
	// Every searched layer gets its own bit-width; --wbits only has to be valid.
	*f.wbits = candidates[0]
	opt, err := f.options()
	if err != nil {
		return err
	}
	if *sensImages < 1 {
		return fmt.Errorf("--sens-images %d: need at least one image", *sensImages)
	}
	if *pop < 2 || *gens < 1 {
		return fmt.Errorf("--ga-population %d / --ga-generations %d: need at least 2 and 1", *pop, *gens)
	}
	if err := checkFloats(floatFlag{"max-bitops", bitops, nonNegative}); err != nil {
		return err
	}
	// The sensitivity cache is an input when it exists, else an output.
	sensOut, sensIn := []namedPath{{"--assign", *assign}}, []namedPath(nil)
	if _, err := os.Stat(*sensPath); *sensPath != "" && errIsNotExist(err) {
		sensOut = append(sensOut, namedPath{"--sens", *sensPath})
	} else {
		sensIn = append(sensIn, namedPath{"--sens", *sensPath})
	}
	if *searchOnly {
		if err := checkPaths(sensOut, append(sensIn, namedPath{"--model", *f.model})); err != nil {
			return err
		}
	} else if err := f.paths(sensOut, sensIn); err != nil {
		return err
	}
	e, err := f.load()
	if err != nil {
		return err
	}
	want := brecq.SensitivityFile{Checkpoint: *f.model, Model: e.net.Name, Data: e.ds.Name, Calib: *f.calib, CalibSeed: *f.seed,
		Options: brecq.SensitivityOptions{Candidates: candidates, Images: min(*sensImages, *f.calib)}}
	var sf *brecq.SensitivityFile
	if *sensPath != "" {
		if _, err := os.Stat(*sensPath); err == nil {
			if sf, err = brecq.LoadSensitivityFile(*sensPath, &want); err != nil {
				return err
			}
			fmt.Printf("sensitivity: read %s (measured in %.0f s)\n", *sensPath, sf.Seconds)
		}
	}
	if sf == nil {
		mopt := withMethod(opt, brecq.MethodNearest)
		mopt.Progress = opt.Progress
		mq, err := brecq.NewQuantizer(e.backend, e.net, e.params, e.calib, mopt)
		if err != nil {
			return err
		}
		t0 := time.Now()
		prob, err := mq.MeasureSensitivity(e.calibLabels, want.Options)
		if err != nil {
			return err
		}
		sf = &want
		sf.Problem, sf.Seconds = prob, time.Since(t0).Seconds()
		fmt.Printf("sensitivity: %d blocks, %d layers, candidates %v, %d images, %.0f s\n",
			len(prob.Blocks), len(prob.Layers), candidates, want.Options.Images, sf.Seconds)
		if *sensPath != "" {
			if err := sf.Save(*sensPath); err != nil {
				return err
			}
			fmt.Printf("wrote %s\n", *sensPath)
		}
	}
	prob := *sf.Problem
	prob.ABits = opt.ABits
	var params int64
	for _, l := range prob.Layers {
		params += l.Params
	}
	if prob.MaxBits, err = parseBudget(*budget, params); err != nil {
		return err
	}
	prob.MaxBitOPs = *bitops
	if err := prob.Validate(); err != nil {
		return fmt.Errorf("--budget %s: %w", *budget, err)
	}
	cfg := mixed.DefaultGAConfig()
	cfg.Population, cfg.Generations, cfg.Seed = *pop, *gens, *f.seed
	if cfg.Elite >= cfg.Population {
		cfg.Elite = cfg.Population / 2
	}
	t0 := time.Now()
	res, err := mixed.SearchGA(&prob, cfg)
	if err != nil {
		return err
	}
	mix := &runrecord.Mixed{BudgetAvgBits: prob.MaxBits / float64(params), AvgBits: prob.AverageBits(res.Bits),
		Candidates: candidates, Bits: map[string]int{}, Sensitivity: res.Sensitivity, SizeBits: res.SizeBits,
		SensFile: *sensPath, SensImages: want.Options.Images, SensSeconds: sf.Seconds,
		SearchSeconds: time.Since(t0).Seconds(), Evaluations: res.Evaluations, UniformSensitivity: map[string]float64{}}
	fmt.Printf("\nsearch: budget %.3f bits/weight (%d weights), found %.3f bits/weight, sensitivity %.4g (%d evaluations, %.1f s)\n",
		mix.BudgetAvgBits, params, mix.AvgBits, res.Sensitivity, res.Evaluations, mix.SearchSeconds)
	for _, c := range candidates {
		u := make([]int, len(prob.Layers))
		for i := range u {
			u[i] = c
		}
		if s, size, _, err := prob.Cost(u); err == nil && size <= prob.MaxBits {
			mix.UniformSensitivity[fmt.Sprint(c)] = s
			fmt.Printf("  uniform %d bits: sensitivity %.4g\n", c, s)
		}
	}
	fmt.Printf("\n| layer | weights | bits |\n|---|---|---|\n")
	opt.LayerBits = map[string]int{}
	for i, l := range prob.Layers {
		mix.Bits[l.Name] = res.Bits[i]
		opt.LayerBits[l.Name] = res.Bits[i]
		fmt.Printf("| %s | %d | %d |\n", l.Name, l.Params, res.Bits[i])
	}
	// --assign is written with --out and --json at the end.
	outs := &atomicfile.Batch{}
	defer outs.Discard()
	if *assign != "" {
		if err := outs.AddJSON(*assign, mix); err != nil {
			return err
		}
	}
	if *searchOnly {
		if err := outs.Commit(); err != nil {
			return err
		}
		if *assign != "" {
			fmt.Printf("wrote %s\n", *assign)
		}
		return nil
	}
	rec := f.record("mixed", args, e, opt)
	rec.Mixed = mix
	fmt.Printf("\nmixed %s: method %s, W%.2f (mixed) A%d, granularity %s, loss %s, %d/%d iterations per unit, %d calibration images\n",
		e.net.Name, opt.Method, mix.AvgBits, opt.ABits, opt.Granularity, opt.Loss, opt.WeightIters, opt.ActIters, *f.calib)
	q, err := brecq.NewQuantizer(e.backend, e.net, e.params, e.calib, opt)
	if err != nil {
		return err
	}
	label := fmt.Sprintf("mixed %s (%s, %s) W%.2fA%d", opt.Method, opt.Granularity, opt.Loss, mix.AvgBits, opt.ABits)
	return f.runAndReport(e, q, &rec, label, outs, *assign)
}
