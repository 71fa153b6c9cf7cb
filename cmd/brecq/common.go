package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq/engine"
	"github.com/brecq-go/brecq/brecq/models"
	"github.com/brecq-go/brecq/datasets"
	"github.com/brecq-go/brecq/internal/atomicfile"
)

// machine describes the machine a record was made on.
func machine() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%s, %d cores, host %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), h)
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

// netFlags are the flags naming the network and its data, shared by every
// subcommand that builds a network.
type netFlags struct {
	model, data  *string
	depth, width *int
}

// addNetFlags declares --data, --depth and --width on fs, and --model
// (described by modelHelp) unless modelHelp is "" (train builds its network).
func addNetFlags(fs *flag.FlagSet, modelHelp string) *netFlags {
	n := &netFlags{}
	if modelHelp != "" {
		n.model = fs.String("model", defaultModel(), modelHelp)
	}
	n.data = fs.String("data", datasets.FashionMNIST, "data set: fashion-mnist or mnist")
	n.depth = fs.Int("depth", 20, "ResNet depth (6n+2)")
	n.width = fs.Int("width", 1, "channel width multiplier of the checkpoint")
	return n
}

// setup prints the backend, loads the data set and builds the ResNet
// description that fits its images — the start every subcommand shares.
// needTrain says the command uses the training split; both splits must
// hold images.
func (n *netFlags) setup(needTrain bool) (compute.Backend, *datasets.Dataset, *models.Net, error) {
	if err := engine.Announce(os.Stdout); err != nil {
		return nil, nil, nil, err
	}
	backend, _ := engine.Backend()
	ds, err := datasets.Load(*n.data)
	if err != nil {
		return nil, nil, nil, err
	}
	if ds.Test.N == 0 {
		return nil, nil, nil, fmt.Errorf("--data %s: the test split holds no images", *n.data)
	}
	if needTrain && ds.Train.N == 0 {
		return nil, nil, nil, fmt.Errorf("--data %s: the training split holds no images", *n.data)
	}
	net, err := models.CIFARResNet(*n.depth, *n.width, 1, ds.Train.H, ds.Train.W, ds.NumClasses)
	if err != nil {
		return nil, nil, nil, err
	}
	return backend, ds, net, nil
}

// loadParams reads a checkpoint of net and rejects non-finite values,
// naming the tensor.
func loadParams(path string, net *models.Net) (models.Params, map[string]string, error) {
	p, meta, err := models.LoadParams(path, net)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFinite(path, p); err != nil {
		return nil, nil, err
	}
	return p, meta, nil
}

// checkFinite returns an error naming the first tensor (by name) of p that
// holds a NaN or an infinity, and where.
func checkFinite(path string, p models.Params) error {
	for _, name := range slices.Sorted(maps.Keys(p)) {
		vals, err := tensors.CopyFlatData[float32](p[name])
		if err != nil {
			return fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		for i, v := range vals {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%s: tensor %q holds %v at flat index %d: weights must be finite numbers", path, name, v, i)
			}
		}
	}
	return nil
}

func trimExt(p string) string { return p[:len(p)-len(filepath.Ext(p))] }

// testBatchFn returns the test images idx as a [N,1,H,W] tensor and their labels.
func testBatchFn(ds *datasets.Dataset) func([]int) (*tensors.Tensor, []int32, error) {
	return func(idx []int) (*tensors.Tensor, []int32, error) {
		x, y, err := ds.Test.Batch(idx, ds.Norm)
		if err != nil {
			return nil, nil, err
		}
		return tensors.FromFlatDataAndDimensions(x, len(idx), 1, ds.Test.H, ds.Test.W), y, nil
	}
}

// namedPath is a path given by a flag.
type namedPath struct{ flag, path string }

