package datasets

import (
	"fmt"
	"strings"
)

// Data set kinds, the part of an Open spec before the colon.
const (
	// CIFAR10Kind is the CIFAR-10 binary version: spec "cifar10:DIR".
	CIFAR10Kind = "cifar10"
	// FolderKind is an image folder in ImageNet layout: spec "folder:DIR".
	FolderKind = "folder"
)

// Options configures Open.
type Options struct {
	// ImageSize is the side of the square network input of folder data sets
	// (≤ 0: DefaultImageSize, 224). The other data sets have a fixed size
	// (28×28 grey, 32×32 RGB); a different ImageSize is an error for them.
	ImageSize int
	// ResizeSize is the shorter side a folder image is resized to before the
	// centre crop (≤ 0: ResizeFor(ImageSize), 256 at 224).
	ResizeSize int
	// Norm replaces the per-channel normalisation of cifar10 and folder data
	// sets (nil Mean: CIFAR10Norm, ImageNetNorm).
	Norm ChannelNorm
	// CalibAugment (folder data only) makes Calibration use the BRECQ
	// authors' training transform, RandomResizedCrop + RandomHorizontalFlip
	// seeded per image (AugmentedImages), instead of the evaluation
	// transform.
	CalibAugment bool
}

// Data is a data set opened by Open: a training split (the calibration
// source) and an evaluation split, both served as normalised float32 NCHW
// images through the Images interface.
type Data struct {
	// Spec is the spec given to Open; Kind is FashionMNIST, MNIST,
	// CIFAR10Kind or FolderKind; Dir the folder the data was read from.
	Spec, Kind, Dir string
	// NumClasses is the number of classes; Classes their names when known
	// (CIFAR-10, folders), else nil.
	NumClasses int
	Classes    []string
	// C, H, W are the channels, height and width of every image.
	C, H, W int
	// Train is the training split (train/ for folders), where calibration
	// images are drawn from; Test the evaluation split (the test split, or
	// val/ for folders).
	Train, Test Images
	// IDX is the in-memory IDX data set of fashion-mnist and mnist (for the
	// existing Split API: Batch, AugmentedBatch, SampleCalibration), else nil.
	IDX *Dataset
	// CIFAR and Folder are the underlying data set of cifar10 and folder
	// specs, else nil.
	CIFAR  *CIFAR10
	Folder *Folder
	// CalibAugment is Options.CalibAugment.
	CalibAugment bool
}

// Specs lists the spec forms Open accepts, for help texts.
func Specs() []string {
	return []string{FashionMNIST, MNIST, FashionMNIST + ":DIR", MNIST + ":DIR", CIFAR10Kind + ":DIR", FolderKind + ":DIR"}
}

// Open opens a data set from a spec:
//
//	fashion-mnist, mnist          the installed IDX files (Load)
//	fashion-mnist:DIR, mnist:DIR  the four IDX files in DIR (LoadDir)
//	cifar10:DIR                   the CIFAR-10 binary files (LoadCIFAR10)
//	folder:DIR                    DIR/train/<class>/*, DIR/val/<class>/* (OpenFolder)
//
// IDX and CIFAR-10 data are read into memory; folder images are decoded when
// loaded (through Stream, LoadBatch or Calibration), never all held.
func Open(spec string, opt Options) (*Data, error) {
	kind, dir, hasDir := strings.Cut(spec, ":")
	if hasDir && dir == "" {
		return nil, fmt.Errorf("datasets: data spec %q names no folder after the colon", spec)
	}
	d := &Data{Spec: spec, Kind: kind, Dir: dir}
	fixedSize := func(side int) error {
		if opt.ImageSize > 0 && opt.ImageSize != side || opt.ResizeSize > 0 || opt.CalibAugment {
			return fmt.Errorf("datasets: %s images are %dx%d; image size %d / resize %d / calibration augmentation apply to folder data only",
				kind, side, side, opt.ImageSize, opt.ResizeSize)
		}
		return nil
	}
	switch kind {
	case FashionMNIST, MNIST:
		var ds *Dataset
		var err error
		if hasDir {
			ds, err = LoadDir(kind, dir)
		} else {
			ds, err = Load(kind)
		}
		if err != nil {
			return nil, err
		}
		if err := fixedSize(ds.Train.H); err != nil {
			return nil, err
		}
		train, err := SplitImages(ds.Train, ds.Norm)
		if err != nil {
			return nil, err
		}
		test, err := SplitImages(ds.Test, ds.Norm)
		if err != nil {
			return nil, err
		}
		d.Dir, d.IDX, d.NumClasses = ds.Dir, ds, ds.NumClasses
		d.Train, d.Test = train, test
	case CIFAR10Kind:
		if !hasDir {
			return nil, fmt.Errorf("datasets: data spec %q: want cifar10:DIR, DIR holding data_batch_1..5.bin and test_batch.bin", spec)
		}
		if err := fixedSize(cifarSide); err != nil {
			return nil, err
		}
		c, err := LoadCIFAR10(dir, opt.Norm)
		if err != nil {
			return nil, err
		}
		d.Dir, d.CIFAR, d.Classes, d.NumClasses = c.Dir, c, c.Classes, len(c.Classes)
		d.Train, d.Test = c.Train, c.Test
	case FolderKind:
		if !hasDir {
			return nil, fmt.Errorf("datasets: data spec %q: want folder:DIR, DIR holding train/<class>/* and val/<class>/*", spec)
		}
		f, err := OpenFolder(dir, opt.ImageSize, opt.ResizeSize, opt.Norm)
		if err != nil {
			return nil, err
		}
		d.Folder, d.Classes, d.NumClasses, d.CalibAugment = f, f.Classes, len(f.Classes), opt.CalibAugment
		d.Train, d.Test = f.Train, f.Val
	default:
		return nil, fmt.Errorf("datasets: unknown data spec %q (valid: %s)", spec, strings.Join(Specs(), ", "))
	}
	d.C, d.H, d.W = d.Train.Shape()
	return d, nil
}

// Calibration draws n distinct training images with CalibrationIndices(N, n,
// seed) — for fashion-mnist and mnist the same images, in the same order and
// with the same values, as SampleCalibration + Split.Batch — and loads them
// in parallel with the evaluation transform (as the evaluation split is
// served), or for a folder opened with CalibAugment with the authors'
// training transform (AugmentedImages{Seed: seed}). x is n×C×H×W (NCHW), y
// the labels, idx the training indices.
func (d *Data) Calibration(n int, seed uint64, opt LoadOptions) (x []float32, y []int32, idx []int, err error) {
	idx, err = CalibrationIndices(d.Train.Len(), n, seed)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", d.Spec, err)
	}
	src := d.Train
	if d.CalibAugment && d.Folder != nil {
		src = &AugmentedImages{FolderImages: d.Folder.Train, Seed: seed}
	}
	s := NewStream(src, idx, max(1, min(n, 64)), opt)
	defer s.Close()
	c, h, w := d.Train.Shape()
	x = make([]float32, 0, n*c*h*w)
	y = make([]int32, 0, n)
	for s.Next() {
		b := s.Batch()
		x, y = append(x, b.X...), append(y, b.Y...)
	}
	if err := s.Err(); err != nil {
		return nil, nil, nil, err
	}
	return x, y, idx, nil
}
