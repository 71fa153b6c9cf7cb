package datasets

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestNormalizationValues(t *testing.T) {
	for _, c := range []struct {
		norm Normalization
		p    uint8
		want float64
	}{
		{FashionMNISTNorm, 255, (1 - 0.2860) / 0.3530}, // 2.022662...
		{FashionMNISTNorm, 0, (0 - 0.2860) / 0.3530},   // -0.810198...
		{MNISTNorm, 255, (1 - 0.1307) / 0.3081},        // 2.821486...
		{MNISTNorm, 0, -0.1307 / 0.3081},               // -0.424212...
		{MNISTNorm, 51, (0.2 - 0.1307) / 0.3081},       // 51/255 = 0.2
	} {
		if got := c.norm.Value(c.p); !near(float64(got), c.want) {
			t.Errorf("%+v.Value(%d) = %v, want %v", c.norm, c.p, got, c.want)
		}
	}
	if got := FashionMNISTNorm.Value(255); !near(float64(got), 2.0226629) {
		t.Errorf("Fashion-MNIST pixel 255 -> %v, want 2.0226629", got)
	}
}

func tinySplit() *Split {
	return &Split{
		Images: []uint8{1, 2, 3, 4, 5, 6, 0, 51, 255, 7, 8, 9},
		Labels: []uint8{7, 3},
		N:      2, H: 2, W: 3,
	}
}

func TestBatch(t *testing.T) {
	s := tinySplit()
	n := MNISTNorm
	x, y, err := s.Batch([]int{1, 0, 1}, n)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{}
	for _, img := range [][]uint8{{0, 51, 255, 7, 8, 9}, {1, 2, 3, 4, 5, 6}, {0, 51, 255, 7, 8, 9}} {
		for _, p := range img {
			want = append(want, (float64(p)/255-0.1307)/0.3081)
		}
	}
	if len(x) != len(want) {
		t.Fatalf("len(x) = %d, want %d (3x1x2x3)", len(x), len(want))
	}
	for i := range x {
		if !near(float64(x[i]), want[i]) {
			t.Errorf("x[%d] = %v, want %v", i, x[i], want[i])
		}
	}
	if !slices.Equal(y, []int32{3, 7, 3}) {
		t.Errorf("y = %v, want [3 7 3]", y)
	}
	if _, _, err := s.Batch([]int{2}, n); err == nil {
		t.Error("index 2 of a 2-image split: no error")
	}
	if _, _, err := s.Batch([]int{-1}, n); err == nil {
		t.Error("index -1: no error")
	}
}

func TestCropFlip(t *testing.T) {
	// 4x4 image with pixels 1..16; identity table so values are pixels and
	// padding shows as 0.
	src := make([]uint8, 16)
	for i := range src {
		src[i] = uint8(i + 1)
	}
	var id [256]float32
	for i := range id {
		id[i] = float32(i)
	}
	for _, c := range []struct {
		name   string
		dy, dx int
		flip   bool
		want   []float32
	}{
		{"centre", 2, 2, false, []float32{
			1, 2, 3, 4,
			5, 6, 7, 8,
			9, 10, 11, 12,
			13, 14, 15, 16}},
		{"centre-flip", 2, 2, true, []float32{
			4, 3, 2, 1,
			8, 7, 6, 5,
			12, 11, 10, 9,
			16, 15, 14, 13}},
		{"top-left", 0, 0, false, []float32{
			0, 0, 0, 0,
			0, 0, 0, 0,
			0, 0, 1, 2,
			0, 0, 5, 6}},
		{"bottom-right", 4, 4, false, []float32{
			11, 12, 0, 0,
			15, 16, 0, 0,
			0, 0, 0, 0,
			0, 0, 0, 0}},
		// Crop shifts source rows by +1 and columns by -1, then mirrors:
		// out(y,x) = src(y+1, 2-x).
		{"shift-flip", 3, 1, true, []float32{
			7, 6, 5, 0,
			11, 10, 9, 0,
			15, 14, 13, 0,
			0, 0, 0, 0}},
	} {
		dst := make([]float32, 16)
		cropFlip(dst, src, 4, 4, 2, c.dy, c.dx, c.flip, &id)
		if !slices.Equal(dst, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, dst, c.want)
		}
	}

	// With the real table the padding is the normalised value of pixel 0.
	dst := make([]float32, 16)
	cropFlip(dst, src, 4, 4, 2, 0, 0, false, FashionMNISTNorm.table())
	if pad := float64(dst[0]); !near(pad, -0.2860/0.3530) {
		t.Errorf("padding = %v, want (0-0.2860)/0.3530 = %v", pad, -0.2860/0.3530)
	}
	if v := float64(dst[10]); !near(v, (1.0/255-0.2860)/0.3530) {
		t.Errorf("pixel 1 -> %v", v)
	}
}

