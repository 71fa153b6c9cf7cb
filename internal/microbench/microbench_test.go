package microbench

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunFor checks the table go-benchmarks prints: the header names the median and the
// 10%/90% percentiles, each function has its row, every function ran its warm-ups plus at
// least one timed call, and the times of a function that sleeps 2 ms are at least 2 ms.
func TestRunFor(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	calls := map[string]int{}
	RunFor(60*time.Millisecond, true, 2,
		Named("sleep2ms", func() { calls["sleep2ms"]++; time.Sleep(2 * time.Millisecond) }),
		Named("noop", func() { calls["noop"]++ }))
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows, got:\n%s", out)
	}
	for _, col := range []string{"Median", "10%-tile", "90%-tile"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q has no %s", lines[0], col)
		}
	}
	if calls["sleep2ms"] < 3 || calls["noop"] < 3 {
		t.Errorf("calls %v: want ≥ 2 warm-ups + 1 timed call each", calls)
	}
	f := strings.Fields(lines[1])
	if f[0] != "sleep2ms" || len(f) != 6 {
		t.Fatalf("row %q", lines[1])
	}
	for _, s := range f[1:5] { // mean, median, 10%, 90%
		d, err := time.ParseDuration(strings.ReplaceAll(s, "µ", "u"))
		if err != nil || d < 2*time.Millisecond {
			t.Errorf("sleep2ms: %q (%v) below the 2 ms it sleeps: %q", s, err, lines[1])
		}
	}
}

func TestSkippedWithoutDuration(t *testing.T) {
	if *Duration != 0 {
		t.Skip("-bench_duration given")
	}
	ran := false
	t.Run("inner", func(t *testing.T) {
		Run(t, true, 0, Named("x", func() { ran = true }))
	})
	if ran {
		t.Error("Run timed a function without -bench_duration")
	}
}
