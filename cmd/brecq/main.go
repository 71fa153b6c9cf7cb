// Command brecq trains, evaluates and quantizes CNNs with BRECQ / AdaRound
// post-training quantization. Run `brecq help` for the subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/gomlx/compute"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/datasets"
)

const usage = `brecq — post-training quantization by block reconstruction (BRECQ, AdaRound)

Usage:
  brecq <command> [flags]

Commands:
  train      train the FP ResNet on Fashion-MNIST or MNIST, write a safetensors checkpoint
  eval       top-1 accuracy and images/s of a checkpoint on the 10 000 test images
  quantize   quantize a checkpoint (nearest, AdaRound, BRECQ, QDrop) and evaluate it
  mixed      mixed-precision BRECQ: block sensitivity, genetic bit-width search, reconstruction
  report     Markdown table of quantization run records
  bench      time BRECQ calibration (iterations, caching, Fisher pass, FP) against the authors' PyTorch figures

Run 'brecq <command> --help' for the flags and examples of each.
The backend is GOMLX_BACKEND when set, else XLA when a PJRT plugin is installed,
else GoMLX's pure-Go backend (build with GOEXPERIMENT=simd).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	stop := func() {}
	if path := os.Getenv("BRECQ_CPUPROFILE"); path != "" {
		// A CPU profile of the whole command, for `go tool pprof`.
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "brecq: BRECQ_CPUPROFILE: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "brecq: BRECQ_CPUPROFILE: %v\n", err)
			os.Exit(1)
		}
		stop = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	code := dispatch()
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand and returns the exit status.
func dispatch() int {
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "train":
		err = runTrain(args)
	case "eval":
		err = runEval(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return 0
	default:
		if q, ok := extraCommands[cmd]; ok {
			err = q(args)
			break
		}
		fmt.Fprintf(os.Stderr, "brecq: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) { // <command> --help: the usage is already printed
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "brecq %s: %v\n", os.Args[1], err)
		return 1
	}
	return 0
}

// extraCommands are registered by other files of this command.
var extraCommands = map[string]func([]string) error{}

// setup prints the backend, loads the data set and builds the ResNet
// description that fits its images — the start every subcommand shares.
func setup(data string, depth, width int) (compute.Backend, *datasets.Dataset, *models.Net, error) {
	if err := engine.Announce(os.Stdout); err != nil {
		return nil, nil, nil, err
	}
	backend, _ := engine.Backend()
	ds, err := datasets.Load(data)
	if err != nil {
		return nil, nil, nil, err
	}
	net, err := models.CIFARResNet(depth, width, 1, ds.Train.H, ds.Train.W, ds.NumClasses)
	if err != nil {
		return nil, nil, nil, err
	}
	return backend, ds, net, nil
}
