package datasets

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFolderLoad measures decoding + the evaluation transform (224,
// resize 256) of 500×375 JPEGs, ImageNet's most common size, through a
// Stream with 1 and 2 workers; reports images/s (wall) and the process's
// CPU milliseconds per image, which other load on the machine does not
// inflate.
func BenchmarkFolderLoad(b *testing.B) {
	root := filepath.Join(b.TempDir(), "val")
	rng := rand.New(rand.NewPCG(1, 1))
	const files = 16
	for k := range files {
		w, h := 500, 375
		if k%4 == 3 {
			w, h = h, w
		}
		writeFile(b, filepath.Join(root, "c", fmt.Sprintf("%02d.jpg", k)), encodeJPEG(b, testImage(rng, w, h, 10), 90))
	}
	f, err := NewFolderImages(root, 224, 0, ChannelNorm{})
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			idx := make([]int, files)
			for i := range idx {
				idx[i] = i
			}
			n := 0
			cpu0 := cpuSeconds()
			for b.Loop() {
				s := NewStream(f, idx, 8, LoadOptions{Workers: workers})
				for s.Next() {
					n += len(s.Batch().Indices)
				}
				if err := s.Err(); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
			b.ReportMetric(1000*(cpuSeconds()-cpu0)/float64(n), "cpu-ms/image")
		})
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
