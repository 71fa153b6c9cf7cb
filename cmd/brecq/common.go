package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/brecq-go/brecq/brecq"
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
	model, data, arch       *string
	depth, width, imageSize *int
	calibAugment            *bool
}

// addNetFlags declares --arch, --data, --image-size, --depth and --width on
// fs, and --model (described by modelHelp) unless modelHelp is "" (train
// builds its network).
func addNetFlags(fs *flag.FlagSet, modelHelp string) *netFlags {
	n := &netFlags{}
	if modelHelp != "" {
		n.model = fs.String("model", defaultModel(), modelHelp)
	}
	n.arch = fs.String("arch", "resnet20", "architecture: "+strings.Join(models.Archs(), ", "))
	n.data = fs.String("data", datasets.FashionMNIST, "data set: "+strings.Join(datasets.Specs(), ", ")+
		" (folder: DIR/train/<class>/*, DIR/val/<class>/* as torchvision's ImageFolder)")
	n.imageSize = fs.Int("image-size", 0, "network input side for folder: data (0 = 224; images resized to round(size·256/224) then centre-cropped)")
	n.calibAugment = fs.Bool("calib-augment", false, "folder: data only: draw calibration images with the BRECQ authors' training transform (RandomResizedCrop + horizontal flip, seeded) instead of the evaluation transform")
	n.depth = fs.Int("depth", 20, "ResNet depth (6n+2), --arch resnet20 only")
	n.width = fs.Int("width", 1, "channel width multiplier of the checkpoint, --arch resnet20 only")
	return n
}

// data is an opened data set (--data) with the loading helpers the
// subcommands share. Images are NCHW float32, normalised.
type data struct {
	*datasets.Data
	Name string // the --data spec
}

// trainN and testN are the sizes of the two splits.
func (d *data) trainN() int { return d.Train.Len() }
func (d *data) testN() int  { return d.Test.Len() }

// evalBatch is the evaluation batch of net (built for d's image size):
// brecq.EvalBatch of its largest layer's working set per image, at most 500.
func (d *data) evalBatch(net *models.Net) int { return brecq.EvalBatch(net.ImageWorkBytes(), 500) }

// tensor wraps n NCHW images of d as a tensor.
func (d *data) tensor(x []float32, n int) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(x, n, d.C, d.H, d.W)
}

// batch loads images idx of split src as a tensor, with their labels.
func (d *data) batch(src datasets.Images, idx []int) (*tensors.Tensor, []int32, error) {
	x, y, err := datasets.LoadBatch(src, idx, datasets.LoadOptions{})
	if err != nil {
		return nil, nil, err
	}
	return d.tensor(x, len(idx)), y, nil
}

