package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/fptrain"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/brecq/optim"
	"github.com/brecq-go/brecq/datasets"
	"github.com/brecq-go/brecq/internal/atomicfile"
	"github.com/brecq-go/brecq/internal/progress"
)

// TrainRecord is the JSON record of a training run.
type TrainRecord struct {
	Command     string         `json:"command"`
	Model       string         `json:"model"`
	Data        string         `json:"data"`
	Backend     string         `json:"backend"`
	Seed        uint64         `json:"seed"`
	Epochs      int            `json:"epochs"`
	Batch       int            `json:"batch"`
	LR          float64        `json:"lr"`
	Momentum    float64        `json:"momentum"`
	WeightDecay float64        `json:"weight_decay"`
	Augment     string         `json:"augment"`
	Machine     string         `json:"machine"`
	History     []EpochSummary `json:"history"`
	TestTop1    float64        `json:"test_top1"`
	WallSeconds float64        `json:"wall_seconds"`
	Checkpoint  string         `json:"checkpoint"`
}

// EpochSummary is one epoch of a training run.
type EpochSummary struct {
	Epoch        int     `json:"epoch"`
	TrainLoss    float64 `json:"train_loss"`
	TrainTop1    float64 `json:"train_top1"`
	TestTop1     float64 `json:"test_top1"`
	Seconds      float64 `json:"seconds"`
	StepSeconds  float64 `json:"seconds_per_step"`
	LearningRate float64 `json:"lr_end"`
}

