package main

import (
	"runtime"
	"testing"
)

// TestResetPeakRSS checks the per-calibration peak of bench: touching 256 MB
// raises the high-water mark by about that much, and after the memory is
// released and the mark reset, it falls back to near the current resident
// size (never below it).
func TestResetPeakRSS(t *testing.T) {
	releaseMemory()
	before, ok := currentRSSKB()
	if !ok {
		t.Skip("/proc/self/status not readable")
	}
	const mb = 256
	buf := make([]byte, mb<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	peak1, ok := peakRSSKB()
	if !ok || peak1 < before+(mb-16)<<10 {
		t.Fatalf("peak after touching %d MB: %d KB, resident before %d KB", mb, peak1, before)
	}
	runtime.KeepAlive(buf)
	buf = nil
	releaseMemory()
	if !resetPeakRSS() {
		t.Skip("the kernel refuses /proc/self/clear_refs")
	}
	cur, _ := currentRSSKB()
	peak2, _ := peakRSSKB()
	if peak2 > peak1-(mb/2)<<10 || peak2 < cur {
		t.Errorf("peak after release and reset: %d KB (before reset %d KB, resident now %d KB)", peak2, peak1, cur)
	}
}
