package brecq

import (
	"fmt"
	"github.com/brecq-go/brecq/brecq/models"
	"testing"
)

// withChunkBytes runs fn with the caching passes' working-memory target set
// to b bytes.
func withChunkBytes(b int64, fn func()) {
	old := chunkBytes
	chunkBytes = b
	defer func() { chunkBytes = old }()
	fn()
}

func TestChunkSize(t *testing.T) {
	withChunkBytes(1<<30, func() {
		// ResNet-20's widest stream on 28×28 (16 channels): 128 images per
		// pass, and the activation range search's 256 in one pass.
		if got := chunkSize(16*28*28*4, maxChunk); got != 128 {
			t.Errorf("16×28×28 inputs: chunk %d, want 128", got)
		}
		if got := chunkSize(16*28*28*4, 256); got != 256 {
			t.Errorf("16×28×28 inputs, range search: chunk %d, want 256", got)
		}
		// Its Fisher pass (twice the work): still 128.
		if got := chunkSize(2*16*28*28*4, maxChunk); got != 128 {
			t.Errorf("16×28×28 inputs, Fisher: chunk %d, want 128", got)
		}
		// A 224×224 RGB image: ⌊2^30 / (48 · 602 112 B)⌋ = 37.
		if got := chunkSize(3*224*224*4, maxChunk); got != 37 {
			t.Errorf("3×224×224 inputs: chunk %d, want 37", got)
		}
		// ResNet-18's layer1 input (64×56×56): ⌊2^30 / (48 · 802 816)⌋ = 27.
		if got := chunkSize(64*56*56*4, maxChunk); got != 27 {
			t.Errorf("64×56×56 inputs: chunk %d, want 27", got)
		}
		// Its Fisher pass from the first block differentiates the whole
		// network: ⌊2^27 / 5 877 160⌋ = 22 images (models.TestBackwardWorkBytes);
		// from the last body block, 64·7·7 stage-3 work only: the cap, 128.
		r20, err := models.New("resnet20", 1, 28, 28, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := fisherBatch(r20, 0); got != 22 {
			t.Errorf("ResNet-20 Fisher pass from block 0: %d images, want 22", got)
		}
		if got := fisherBatch(r20, r20.LastBodyBlock()); got != maxChunk {
			t.Errorf("ResNet-20 Fisher pass from the last block: %d images, want %d", got, maxChunk)
		}
		if got := chunkSize(1<<40, maxChunk); got != 1 {
			t.Errorf("huge inputs: chunk %d, want 1", got)
		}
		if got := chunkSize(4, 7); got != 7 {
			t.Errorf("capped at 7: chunk %d", got)
		}
		// Evaluation batches, by hand: ResNet-20 on 1×28×28 works on
		// 4·784·(16 + 2·9·16 + 16) = 1 003 520 bytes per image in layer1,
		// ⌊2^27 / 1 003 520⌋ = 133; ResNet-18 at 3×224×224 on
		// 4·(3·224² + 2·49·3·112² + 64·112²) = 18 565 120 in its stem, 7.
		for _, c := range []struct {
			arch          string
			inC, size, at int
		}{{"resnet20", 1, 28, 133}, {"resnet18", 3, 224, 7}} {
			net, err := models.New(c.arch, c.inC, c.size, c.size, 10)
			if err != nil {
				t.Fatal(err)
			}
			if got := EvalBatch(net.ImageWorkBytes(), 500); got != c.at {
				t.Errorf("%s at %d×%d×%d: evaluation batch %d, want %d", c.arch, c.inC, c.size, c.size, got, c.at)
			}
		}
		if got := EvalBatch(1, 500); got != 500 {
			t.Errorf("a tiny network: evaluation batch %d, want the cap 500", got)
		}
		if got := EvalBatch(1<<40, 500); got != 1 {
			t.Errorf("a huge network: evaluation batch %d, want 1", got)
		}
	})
}

// TestChunkingDoesNotChangeCaches: the streams and every unit's cached
// input, output and Fisher weights agree to float32 rounding whether the
// caching passes run 128 images at a time, a few, or one. (Not bit for bit:
// the Go backend's matrix multiply rounds differently at other batch sizes,
// ~1e-7 relative; inputs of ResNet-20's size keep 128, see TestChunkSize.)
// Before the Fisher pass summed KL over images (it took the mean over the
// pass), the last, smaller chunk's g² were off by (128/22)² here.
func TestChunkingDoesNotChangeCaches(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 150) // two chunks of the default size
	q, err := NewQuantizer(b, net, p, x, DefaultOptions(2, 4))
	if err != nil {
		t.Fatal(err)
	}
	units, err := Units(net, Block)
	if err != nil {
		t.Fatal(err)
	}
	mode := q.weightMode(map[string]bool{}, nil, RoundNearest)
	// caches returns, per unit, the stream, input, output and Fisher weights.
	caches := func() [][]float32 {
		var all [][]float32
		s, err := q.imageStream()
		if err != nil {
			t.Fatal(err)
		}
		fs := &stream{block: 0, x: s.x.share()}
		for _, u := range units {
			if err := q.advance(s, u.first, mode); err != nil {
				t.Fatal(err)
			}
			if err := q.advance(fs, u.first, FPMode()); err != nil {
				t.Fatal(err)
			}
			in, out, err := q.capture(mode, u, false, s, nil, true, true)
			if err != nil {
				t.Fatal(err)
			}
			_, g2, err := q.capture(mode, u, true, s, fs, false, true)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, s.x.data, in.data, out.data, g2.data)
		}
		return all
	}
	want := caches()
	// 576 B per image at the input, 9 216 B at the first block.
	for _, cb := range []int64{1, 48 * 576 * 7, 48 * 9216 * 13} {
		withChunkBytes(cb, func() {
			got := caches()
			for i := range want {
				if len(got[i]) != len(want[i]) || len(want[i]) == 0 {
					t.Fatalf("chunk bytes %d: unit %s, cache %d: %d values, want %d", cb, units[i/4].Name, i%4, len(got[i]), len(want[i]))
				}
				// g² at the logits is (softmax(ŷ) − p_FP)²/128², a difference of
				// nearly equal probabilities: rounding grows to ~1e-4 there.
				tol := 2e-6
				if i%4 == 3 {
					tol = 1e-3
				}
				if d := maxRelDiff(got[i], want[i]); d > tol {
					t.Errorf("chunk bytes %d: unit %s, cache %d differs by %g (relative to its largest value)", cb, units[i/4].Name, i%4, d)
				}
			}
		})
	}
}

