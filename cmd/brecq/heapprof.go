package main

import (
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// startHeapProfile, when path is not empty (BRECQ_HEAPPROFILE), writes a heap
// profile (`go tool pprof -sample_index=inuse_space`) to path each time the
// live heap passes its previous peak by 10 % (checked every second), so the
// file describes the heap near its largest, and once more at the end as
// path.end. The returned function stops the sampling and writes path.end.
func startHeapProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	write := func(p string) {
		f, err := os.Create(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "brecq: BRECQ_HEAPPROFILE: %v\n", err)
			return
		}
		defer f.Close()
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			fmt.Fprintf(os.Stderr, "brecq: BRECQ_HEAPPROFILE: %v\n", err)
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				metrics.Read(sample)
				if v := sample[0].Value.Uint64(); v > peak+peak/10 {
					peak = v
					write(path)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		write(path + ".end")
	}
}
