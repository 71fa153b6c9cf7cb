package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/internal/runrec"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

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
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	ckpt := fs.String("model", defaultModel(), "safetensors checkpoint (PyTorch state_dict layout)")
	data := fs.String("data", "fashion-mnist", "data set: fashion-mnist or mnist")
	depth := fs.Int("depth", 20, "ResNet depth (6n+2)")
	width := fs.Int("width", 1, "channel width multiplier")
	batch := fs.Int("batch", 500, "batch size")
	jsonOut := fs.String("json", "", "write a JSON record of the evaluation here")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: brecq eval [flags]

Top-1 accuracy of a full-precision checkpoint on the 10 000 test images, and images/s.

Examples:
  brecq eval                                   # the shipped ResNet-20 on Fashion-MNIST
  brecq eval --model my.safetensors --json eval.json

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	backend, ds, net, err := setup(*data, *depth, *width)
	if err != nil {
		return err
	}
	p, _, err := models.LoadParams(*ckpt, net)
	if err != nil {
		return err
	}
	ev, err := fptrain.NewEvaluator(backend, net, p)
	if err != nil {
		return err
	}
	// Warm up (compilation) on one batch, then time the full pass.
	bf := testBatchFn(ds)
	xw, _, err := bf([]int{0})
	if err != nil {
		return err
	}
	if _, err := ev.Logits(xw); err != nil {
		return err
	}
	t0 := time.Now()
	acc, err := fptrain.Accuracy(ds.Test.N, *batch, bf, ev.Logits)
	if err != nil {
		return err
	}
	ips := float64(ds.Test.N) / time.Since(t0).Seconds()
	fmt.Printf("%s on %s test (%d images): top-1 %.2f%%, %.0f images/s (batch %d)\n", *ckpt, ds.Name, ds.Test.N, acc, ips, *batch)
	if *jsonOut != "" {
		return runrec.WriteJSON(*jsonOut, EvalRecord{Command: "eval", Checkpoint: *ckpt, Model: net.Name, Data: ds.Name,
			Backend: engine.Name(), Images: ds.Test.N, Batch: *batch, Top1: acc, ImagesPerSec: ips, Machine: machine()})
	}
	return nil
}

// defaultModel is the shipped checkpoint, found relative to the working
// directory or the module root.
func defaultModel() string {
	for _, p := range []string{"models/resnet20-fmnist.safetensors", "../models/resnet20-fmnist.safetensors", "../../models/resnet20-fmnist.safetensors"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "models/resnet20-fmnist.safetensors"
}