// checkPaths validates, before any work, the output paths (empty ones are
// skipped) against each other and the input files: every output's folder
// exists and is writable, no output is a directory, and no output is the
// same file as an input or as another output (also through symbolic links
// and hard links).
func checkPaths(outputs, inputs []namedPath) error {
	type seen struct {
		namedPath
		target string
		info   fs.FileInfo
	}
	var done []seen
	same := func(a, b seen) bool {
		if a.info != nil && b.info != nil {
			return os.SameFile(a.info, b.info)
		}
		return a.target == b.target
	}
	resolve := func(p namedPath) (seen, error) {
		s := seen{namedPath: p}
		target, _, err := atomicfile.Target(p.path)
		if err != nil {
			return s, err
		}
		if abs, err := filepath.Abs(target); err == nil {
			target = abs
		}
		s.target = filepath.Clean(target)
		if st, err := os.Stat(p.path); err == nil {
			s.info = st
		}
		return s, nil
	}
	for _, in := range inputs {
		if in.path == "" {
			continue
		}
		s := seen{namedPath: in}
		if st, err := os.Stat(in.path); err == nil {
			s.info = st
		}
		if abs, err := filepath.Abs(in.path); err == nil {
			if r, err := filepath.EvalSymlinks(abs); err == nil {
				abs = r
			}
			s.target = abs
		}
		done = append(done, s)
	}
	for _, out := range outputs {
		if out.path == "" {
			continue
		}
		if err := atomicfile.CheckWritable(out.path); err != nil {
			return fmt.Errorf("%s %s: cannot write there: %w", out.flag, out.path, err)
		}
		s, err := resolve(out)
		if err != nil {
			return fmt.Errorf("%s %s: %w", out.flag, out.path, err)
		}
		for _, d := range done {
			if same(s, d) {
				return fmt.Errorf("%s %s is the same file as %s %s: give each output its own path, distinct from the inputs",
					out.flag, out.path, d.flag, d.path)
			}
		}
		done = append(done, s)
	}
	return nil
}

// numRange is the allowed range of a numeric flag: [lo, hi], either end
// open when loOpen / hiOpen; hi may be +Inf (the value itself must still
// be finite).
type numRange struct {
	lo, hi         float64
	loOpen, hiOpen bool
}

var (
	positive    = numRange{lo: 0, hi: math.Inf(1), loOpen: true, hiOpen: true}
	nonNegative = numRange{lo: 0, hi: math.Inf(1), hiOpen: true}
	unit        = numRange{lo: 0, hi: 1}
	unitOpenLo  = numRange{lo: 0, hi: 1, loOpen: true}
)

func (r numRange) String() string {
	l, h := "[", "]"
	if r.loOpen {
		l = "("
	}
	if r.hiOpen {
		h = ")"
	}
	hi := fmt.Sprint(r.hi)
	if math.IsInf(r.hi, 1) {
		hi = "∞"
	}
	return fmt.Sprintf("%s%g, %s%s", l, r.lo, hi, h)
}

func (r numRange) contains(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	if v < r.lo || (r.loOpen && v == r.lo) {
		return false
	}
	return v < r.hi || (!r.hiOpen && v == r.hi)
}

// floatFlag is a float flag and its allowed range.
type floatFlag struct {
	name string
	v    *float64
	r    numRange
}

// checkFloats rejects NaN, infinities and values outside each flag's range,
// naming the flag and the range.
func checkFloats(flags ...floatFlag) error {
	for _, f := range flags {
		if !f.r.contains(*f.v) {
			return fmt.Errorf("--%s %v: want a finite number in %v", f.name, *f.v, f.r)
		}
	}
	return nil
}

// intFlag is an integer flag and its smallest allowed value.
type intFlag struct {
	name string
	v    *int
	min  int
}

// checkInts rejects integer flags below their minimum, naming the flag.
func checkInts(flags ...intFlag) error {
	for _, f := range flags {
		if *f.v < f.min {
			return fmt.Errorf("--%s %d: want at least %d", f.name, *f.v, f.min)
		}
	}
	return nil
}

// checkBits rejects a bit-width flag outside 2..8 (and 32 when unquantized
// is allowed, 0 when "same as --abits" is allowed); what names the bits.
func checkBits(name, what string, v int, allow32, allow0 bool) error {
	if v >= 2 && v <= 8 || allow32 && v == 32 || allow0 && v == 0 {
		return nil
	}
	want := "2..8"
	if allow32 {
		want += " or 32 (unquantized)"
	}
	if allow0 {
		want += " or 0 (same as --abits)"
	}
	return fmt.Errorf("--%s %d: %s must be %s", name, v, what, want)
}

// errIsNotExist reports whether err means a file is missing.
func errIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
