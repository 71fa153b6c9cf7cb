//go:build !linux

package main

// peakRSSKB is not measured outside Linux (Maxrss is in different units elsewhere).
func peakRSSKB() (int64, bool) { return 0, false }

// resetPeakRSS is not available outside Linux.
func resetPeakRSS() bool { return false }

// currentRSSKB is not measured outside Linux.
func currentRSSKB() (int64, bool) { return 0, false }
