// Package microbench runs the repository's micro-benchmarks as test functions
// (TestBench…) timed by github.com/janpfeifer/go-benchmarks, the way GoMLX's own
// modules use that library (go-xla's pjrt, onnx-gomlx): a TestBench… function is
// skipped unless the test binary gets -bench_duration, e.g.
//
//	go test -v -run TestBenchConvFwdBwd ./brecq/nn/ -bench_duration 2s
//
// and prints one row per function: mean, median and the 10th and 90th percentiles of
// the wall time of one call (quantiles estimated by github.com/streadway/quantile with
// tolerance 0.001), and the number of timed calls. The Go benchmarks (func Benchmark…,
// go test -bench) time the same code and stay as they are.
package microbench

import (
	"flag"
	"testing"
	"time"

	benchmarks "github.com/janpfeifer/go-benchmarks"
)

// Duration is the value of -bench_duration: how long each function is timed (0: the
// TestBench… functions are skipped).
var Duration = flag.Duration("bench_duration", 0, "time each micro-benchmark function for this long (TestBench… functions; 0 skips them)")

// Quantiles are the percentiles printed beside the mean and median.
var Quantiles = []int{10, 90}

// Named returns a go-benchmarks function.
func Named(name string, fn func()) benchmarks.NamedFunction {
	return benchmarks.NamedFunction{Name: name, Func: fn}
}

// Enabled skips t unless -bench_duration is positive; call it before any expensive set-up.
func Enabled(t testing.TB) {
	t.Helper()
	if *Duration <= 0 {
		t.Skip("micro-benchmark: skipped without -bench_duration (e.g. -bench_duration 2s)")
	}
}

// Run times each of fns for *Duration after warmUps untimed calls and prints the table
// (header only when header is true, so that several Run calls make one table). The
// functions run on t's goroutine, so they may call t.Fatal.
func Run(t testing.TB, header bool, warmUps int, fns ...benchmarks.NamedFunction) {
	t.Helper()
	Enabled(t)
	RunFor(*Duration, header, warmUps, fns...)
}

// RunFor is Run with an explicit duration (no skipping).
func RunFor(d time.Duration, header bool, warmUps int, fns ...benchmarks.NamedFunction) {
	benchmarks.New(fns...).WithDuration(d).WithWarmUps(warmUps).WithQuantiles(Quantiles...).WithHeader(header).WithColumnSize(11).Done()
}