func TestAugmentedBatch(t *testing.T) {
	// 50 random 6x5 images.
	r := rand.New(rand.NewPCG(1, 2))
	s := &Split{N: 50, H: 6, W: 5, Images: make([]uint8, 50*30), Labels: make([]uint8, 50)}
	for i := range s.Images {
		s.Images[i] = uint8(r.IntN(256))
	}
	for i := range s.Labels {
		s.Labels[i] = uint8(i % 10)
	}
	idx := EpochPermutation(s.N, 9, 0)
	run := func(seed uint64, aug Augment) ([]float32, []int32) {
		x, y, err := s.AugmentedBatch(idx, MNISTNorm, aug, rand.New(rand.NewPCG(seed, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return x, y
	}
	x1, y1 := run(42, DefaultAugment)
	x2, y2 := run(42, DefaultAugment)
	x3, _ := run(43, DefaultAugment)
	if !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Error("same seed gave different batches")
	}
	if slices.Equal(x1, x3) {
		t.Error("different seeds gave the same batch")
	}
	// No augmentation equals the plain batch.
	x0, y0 := run(42, Augment{})
	xb, yb, _ := s.Batch(idx, MNISTNorm)
	if !slices.Equal(x0, xb) || !slices.Equal(y0, yb) || !slices.Equal(y1, yb) {
		t.Error("Augment{} differs from Batch")
	}
	// Reproduce the documented draws by hand for the first image.
	rng := rand.New(rand.NewPCG(42, 0))
	dy, dx, flip := rng.IntN(5), rng.IntN(5), rng.IntN(2) == 1
	want := make([]float32, 30)
	cropFlip(want, s.Image(idx[0]), 6, 5, 2, dy, dx, flip, MNISTNorm.table())
	if !slices.Equal(x1[:30], want) {
		t.Error("first image does not follow the documented draw order")
	}
	if _, _, err := s.AugmentedBatch(idx, MNISTNorm, DefaultAugment, nil); err == nil {
		t.Error("nil rng: no error")
	}
	if _, _, err := s.AugmentedBatch(idx, MNISTNorm, Augment{Pad: -1}, rng); err == nil {
		t.Error("negative pad: no error")
	}
}

func isPermutation(p []int, n int) bool {
	s := slices.Sorted(slices.Values(p))
	for i, v := range s {
		if v != i {
			return false
		}
	}
	return len(p) == n
}

func TestEpochPermutation(t *testing.T) {
	a := EpochPermutation(1000, 5, 0)
	if !isPermutation(a, 1000) {
		t.Fatal("not a permutation")
	}
	if !slices.Equal(a, EpochPermutation(1000, 5, 0)) {
		t.Error("same seed and epoch gave different permutations")
	}
	if slices.Equal(a, EpochPermutation(1000, 5, 1)) || slices.Equal(a, EpochPermutation(1000, 6, 0)) {
		t.Error("different epoch or seed gave the same permutation")
	}
}

func TestMinibatches(t *testing.T) {
	p := []int{0, 1, 2, 3, 4, 5, 6}
	got := Minibatches(p, 3, false)
	if len(got) != 3 || !slices.Equal(got[0], []int{0, 1, 2}) || !slices.Equal(got[2], []int{6}) {
		t.Errorf("keep last: %v", got)
	}
	if got := Minibatches(p, 3, true); len(got) != 2 || !slices.Equal(got[1], []int{3, 4, 5}) {
		t.Errorf("drop last: %v", got)
	}
	if got := Minibatches(p, 0, false); got != nil {
		t.Errorf("batch size 0: %v", got)
	}
}

func TestSampleCalibration(t *testing.T) {
	s := &Split{N: 60000, H: 1, W: 1, Images: make([]uint8, 60000), Labels: make([]uint8, 60000)}
	a, err := SampleCalibration(s, 1024, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SampleCalibration(s, 1024, 7)
	c, _ := SampleCalibration(s, 1024, 8)
	if len(a) != 1024 || !slices.Equal(a, b) {
		t.Error("same seed gave different indices")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds gave the same indices")
	}
	seen := map[int]bool{}
	for _, i := range a {
		if i < 0 || i >= s.N || seen[i] {
			t.Fatalf("index %d out of range or repeated", i)
		}
		seen[i] = true
	}
	// The calibration stream differs from the epoch-0 shuffle of the same seed.
	if slices.Equal(a, EpochPermutation(s.N, 7, 0)[:1024]) {
		t.Error("calibration sample equals the epoch-0 shuffle")
	}
	all, err := SampleCalibration(s, s.N, 7)
	if err != nil || !isPermutation(all, s.N) {
		t.Errorf("n = N: %v", err)
	}
	for _, n := range []int{0, -1, s.N + 1} {
		if _, err := SampleCalibration(s, n, 7); err == nil {
			t.Errorf("n = %d: no error", n)
		}
	}
}
