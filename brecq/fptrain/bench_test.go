package fptrain

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
	"github.com/brecq-go/brecq/brecq/models"
)

func benchBackend(b *testing.B) compute.Backend {
	return enginetest.Backend(b)
}

func benchBatch(n int) (*tensors.Tensor, *tensors.Tensor) {
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n*784)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int32, n)
	for i := range y {
		y[i] = int32(r.IntN(10))
	}
	return tensors.FromFlatDataAndDimensions(x, n, 1, 28, 28), tensors.FromFlatDataAndDimensions(y, n)
}

// BenchmarkForward256 is FP ResNet-20 inference on a batch of 256 28x28 images.
func BenchmarkForward256(b *testing.B) {
	be := benchBackend(b)
	net := models.ResNet20()
	ev, err := NewEvaluator(be, net, Init(net, 1))
	if err != nil {
		b.Fatal(err)
	}
	x, _ := benchBatch(256)
	if _, err := ev.Logits(x); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ev.Logits(x); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(256*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStep128 is one SGD step of ResNet-20 on a batch of 128.
func BenchmarkTrainStep128(b *testing.B) {
	be := benchBackend(b)
	net := models.ResNet20()
	tr, err := NewTrainer(be, net, Init(net, 1), Options{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		b.Fatal(err)
	}
	x, y := benchBatch(128)
	if _, _, err := tr.Step(x, y, 0.01); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := tr.Step(x, y, 0.01); err != nil {
			b.Fatal(err)
		}
	}
}
