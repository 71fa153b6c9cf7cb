//go:build !linux

package main

// peakRSSKB is not measured outside Linux (Maxrss is in different units elsewhere).
func peakRSSKB() (int64, bool) { return 0, false }
