package optim

import (
	"math"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

func TestCosineLR(t *testing.T) {
	for _, c := range []struct {
		base        float64
		step, total int
		want        float64
	}{
		{0.1, 0, 1000, 0.1},
		{0.1, 1000, 1000, 0},
		{0.1, 500, 1000, 0.05},
		{0.1, 250, 1000, 0.1 * (2 + math.Sqrt2) / 4},
		{0.1, 750, 1000, 0.1 * (2 - math.Sqrt2) / 4},
		{0.4, 0, 1, 0.4},
		{0.4, 1, 1, 0},
		// Clamped outside [0, iters]; no schedule without iterations.
		{1e-3, 150, 100, 0},
		{1e-3, -5, 100, 1e-3},
		{1e-3, 3, 0, 1e-3},
		{1e-3, 25, 100, 1e-3 * 0.5 * (1 + math.Sqrt2/2)},
	} {
		if got := CosineLR(c.base, c.step, c.total); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("CosineLR(%g, %d, %d) = %.17g, want %.17g", c.base, c.step, c.total, got, c.want)
		}
	}
	prev := math.Inf(1)
	for s := 0; s <= 100; s++ {
		lr := CosineLR(1, s, 100)
		if lr > prev || lr < 0 {
			t.Fatalf("not decreasing in [0, base]: step %d lr %g after %g", s, lr, prev)
		}
		prev = lr
	}
}

// TestCrossEntropyByHand: per image −log softmax at the label against values
// computed by hand (row 1: log(1 + e⁻¹ + e⁻²); row 2: log 3; row 3:
// log(1 + e⁵)), the mean, and the gradient softmax − onehot of the sum.
func TestCrossEntropyByHand(t *testing.T) {
	backend, err := compute.NewWithConfig("go")
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExec(backend, func(l, y *graph.Node) (*graph.Node, *graph.Node, *graph.Node) {
		per := CrossEntropyPerImage(l, y)
		return per, CrossEntropy(l, y), graph.Gradient(graph.ReduceAllSum(per), l)[0]
	})
	if err != nil {
		t.Fatal(err)
	}
	logits := []float32{1, 2, 3, 0, 0, 0, 0, 5, -1000}
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(logits, 3, 3), tensors.FromFlatDataAndDimensions([]int32{2, 1, 0}, 3))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.40760596444438, 1.09861228866811, 5.00671534848858}
	per := tensors.MustCopyFlatData[float32](out[0])
	for i, w := range want {
		if math.Abs(float64(per[i])-w) > 1e-6*w {
			t.Errorf("row %d: %g, want %g", i, per[i], w)
		}
	}
	if mean, w := float64(tensors.ToScalar[float32](out[1])), (want[0]+want[1]+want[2])/3; math.Abs(mean-w) > 1e-6*w {
		t.Errorf("mean %g, want %g", mean, w)
	}
	grad := tensors.MustCopyFlatData[float32](out[2])
	labels := []int{2, 1, 0}
	for i := range 3 {
		z := 0.0
		for k := range 3 {
			z += math.Exp(float64(logits[3*i+k]))
		}
		for k := range 3 {
			g := math.Exp(float64(logits[3*i+k])) / z
			if k == labels[i] {
				g--
			}
			if math.Abs(float64(grad[3*i+k])-g) > 1e-6 {
				t.Errorf("gradient [%d,%d] = %g, want %g", i, k, grad[3*i+k], g)
			}
		}
	}
}
