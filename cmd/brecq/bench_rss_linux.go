package main

import "syscall"

// peakRSSKB is the peak resident set size of this process in KB (Maxrss of getrusage, KB on Linux).
func peakRSSKB() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return int64(ru.Maxrss), true
}
