package main

import (
	"fmt"
	"time"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// EvalRecord is the JSON record of an evaluation.
type EvalRecord struct {
	Command      string  `json:"command"`
	Checkpoint   string  `json:"checkpoint"`
	Model        string  `json:"model"`
	Data         string  `json:"data"`
	Backend      string  `json:"backend"`
	Images       int     `json:"images"`
	Batch        int     `json:"batch"`
	Top1         float64 `json:"top1"`
	ImagesPerSec float64 `json:"images_per_second"`
	Machine      string  `json:"machine"`
}

func runEval(args []string) error {
	fs := newFlagSet("eval", `Usage: brecq eval [flags]

Top-1 accuracy of a checkpoint on the 10 000 test images, and images/s. The
checkpoint is an FP state_dict or this tool's own quantized export
(quantize/mixed --out): its dequantized, BN-folded weights are evaluated with
activations in floating point (exactly the quantized network when --abits 32).

Examples:
  brecq eval                                   # the shipped ResNet-20 on Fashion-MNIST
  brecq eval --model my.safetensors --json eval.json
`)
	nf := addNetFlags(fs, "safetensors checkpoint (PyTorch state_dict layout, or the quantized export of quantize/mixed --out)")
	batch := fs.Int("batch", 0, "batch size (0: sized from the network's largest layer per image, brecq.EvalBatch: at most 500; 133 for ResNet-20 at 1×28×28, 7 for ResNet-18 at 3×224×224)")
	jsonOut := fs.String("json", "", "write a JSON record of the evaluation here")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkInts(intFlag{"batch", batch, 0}); err != nil {
		return err
	}
	if err := checkPaths([]namedPath{{"--json", *jsonOut}}, []namedPath{{"--model", *nf.model}}); err != nil {
		return err
	}
	backend, ds, net, err := nf.setup(false)
	if err != nil {
		return err
	}
	net, p, note, err := loadForEval(*nf.model, nf, net)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Printf("%s: %s\n", *nf.model, note)
	}
	ev, err := fptrain.NewEvaluator(backend, net, p)
	if err != nil {
		return err
	}
	if *batch == 0 {
		*batch = ds.evalBatch(net)
	}
	// Warm up (compilation) on one batch, then time the full pass.
	bf, stop := ds.testBatchFn(*batch)
	defer stop()
	xw, _, err := bf([]int{0})
	if err != nil {
		return err
	}
	if _, err := ev.Logits(xw); err != nil {
		return err
	}
	t0 := time.Now()
	acc, err := fptrain.Accuracy(ds.testN(), *batch, bf, ev.Logits)
	if err != nil {
		return err
	}
	ips := float64(ds.testN()) / time.Since(t0).Seconds()
	fmt.Printf("%s on %s test (%d images): top-1 %.2f%%, %.0f images/s (batch %d)\n", *nf.model, ds.Name, ds.testN(), acc, ips, *batch)
	if *jsonOut != "" {
		return atomicfile.WriteJSON(*jsonOut, EvalRecord{Command: "eval", Checkpoint: *nf.model, Model: net.Name, Data: ds.Name,
			Backend: engine.Name(), Images: ds.testN(), Batch: *batch, Top1: acc, ImagesPerSec: ips, Machine: machine()})
	}
	return nil
}
