package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/brecq-go/brecq/brecq/runrecord"
)

func runReport(args []string) error {
	fs := newFlagSet("report", `Usage: brecq report RECORD.json...

Prints a Markdown table of quantization run records (written by 'brecq quantize --json'
and 'brecq mixed --json'). Any other file — another JSON, an unreadable or corrupt
one — is skipped with one line on stderr; the exit status is 1 when no file was a
run record.

Examples:
  brecq report results/*.json
`)
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no run records given")
	}
	var recs []QuantRecord
	for _, p := range fs.Args() {
		r, err := runrecord.Load(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "report: skipping: %v\n", err)
			continue
		}
		recs = append(recs, *r)
	}
	if len(recs) == 0 {
		return fmt.Errorf("none of the %d files given is a run record", fs.NArg())
	}
	fmt.Println("| W/A | method | granularity | loss | iters (W/A) | calib | top-1 (%) | test CE | calib CE | calibration (s) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	// FP and nearest rounding from --compare records, once per W/A, unless a
	// dedicated nearest run exists.
	// Nearest rounding depends on W/A and the calibration sample only.
	nearKey := func(r QuantRecord) string { return fmt.Sprint(r.Options.WBits, r.Options.ABits, r.Calib, r.CalibSeed) }
	have := map[string]bool{}
	for _, r := range recs {
		if r.Options.Method == "nearest" {
			have[nearKey(r)] = true
		}
	}
	fpShown := false
	var extra []QuantRecord
	for _, r := range recs {
		key := nearKey(r)
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
		if wa, wb := wbitsOf(recs[i]), wbitsOf(recs[j]); wa != wb {
			return wa > wb
		}
		if a.ABits != b.ABits {
			return a.ABits > b.ABits
		}
		if ci, cj := recs[i].Calib, recs[j].Calib; ci != cj {
			return ci > cj
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
		w, method := fmt.Sprint(o.WBits), string(o.Method)
		if r.Mixed != nil {
			w, method = fmt.Sprintf("%.2f", r.Mixed.AvgBits), "mixed "+method
		}
		if o.Loss == "fisher" && o.FisherDamped {
			loss = "fisher (|g|+1)²"
		} else if o.Loss == "fisher" && o.FisherMix != 1 {
			loss = fmt.Sprintf("fisher α=%g", o.FisherMix)
		}
		if o.Method == "qdrop" {
			method = fmt.Sprintf("qdrop p=%g", o.DropProb)
		}
		fmt.Printf("| W%sA%s | %s | %s | %s | %s | %d | %.2f | %s | %s | %s |\n", w, a, method, gran, loss, iters, r.Calib, r.QuantTop1, ce, cce, secs)
	}
	return nil
}

// wbitsOf is the weight bits a record sorts by: the average for mixed runs.
func wbitsOf(r QuantRecord) float64 {
	if r.Mixed != nil {
		return r.Mixed.AvgBits
	}
	return float64(r.Options.WBits)
}

func methodRank(r QuantRecord) int {
	o := r.Options
	rank := map[string]int{"nearest": 0, "adaround": 1, "brecq": 2, "qdrop": 4}[string(o.Method)] * 100
	if r.Mixed != nil {
		rank += 300
	}
	rank += map[string]int{"layer": 0, "block": 1, "stage": 2, "net": 3}[string(o.Granularity)] * 10
	if o.Loss == "fisher" {
		rank++
	}
	return rank
}