func runTrain(args []string) error {
	fs := newFlagSet("train", `Usage: brecq train [flags]

Trains the CIFAR-style ResNet on 28x28 images: SGD momentum 0.9, cosine learning
rate, weight decay, random crop (padding 2) + horizontal flip, and writes a
PyTorch-layout safetensors checkpoint and its run record after every epoch
(both together, atomically).

Examples:
  brecq train --epochs 10 --out resnet20-fmnist.safetensors
  brecq train --data mnist --epochs 3 --out resnet20-mnist.safetensors
  brecq train --resume resnet20-fmnist.safetensors --epochs 10   # continue
`)
	nf := addNetFlags(fs, "")
	epochs := fs.Int("epochs", 10, "epochs")
	batch := fs.Int("batch", 128, "batch size (at most the training images)")
	lr := fs.Float64("lr", 0.1, "initial learning rate (cosine decay to 0)")
	wd := fs.Float64("wd", 5e-4, "weight decay")
	seed := fs.Uint64("seed", 1, "random seed (initialisation, shuffling, augmentation)")
	out := fs.String("out", "resnet20-fmnist.safetensors", "checkpoint to write (after every epoch, atomically)")
	jsonOut := fs.String("json", "", "run record (JSON) to write; default: <out without extension>.json")
	resume := fs.String("resume", "", "checkpoint to resume from (its metadata holds the finished epoch)")
	maxSteps := fs.Int("max-steps", 0, "stop after this many steps in total (0 = all; for smoke tests)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *epochs < 1 || *batch < 1 || !(*lr > 0) {
		return fmt.Errorf("--epochs, --batch and --lr must be positive (got %d, %d, %g)", *epochs, *batch, *lr)
	}
	if err := checkFloats(floatFlag{"lr", lr, positive}, floatFlag{"wd", wd, nonNegative}); err != nil {
		return err
	}
	if err := checkInts(intFlag{"max-steps", maxSteps, 0}); err != nil {
		return err
	}
	if *jsonOut == "" {
		*jsonOut = trimExt(*out) + ".json"
	}
	// --resume may name --out itself (continue in place): it is read before
	// the first write.
	if err := checkPaths([]namedPath{{"--out", *out}, {"--json", *jsonOut}}, nil); err != nil {
		return err
	}
	if err := checkPaths([]namedPath{{"--json", *jsonOut}}, []namedPath{{"--resume", *resume}}); err != nil {
		return err
	}
	backend, ds, net, err := nf.setup(true)
	if err != nil {
		return err
	}
	if *batch > ds.trainN() {
		return fmt.Errorf("--batch %d: the training split of %s holds only %d images", *batch, ds.Name, ds.trainN())
	}
	if _, _, err := ds.augmentedBatch([]int{0}, rand.New(rand.NewPCG(0, 0))); err != nil {
		return err
	}
	params := fptrain.Init(net, *seed)
	startEpoch := 0
	rec := TrainRecord{Command: "train", Model: net.Name, Data: ds.Name, Backend: engine.Name(), Seed: *seed,
		Epochs: *epochs, Batch: *batch, LR: *lr, Momentum: 0.9, WeightDecay: *wd, Augment: "crop pad 2 + hflip",
		Machine: machine(), Checkpoint: filepath.Base(*out)}
	if *resume != "" {
		_, p, meta, err := nf.loadParams(*resume, net)
		if err != nil {
			return err
		}
		params = p
		if e, err := strconv.Atoi(meta["epoch"]); err == nil {
			startEpoch = e
		}
		if prev, err := os.ReadFile(*jsonOut); err == nil {
			_ = json.Unmarshal(prev, &rec)
			rec.History = rec.History[:min(len(rec.History), startEpoch)]
		}
		fmt.Printf("resuming from %s after epoch %d\n", *resume, startEpoch)
	}
	tr, err := fptrain.NewTrainer(backend, net, params, fptrain.Options{Momentum: 0.9, WeightDecay: *wd})
	if err != nil {
		return err
	}
	stepsPerEpoch := ds.trainN() / *batch
	total := stepsPerEpoch * *epochs
	step := startEpoch * stepsPerEpoch
	t0 := time.Now()
	for epoch := startEpoch; epoch < *epochs; epoch++ {
		perm := datasets.EpochPermutation(ds.trainN(), *seed, epoch)
		rng := rand.New(rand.NewPCG(*seed, uint64(epoch)+1000))
		bar := progress.New(os.Stderr, fmt.Sprintf("epoch %d/%d", epoch+1, *epochs), stepsPerEpoch)
		var sumLoss float64
		var sumCorrect, seen int
		te := time.Now()
		curLR := 0.0
		for i, idx := range datasets.Minibatches(perm, *batch, true) {
			x, y, err := ds.augmentedBatch(idx, rng)
			if err != nil {
				return err
			}
			curLR = optim.CosineLR(*lr, step, total)
			loss, correct, err := tr.Step(ds.tensor(x, len(idx)),
				tensors.FromFlatDataAndDimensions(y, len(idx)), curLR)
			if err != nil {
				return fmt.Errorf("epoch %d step %d: %w", epoch+1, i+1, err)
			}
			step++
			sumLoss += loss * float64(len(idx))
			sumCorrect += correct
			seen += len(idx)
			bar.Update(i+1, fmt.Sprintf("loss %.4f acc %.2f%% lr %.4f", sumLoss/float64(seen), 100*float64(sumCorrect)/float64(seen), curLR))
			if *maxSteps > 0 && step >= *maxSteps {
				break
			}
		}
		secs := time.Since(te).Seconds()
		p := tr.Params()
		acc, err := testAccuracy(net, p, ds, ds.evalBatch(net))
		if err != nil {
			return err
		}
		fmt.Printf("epoch %d: train loss %.4f, train top-1 %.2f%%, test top-1 %.2f%%, %.0f s (%.3f s/step)\n",
			epoch+1, sumLoss/float64(seen), 100*float64(sumCorrect)/float64(seen), acc, secs, secs/float64(max(seen / *batch, 1)))
		rec.History = append(rec.History, EpochSummary{Epoch: epoch + 1, TrainLoss: sumLoss / float64(seen),
			TrainTop1: 100 * float64(sumCorrect) / float64(seen), TestTop1: acc, Seconds: secs,
			StepSeconds: secs / float64(max(seen / *batch, 1)), LearningRate: curLR})
		rec.TestTop1 = acc
		rec.WallSeconds += secs
		meta := map[string]string{"format": "pt", "model": net.Name, "data": ds.Name, "epoch": strconv.Itoa(epoch + 1),
			"test_top1": fmt.Sprintf("%.2f", acc), "producer": "brecq train"}
		var outs atomicfile.Batch
		if err := outs.Add(*out, func(tmp string) error { return models.SaveParams(tmp, p, meta) }); err != nil {
			return err
		}
		if err := outs.AddJSON(*jsonOut, rec); err != nil {
			outs.Discard()
			return err
		}
		if err := outs.Commit(); err != nil {
			return err
		}
		if *maxSteps > 0 && step >= *maxSteps {
			break
		}
	}
	fmt.Printf("wrote %s and %s (%.0f s)\n", *out, *jsonOut, time.Since(t0).Seconds())
	return nil
}

// testAccuracy evaluates params on the whole test split.
func testAccuracy(net *models.Net, p models.Params, ds *data, batch int) (float64, error) {
	backend, _ := engine.Backend()
	ev, err := fptrain.NewEvaluator(backend, net, p)
	if err != nil {
		return 0, err
	}
	bf, stop := ds.testBatchFn(batch)
	defer stop()
	return fptrain.Accuracy(ds.testN(), batch, bf, ev.Logits)
}
