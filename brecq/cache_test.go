package brecq

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

// TestDiskCacheEqualsMemory: a cache pushed past its bound onto disk
// returns the same minibatches, mean and transformed values as one in
// memory, for channel-first and batch-major layouts, and leaves no file.
func TestDiskCacheEqualsMemory(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		dims      []int
		batchAxis int
	}{{[]int{3, 10, 2, 2}, 1}, {[]int{10, 7}, 0}} {
		mem := &cache{expect: 20}
		disk := &cache{expect: 20, budget: &memBudget{limit: 16}, dir: dir}
		for range 2 { // two chunks of 10 images
			n := 1
			for _, d := range tc.dims {
				n *= d
			}
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			x := tensors.FromFlatDataAndDimensions(v, tc.dims...)
			if err := mem.appendTensor(x, tc.batchAxis); err != nil {
				t.Fatal(err)
			}
			if err := disk.appendTensor(x, tc.batchAxis); err != nil {
				t.Fatal(err)
			}
		}
		if mem.onDisk() || !disk.onDisk() {
			t.Fatalf("on disk: memory cache %v, bounded cache %v", mem.onDisk(), disk.onDisk())
		}
		if mem.bytes() != disk.bytes() {
			t.Errorf("bytes %d vs %d", mem.bytes(), disk.bytes())
		}
		idx := []int{19, 0, 7, 7, 12}
		if d := maxRelDiff(mustBatch(t, mem, idx), mustBatch(t, disk, idx)); d != 0 {
			t.Errorf("%v: batches differ (%g)", tc.dims, d)
		}
		mm, err := mem.mean()
		if err != nil {
			t.Fatal(err)
		}
		dm, err := disk.mean()
		if err != nil {
			t.Fatal(err)
		}
		if mm != dm {
			t.Errorf("%v: means %g vs %g", tc.dims, mm, dm)
		}
		sq := func(v float32) float32 { return v*v + 1 }
		if err := mem.apply(sq); err != nil {
			t.Fatal(err)
		}
		if err := disk.apply(sq); err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(mustBatch(t, mem, idx), mustBatch(t, disk, idx)); d != 0 {
			t.Errorf("%v: transformed batches differ (%g)", tc.dims, d)
		}
		disk.close()
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("cache files left behind: %v", es)
	}
}

// TestRunWithDiskCacheIsIdentical: a run whose caches all go to disk ends
// with exactly the rounding of the same run in memory.
func TestRunWithDiskCacheIsIdentical(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 32)
	run := func(limitMB float64) *Quantizer {
		opt := DefaultOptions(2, 32)
		opt.WeightIters, opt.Batch, opt.MaxCacheMB, opt.CacheDir = 20, 8, limitMB, t.TempDir()
		opt.Loss = LossFisher
		return runQuantizer(t, b, net, p, x, opt)
	}
	mem, disk := run(0), run(1e-6)
	onDisk := 0
	for _, u := range disk.Report.Units {
		if u.CacheOnDisk {
			onDisk++
		}
	}
	if onDisk == 0 {
		t.Fatal("no unit used the disk cache with a 1-byte bound")
	}
	for name, v := range mem.Q.V {
		if d := maxRelDiff(v, disk.Q.V[name]); d != 0 {
			t.Errorf("layer %s: V differs with the disk cache (%g)", name, d)
		}
	}
}

// mustBatch is c.batch(idx) as flat values.
func mustBatch(t *testing.T, c *cache, idx []int) []float32 {
	t.Helper()
	b, err := c.batch(idx)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float32](b)
}

// TestDiskCacheReadErrorIsReturned: when the cache file can no longer be
// read, batch and mean return an error naming the file instead of panicking.
func TestDiskCacheReadErrorIsReturned(t *testing.T) {
	c := &cache{expect: 4, budget: &memBudget{limit: 4}, dir: t.TempDir()}
	if err := c.appendTensor(tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6, 7, 8}, 4, 2), 0); err != nil {
		t.Fatal(err)
	}
	if !c.onDisk() {
		t.Fatal("cache not on disk")
	}
	if got := mustBatch(t, c, []int{2}); got[0] != 5 || got[1] != 6 {
		t.Fatalf("image 2 = %v, want [5 6]", got)
	}
	c.file.Close() // the file goes away under the cache
	if _, err := c.batch([]int{1}); err == nil || !strings.Contains(err.Error(), "disk cache") {
		t.Errorf("batch after the file closed: error %v, want a disk cache error", err)
	}
	if _, err := c.mean(); err == nil {
		t.Error("mean after the file closed: want an error")
	}
}
