package brecq

import (
	"testing"

	"github.com/brecq-go/brecq/brecq/mixed"
)

// TestSensitivityProperties: on a random ResNet-8, every block gets
// 3^layers combinations; an all-8-bit block is nearly free (≤ 1 % of its
// all-4-bit error), and fewer bits cost more (all-2 > all-4 > all-8); the
// layer sizes and MACs equal the hand-computed ones.
func TestSensitivityProperties(t *testing.T) {
	b := testBackend(t)
	net, p, x := testNet(t, 48)
	q, err := NewQuantizer(b, net, p, x, DefaultOptions(4, 32))
	if err != nil {
		t.Fatal(err)
	}
	labels := make([]int32, 48)
	for i := range labels {
		labels[i] = int32(i % 10)
	}
	opt := SensitivityOptions{Candidates: []int{2, 4, 8}, Images: 40}
	prob, err := q.MeasureSensitivity(labels, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(prob.Blocks) != 3 {
		t.Fatalf("%d blocks, want 3 (ResNet-8)", len(prob.Blocks))
	}
	for _, blk := range prob.Blocks {
		k := len(blk.Layers)
		if len(blk.Sens) != intPow(3, k) {
			t.Fatalf("block %s: %d combinations for %d layers", blk.Name, len(blk.Sens), k)
		}
		all := func(d int) float64 { // every layer at candidate index d
			c := 0
			for range k {
				c = c*3 + d
			}
			return blk.Sens[c]
		}
		s2, s4, s8 := all(0), all(1), all(2)
		t.Logf("block %s: S(all 2) %.4g  S(all 4) %.4g  S(all 8) %.4g", blk.Name, s2, s4, s8)
		if !(s2 > s4 && s4 > s8 && s8 >= 0) {
			t.Errorf("block %s: sensitivity not decreasing with bits: %g, %g, %g", blk.Name, s2, s4, s8)
		}
		if s8 > 0.01*s4 {
			t.Errorf("block %s: all-8-bit sensitivity %g not ≈ 0 (all-4-bit %g)", blk.Name, s8, s4)
		}
	}
	if err := prob.Validate(); err == nil {
		// No budget yet: MaxBits 0 is below the smallest model.
		t.Error("a problem without a budget validated")
	}
	// layer1.0.conv1 of ResNet-8 on 12×12 images: 16→16 3×3, 12×12 outputs.
	l := prob.Layers[prob.Blocks[0].Layers[0]]
	if l.Name != "layer1.0.conv1" || l.Params != 16*16*9 || l.MACs != 16*16*9*144 {
		t.Errorf("first searched layer %+v, want layer1.0.conv1 with %d params and %d MACs", l, 16*16*9, 16*16*9*144)
	}
}

// TestMixedCandidatesAreQuantizerBits: the bit-widths package mixed accepts
// as candidates are exactly those ValidateBits accepts.
func TestMixedCandidatesAreQuantizerBits(t *testing.T) {
	for b := MinBits - 2; b <= MaxBits+2; b++ {
		p := &mixed.Problem{Layers: []mixed.Layer{{Name: "l", Params: 1}},
			Blocks:     []mixed.Block{{Name: "b", Layers: []int{0}, Sens: []float64{0}}},
			Candidates: []int{b}, MaxBits: 1000}
		if got, want := p.Validate() == nil, ValidateBits(b) == nil; got != want {
			t.Errorf("%d bits: mixed accepts %v, brecq accepts %v", b, got, want)
		}
	}
}
