package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestSetMemoryLimit: --mem-limit-mb sets the runtime's soft limit in 10⁶
// bytes, 0 removes it, and GOMEMLIMIT in the environment wins; the
// collector's target becomes defaultGCPercent (50) unless GOGC is set.
func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	oldGC := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldGC)
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	setMemoryLimit(1234)
	if got := debug.SetGCPercent(100); got != 50 {
		t.Errorf("GOGC unset: collector target %d %%, want 50", got)
	}
	t.Setenv("GOGC", "80")
	setMemoryLimit(1234)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: collector target changed to %d %%", got)
	}
	t.Setenv("GOGC", "")
	setMemoryLimit(1234)
	if got := debug.SetMemoryLimit(-1); got != 1234e6 {
		t.Errorf("--mem-limit-mb 1234: limit %d bytes, want 1234000000", got)
	}
	setMemoryLimit(0)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("--mem-limit-mb 0: limit %d, want none (MaxInt64)", got)
	}
	t.Setenv("GOMEMLIMIT", "3GiB")
	debug.SetMemoryLimit(777)
	setMemoryLimit(1234)
	if got := debug.SetMemoryLimit(-1); got != 777 {
		t.Errorf("with GOMEMLIMIT set: limit changed to %d", got)
	}
}