// TestMemoryBoundsDoNotChangeRun: a whole W2A4 run (Fisher loss, LSQ) ends
// with bit-identical rounding variables and quantizers when every cache is
// on disk; and every cache is closed at the end (nothing left held from the
// budget).
func TestMemoryBoundsDoNotChangeRun(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 150)
	run := func(maxMB float64) *Quantizer {
		opt := DefaultOptions(2, 4)
		opt.Loss, opt.WeightIters, opt.ActIters, opt.Batch, opt.MaxCacheMB = LossFisher, 6, 4, 16, maxMB
		opt.CacheDir = t.TempDir()
		q, err := NewQuantizer(b, net, p, x, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Run(); err != nil {
			t.Fatal(err)
		}
		if q.budget.used != 0 {
			t.Errorf("max-cache %g MB: %d bytes still held by caches after the run", maxMB, q.budget.used)
		}
		return q
	}
	state := func(q *Quantizer) string {
		return fmt.Sprint(q.Q.V, q.Q.WQ, q.Q.AQ)
	}
	want := run(0)
	if want.budget.peak == 0 {
		t.Fatal("no cache was held in memory")
	}
	// A bound below the smallest cache: everything on disk.
	small := run(1e-6)
	if small.budget.peak != 0 {
		t.Errorf("bound of 1 byte: %d bytes held in memory", small.budget.peak)
	}
	if state(small) != state(want) {
		t.Error("caches on disk: the run's result differs")
	}
	for _, u := range small.Report.Units {
		if u.Stage == "weights" && !u.CacheOnDisk {
			t.Errorf("unit %s: caches not on disk under a 1-byte bound", u.Unit)
		}
	}
}

// TestMemBudgetBoundsTheSum: the budget admits caches while their sum fits,
// sends the next one to disk, and takes a closed cache's bytes back (once,
// after its last owner's close).
func TestMemBudgetBoundsTheSum(t *testing.T) {
	bud := &memBudget{limit: 100}
	dir := t.TempDir()
	fill := func(c *cache) { // 5 images of 4 floats: 80 bytes
		t.Helper()
		if err := c.store(make([]float32, 20)); err != nil {
			t.Fatal(err)
		}
	}
	mk := func() *cache {
		c := newCache(5, bud, dir)
		c.dims = []int{4}
		c.n = 5
		fill(c)
		return c
	}
	a := mk()
	if a.onDisk() || bud.used != 80 {
		t.Fatalf("first cache: on disk %v, budget used %d, want memory and 80", a.onDisk(), bud.used)
	}
	b := mk()
	if !b.onDisk() || bud.used != 80 {
		t.Fatalf("second cache (sum 160 > 100): on disk %v, used %d, want disk and 80", b.onDisk(), bud.used)
	}
	a.share()
	a.close()
	if bud.used != 80 || a.data == nil {
		t.Fatalf("after one of two owners closed: used %d, data freed %v", bud.used, a.data == nil)
	}
	a.close()
	if bud.used != 0 || a.data != nil {
		t.Fatalf("after the last owner closed: used %d, data freed %v", bud.used, a.data == nil)
	}
	c := mk()
	if c.onDisk() || bud.used != 80 {
		t.Fatalf("after the release: on disk %v, used %d", c.onDisk(), bud.used)
	}
	b.close()
	c.close()
	if bud.used != 0 {
		t.Fatalf("used %d after closing everything", bud.used)
	}
}
