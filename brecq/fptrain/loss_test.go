package fptrain

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

// TestSumCrossEntropy checks the host cross-entropy against hand values:
// logits (0, ln 3) with label 1 → −log(3/4); logits (1000, 0) with label 1 → 1000.
func TestSumCrossEntropy(t *testing.T) {
	logits := tensors.FromFlatDataAndDimensions([]float32{0, float32(math.Log(3)), 1000, 0}, 2, 2)
	got := SumCrossEntropy(logits, []int32{1, 1})
	want := -math.Log(0.75) + 1000
	if math.Abs(got-want) > 1e-4 {
		t.Fatalf("SumCrossEntropy = %.6f, want %.6f", got, want)
	}
}
