package main

import (
	"flag"
	"fmt"
	"sort"

	"github.com/brecq-go/brecq/brecq/runrecord"
)

func init() { extraCommands["report"] = runReport }

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: brecq report RECORD.json...

Prints a Markdown table of quantization run records (written by 'brecq quantize --json').

Examples:
  brecq report results/*.json
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no run records given")
	}
	var recs []QuantRecord
	for _, p := range fs.Args() {
		r, err := runrecord.Load(p)
		if err != nil {
			return err
		}
		recs = append(recs, *r)
	}
	fmt.Println("| W/A | method | granularity | loss | iters (W/A) | calib | top-1 (%) | test CE | calib CE | calibration (s) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	// FP and nearest rounding from --compare records, once per W/A, unless a
	// dedicated nearest run exists.
	have := map[string]bool{}
	for _, r := range recs {
		if r.Options.Method == "nearest" {
			have[fmt.Sprint(r.Options.WBits, r.Options.ABits)] = true
		}
	}
	fpShown := false
	var extra []QuantRecord
	for _, r := range recs {
		key := fmt.Sprint(r.Options.WBits, r.Options.ABits)
		if r.FPTop1 > 0 && !fpShown {
			fpShown = true
			fmt.Printf("| FP | – | – | – | – | – | %.2f | – | – | – |\n", r.FPTop1)
		}
		if r.NearestTop1 > 0 && !have[key] {
			have[key] = true
			n := r
			n.Options.Method = "nearest"
			n.QuantTop1, n.TestLoss, n.CalibLoss, n.CalibSeconds = r.NearestTop1, 0, 0, 0
			extra = append(extra, n)
		}
	}
	recs = append(recs, extra...)
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i].Options, recs[j].Options
		if a.WBits != b.WBits {
			return a.WBits > b.WBits
		}
		if a.ABits != b.ABits {
			return a.ABits > b.ABits
		}
		return methodRank(recs[i]) < methodRank(recs[j])
	})
	for _, r := range recs {
		o := r.Options
		a := fmt.Sprint(o.ABits)
		if o.ABits >= 32 {
			a = "32"
		}
		gran, loss, iters := string(o.Granularity), string(o.Loss), fmt.Sprintf("%d/%d", o.WeightIters, o.ActIters)
		if o.Method == "nearest" {
			gran, loss, iters = "–", "–", "–"
		}
		if o.ABits >= 32 && o.Method != "nearest" {
			iters = fmt.Sprintf("%d/–", o.WeightIters)
		}
		ce, cce, secs := fmt.Sprintf("%.3f", r.TestLoss), fmt.Sprintf("%.3f", r.CalibLoss), fmt.Sprintf("%.0f", r.CalibSeconds)
		if r.TestLoss == 0 {
			ce, cce, secs = "–", "–", "–"
		}
		fmt.Printf("| W%dA%s | %s | %s | %s | %s | %d | %.2f | %s | %s | %s |\n", o.WBits, a, o.Method, gran, loss, iters, r.Calib, r.QuantTop1, ce, cce, secs)
	}
	return nil
}

func methodRank(r QuantRecord) int {
	o := r.Options
	rank := map[string]int{"nearest": 0, "adaround": 1, "brecq": 2}[string(o.Method)] * 100
	rank += map[string]int{"layer": 0, "block": 1, "stage": 2, "net": 3}[string(o.Granularity)] * 10
	if o.Loss == "fisher" {
		rank++
	}
	return rank
}
