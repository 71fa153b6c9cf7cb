package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// peakRSSKB is the peak resident set size of this process in KB: VmHWM of
// /proc/self/status (the high-water mark, which resetPeakRSS lowers to the
// current resident size), or Maxrss of getrusage (KB on Linux) where that
// file cannot be read.
func peakRSSKB() (int64, bool) {
	if kb, ok := statusKB("VmHWM:"); ok {
		return kb, true
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return int64(ru.Maxrss), true
}

// resetPeakRSS sets the high-water mark peakRSSKB reports back to the
// current resident size (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0),
// so that the next reading is the peak of the work done in between. It
// reports whether the kernel took it.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// currentRSSKB is the resident set size now (VmRSS), in KB.
func currentRSSKB() (int64, bool) { return statusKB("VmRSS:") }

// statusKB reads the "key  N kB" line of /proc/self/status.
func statusKB(key string) (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(key)) {
			continue
		}
		f := bytes.Fields(line[len(key):])
		if len(f) < 1 {
			return 0, false
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		return n, err == nil
	}
	return 0, false
}
