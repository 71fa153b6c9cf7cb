// Command brecq trains, evaluates and quantizes CNNs with BRECQ / AdaRound
// post-training quantization. Run `brecq help` for the subcommands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
)

// command is one subcommand: its name, a one-line summary for the usage
// text, and the function that runs it on the arguments after its name.
type command struct {
	name, summary string
	run           func(args []string) error
}

// commands lists the subcommands in the order the usage text shows them.
var commands = []command{
	{"train", "train the FP ResNet on Fashion-MNIST or MNIST, write a safetensors checkpoint", runTrain},
	{"eval", "top-1 accuracy and images/s of a checkpoint on the 10 000 test images", runEval},
	{"quantize", "quantize a checkpoint (nearest, AdaRound, BRECQ, QDrop) and evaluate it", runQuantize},
	{"mixed", "mixed-precision BRECQ: block sensitivity, genetic bit-width search, reconstruction", runMixed},
	{"report", "Markdown table of quantization run records", runReport},
	{"export", "write a network as ONNX: the FP checkpoint, or a quantized export in QDQ form", runExport},
	{"bench", "time BRECQ calibration (iterations, caching, Fisher pass, FP) against the authors' PyTorch figures", runBench},
}

// printUsage writes the top-level usage text, built from commands.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "brecq — post-training quantization by block reconstruction (BRECQ, AdaRound)\n\n")
	fmt.Fprint(w, "Usage:\n  brecq <command> [flags]\n\nCommands:\n")
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s   %s\n", width, c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'brecq <command> --help' for the flags and examples of each.
The backend is GOMLX_BACKEND when set, else XLA when a PJRT plugin is installed,
else GoMLX's pure-Go backend (build with GOEXPERIMENT=simd).
Exit status: 0 success, 1 the run failed or a flag value is out of range,
2 the command line could not be parsed (unknown command or flag, stray argument).
`)
}

func main() {
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
	stopHeap := startHeapProfile(os.Getenv("BRECQ_HEAPPROFILE"))
	code := dispatch(os.Args[1:])
	stopHeap()
	stop()
	os.Exit(code)
}

// errUsage marks a command line that could not be parsed; its message (if
// any) and the usage are already printed. The exit status is 2.
var errUsage = errors.New("usage error")

// dispatch runs the subcommand named by args[0] and returns the exit status.
func dispatch(args []string) int {
	if len(args) == 0 {
		printUsage(os.Stderr)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		printUsage(os.Stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp): // <command> --help: the usage is already printed
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(os.Stderr, "brecq %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "brecq: unknown command %q\n\n", name)
	printUsage(os.Stderr)
	return 2
}

// newFlagSet is the flag set of a subcommand; help is its usage text up
// to the flag list (which is printed after it).
func newFlagSet(name, help string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), help)
		if !strings.HasSuffix(help, "\n") {
			fmt.Fprintln(fs.Output())
		}
		fmt.Fprint(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. A parse error (printed once by the flag package,
// with the usage) and any positional argument (a flag set takes flags only)
// return an error wrapping errUsage; --help returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "brecq %s: unexpected argument %q: this command takes flags only (e.g. --model %s); nothing was run\n",
			fs.Name(), fs.Arg(0), fs.Arg(0))
		fs.Usage()
		return fmt.Errorf("%w: argument %q", errUsage, fs.Arg(0))
	}
	return nil
}
