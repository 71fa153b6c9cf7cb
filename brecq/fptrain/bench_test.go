package fptrain

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine/enginetest"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/internal/microbench"
)

func benchBackend(tb testing.TB) compute.Backend {
	return enginetest.Backend(tb)
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

// forward256 builds FP ResNet-20 inference on a batch of 256 28x28 images, runs it once
// (compilation) and returns a function running it again.
func forward256(tb testing.TB) func() {
	net := models.ResNet20()
	ev, err := NewEvaluator(benchBackend(tb), net, Init(net, 1))
	if err != nil {
		tb.Fatal(err)
	}
	x, _ := benchBatch(256)
	run := func() {
		if _, err := ev.Logits(x); err != nil {
			tb.Fatal(err)
		}
	}
	run()
	return run
}

// trainStep128 builds one SGD step of ResNet-20 on a batch of 128, runs it once
// (compilation) and returns a function running another step.
func trainStep128(tb testing.TB) func() {
	net := models.ResNet20()
	tr, err := NewTrainer(benchBackend(tb), net, Init(net, 1), Options{Momentum: 0.9, WeightDecay: 5e-4})
	if err != nil {
		tb.Fatal(err)
	}
	x, y := benchBatch(128)
	run := func() {
		if _, _, err := tr.Step(x, y, 0.01); err != nil {
			tb.Fatal(err)
		}
	}
	run()
	return run
}

// BenchmarkForward256 is FP ResNet-20 inference on a batch of 256 28x28 images.
func BenchmarkForward256(b *testing.B) {
	run := forward256(b)
	for b.Loop() {
		run()
	}
	b.ReportMetric(256*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStep128 is one SGD step of ResNet-20 on a batch of 128.
func BenchmarkTrainStep128(b *testing.B) {
	run := trainStep128(b)
	for b.Loop() {
		run()
	}
}

// TestBenchResNet20 times BenchmarkForward256's and BenchmarkTrainStep128's calls with
// go-benchmarks (median and 10th/90th percentiles of one call):
//
//	go test -v -run TestBenchResNet20 ./brecq/fptrain/ -bench_duration 5s
func TestBenchResNet20(t *testing.T) {
	microbench.Enabled(t)
	microbench.Run(t, true, 1, microbench.Named("Forward256", forward256(t)), microbench.Named("TrainStep128", trainStep128(t)))
}
