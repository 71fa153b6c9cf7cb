package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/brecq-go/brecq/brecq"
)

// TestBenchRuns runs `brecq bench` with a tiny budget on the fake data set
// and checks the table and the JSON record.
func TestBenchRuns(t *testing.T) {
	dir := t.TempDir()
	args := []string{"bench", "--model", ckpt, "--depth", "8", "--iters", "2", "--act-iters", "2", "--calib", "16",
		"--fp-seconds", "0.3", "--json", "bench.json"}
	r := run(t, dir, args...)
	expect(t, r, 0, args)
	for _, want := range []string{"| measure | here | reference | ratio | load avg |",
		"weight iteration, mean of the 4 units' medians", "| 3.30 ms |", "activation iteration, stage-2 block layer2.0",
		"layer-wise weight iteration", "Fisher (gradient) pass", "2000/500 iterations per unit", "extrapolated",
		"FP train step, batch 128", "recorded reference is used", "not resnet8 on",
		"Benchmarks:", "Median", "10%-tile", "90%-tile"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec BenchRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.CPU == "" || rec.Cores < 1 || rec.GoVersion == "" || rec.GOEXPERIMENT == "" || !strings.HasPrefix(rec.Backend, "go") {
		t.Errorf("machine fields: cpu %q, cores %d, go %q, GOEXPERIMENT %q, backend %q", rec.CPU, rec.Cores, rec.GoVersion, rec.GOEXPERIMENT, rec.Backend)
	}
	if len(rec.Runs["block-w2a4"].Units) == 0 || len(rec.Runs["layer-w2a32"].Units) == 0 || rec.PeakRSSKB <= 0 {
		t.Errorf("record lacks runs or peak RSS: %d runs, peak %d KB", len(rec.Runs), rec.PeakRSSKB)
	}
	if runtime.GOOS == "linux" && resetPeakRSS() {
		for key, r := range rec.Runs {
			if !(r.PeakRSSMB > 0 && r.PeakRSSMB <= float64(rec.PeakRSSKB)/1024) {
				t.Errorf("run %s: peak RSS %.1f MB, want in (0, the whole benchmark's %.1f MB]", key, r.PeakRSSMB, float64(rec.PeakRSSKB)/1024)
			}
		}
	}
	for _, row := range rec.Rows {
		if !(row.Here > 0) || (row.Reference > 0) != (row.Ratio > 0) {
			t.Errorf("row %+v: figure not positive or ratio without reference", row)
		}
	}
	for _, row := range rec.Rows {
		if strings.HasPrefix(row.Measure, "FP ") && !(row.Lo > 0 && row.Lo <= row.Here && row.Here <= row.Hi) {
			t.Errorf("FP row %+v: want 0 < p10 <= median <= p90", row)
		}
	}
	args = []string{"bench", "--iters", "1"}
	expect(t, run(t, "", args...), 1, args, "--iters 1")
	args = []string{"bench", "--fp-seconds", "0"}
	expect(t, run(t, "", args...), 1, args, "--fp-seconds 0", "(0, ∞)")
}

func TestExtrapolate(t *testing.T) {
	run := BenchRun{Seconds: 10, Units: []brecq.UnitReport{
		{Stage: "weights", Iters: 30, IterMS: 20},
		{Stage: "activations", Iters: 30, IterMS: 40},
	}}
	// 10 s measured + (2000−30)·0.02 s + (500−30)·0.04 s.
	if got, want := extrapolate(run, 2000, 500), 10+1970*0.02+470*0.04; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("extrapolate = %g, want %g", got, want)
	}
}