// calibration draws the seeded calibration sample (the same images as
// datasets.SampleCalibration for the IDX data sets).
func (d *data) calibration(n int, seed uint64) (*tensors.Tensor, []int32, []int, error) {
	x, y, idx, err := d.Calibration(n, seed, datasets.LoadOptions{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--calib %d: %w", n, err)
	}
	return d.tensor(x, len(idx)), y, idx, nil
}

// augmentedBatch is a training minibatch with the data set's augmentation
// (random crop with padding and horizontal flip), for the in-memory data
// sets; folder data sets are not trained here.
func (d *data) augmentedBatch(idx []int, rng *rand.Rand) ([]float32, []int32, error) {
	if d.IDX != nil {
		return d.IDX.Train.AugmentedBatch(idx, d.IDX.Norm, datasets.DefaultAugment, rng)
	}
	if m, ok := d.Train.(*datasets.MemImages); ok {
		return m.AugmentedBatch(idx, datasets.DefaultAugment, rng)
	}
	return nil, nil, fmt.Errorf("--data %s: training needs an in-memory data set (fashion-mnist, mnist, cifar10:DIR)", d.Name)
}

// testBatchFn returns the test images idx as a tensor and their labels,
// streamed in order with bounded memory for folder data sets. stop ends the
// stream's workers.
func (d *data) testBatchFn(batch int) (fn func([]int) (*tensors.Tensor, []int32, error), stop func()) {
	var opt datasets.LoadOptions
	if d.Folder != nil {
		opt.Progress = datasets.TextProgress(os.Stderr, "val")
	}
	load, stop := datasets.SequentialBatches(d.Test, batch, opt)
	return func(idx []int) (*tensors.Tensor, []int32, error) {
		x, y, err := load(idx)
		if err != nil {
			return nil, nil, err
		}
		return d.tensor(x, len(idx)), y, nil
	}, stop
}

// setup prints the backend, opens the data set and describes the network
// that fits its images — the start every subcommand shares. needTrain says
// the command uses the training split; both splits must hold images. For
// --arch resnet20 the network follows --depth and --width; other
// architectures are taken as published (loadParams may refine the
// description from the checkpoint, e.g. MNASNet's depth multiplier).
func (n *netFlags) setup(needTrain bool) (compute.Backend, *data, *models.Net, error) {
	if err := engine.Announce(os.Stdout); err != nil {
		return nil, nil, nil, err
	}
	backend, _ := engine.Backend()
	if *n.imageSize < 0 {
		return nil, nil, nil, fmt.Errorf("--image-size %d: want 0 (the data set's size) or a positive side", *n.imageSize)
	}
	if _, err := models.New(*n.arch, 1, 1, 1, 1); err != nil {
		return nil, nil, nil, fmt.Errorf("--arch %s: want one of %s", *n.arch, strings.Join(models.Archs(), ", "))
	}
	d, err := datasets.Open(*n.data, datasets.Options{ImageSize: *n.imageSize, CalibAugment: *n.calibAugment})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--data %s: %w", *n.data, err)
	}
	ds := &data{Data: d, Name: *n.data}
	if ds.testN() == 0 {
		return nil, nil, nil, fmt.Errorf("--data %s: the test split holds no images", *n.data)
	}
	if needTrain && ds.trainN() == 0 {
		return nil, nil, nil, fmt.Errorf("--data %s: the training split holds no images", *n.data)
	}
	var net *models.Net
	if *n.arch == "resnet20" {
		net, err = models.CIFARResNet(*n.depth, *n.width, d.C, d.H, d.W, d.NumClasses)
	} else {
		net, err = models.New(*n.arch, d.C, d.H, d.W, d.NumClasses)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return backend, ds, net, nil
}

// loadParams reads a checkpoint of net (--arch) and rejects non-finite values,
// naming the tensor. For the ImageNet-style architectures the layout
// (torchvision's or the BRECQ authors') is detected from the tensor names
// and the description is taken from the checkpoint; its class count must
// be the data set's. It returns the description the parameters belong to.
func (n *netFlags) loadParams(path string, net *models.Net) (*models.Net, models.Params, map[string]string, error) {
	arch := *n.arch
	var (
		p    models.Params
		meta map[string]string
		err  error
	)
	if arch == "resnet20" {
		p, meta, err = models.LoadParams(path, net)
		if err != nil {
			return nil, nil, nil, err
		}
	} else {
		ck, err := models.LoadArch(path, arch, net.InC, net.InH, net.InW)
		if err != nil {
			return nil, nil, nil, err
		}
		if ck.Net.Classes != net.Classes {
			return nil, nil, nil, fmt.Errorf("%s: the classifier has %d classes, the data set %d: --model and --data do not belong together",
				path, ck.Net.Classes, net.Classes)
		}
		net, p, meta = ck.Net, ck.Params, ck.Meta
	}
	if err := checkFinite(path, p); err != nil {
		return nil, nil, nil, err
	}
	// A checkpoint written by brecq train names its network and data set.
	if d := meta["data"]; d != "" && d != *n.data {
		fmt.Fprintf(os.Stderr, "warning: %s was trained on --data %s, used here with --data %s\n", path, d, *n.data)
	}
	if m := meta["model"]; m != "" && m != net.Name {
		fmt.Fprintf(os.Stderr, "warning: %s holds a %s, used here as a %s\n", path, m, net.Name)
	}
	return net, p, meta, nil
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
