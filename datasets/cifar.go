package datasets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR-10 binary format: every record is one label byte (0..9) followed by
// the 32×32 image as 1024 red, 1024 green and 1024 blue bytes, row-major.
const (
	cifarSide   = 32
	cifarRecord = 1 + 3*cifarSide*cifarSide // 3073 bytes
)

// CIFAR10TrainFiles and CIFAR10TestFile are the file names of the CIFAR-10
// binary version (cifar-10-binary.tar.gz extracts them into
// cifar-10-batches-bin/).
var (
	CIFAR10TrainFiles = []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"}
	CIFAR10TestFile   = "test_batch.bin"
)

// CIFAR10Classes are the CIFAR-10 class names in label order (used when the
// folder has no batches.meta.txt).
var CIFAR10Classes = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// CIFAR10 is the CIFAR-10 data set read from its binary files.
type CIFAR10 struct {
	// Dir is the folder the files were read from.
	Dir string
	// Classes are the class names, label order.
	Classes []string
	// Train (data_batch_1..5.bin, in that order) and Test (test_batch.bin):
	// 3×32×32 images normalised with the norm given to LoadCIFAR10.
	Train, Test *MemImages
}

// LoadCIFAR10 reads the CIFAR-10 binary files from dir, or from
// dir/cifar-10-batches-bin when dir itself does not hold them: the training
// split is data_batch_1.bin … data_batch_5.bin concatenated in that order,
// the test split test_batch.bin. Each file must be a whole number (≥ 1) of
// 3073-byte records whose label byte is 0..9; the images are normalised with
// norm (nil Mean: CIFAR10Norm). Class names come from batches.meta.txt when
// present (one per line), else CIFAR10Classes. Errors name the file and what
// is wrong.
func LoadCIFAR10(dir string, norm ChannelNorm) (*CIFAR10, error) {
	if norm.Mean == nil {
		norm = CIFAR10Norm
	}
	if err := norm.check(3); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, CIFAR10TestFile)); errors.Is(err, fs.ErrNotExist) {
		if sub := filepath.Join(dir, "cifar-10-batches-bin"); fileExists(filepath.Join(sub, CIFAR10TestFile)) {
			dir = sub
		}
	}
	var paths []string
	for _, name := range append(append([]string{}, CIFAR10TrainFiles...), CIFAR10TestFile) {
		p := filepath.Join(dir, name)
		if !fileExists(p) {
			return nil, fmt.Errorf("datasets: cifar10: %w: no %s in %s (want the binary version's %s and %s, from cifar-10-binary.tar.gz)",
				ErrNotFound, name, dir, strings.Join(CIFAR10TrainFiles, ", "), CIFAR10TestFile)
		}
		paths = append(paths, p)
	}
	var trainPix, trainLab []uint8
	for _, p := range paths[:len(paths)-1] {
		pix, lab, err := readCIFARFile(p)
		if err != nil {
			return nil, err
		}
		trainPix, trainLab = append(trainPix, pix...), append(trainLab, lab...)
	}
	testPix, testLab, err := readCIFARFile(paths[len(paths)-1])
	if err != nil {
		return nil, err
	}
	train, err := NewMemImages(trainPix, trainLab, len(trainLab), 3, cifarSide, cifarSide, norm)
	if err != nil {
		return nil, err
	}
	test, err := NewMemImages(testPix, testLab, len(testLab), 3, cifarSide, cifarSide, norm)
	if err != nil {
		return nil, err
	}
	classes := CIFAR10Classes
	if b, err := os.ReadFile(filepath.Join(dir, "batches.meta.txt")); err == nil {
		var names []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				names = append(names, l)
			}
		}
		if len(names) == len(CIFAR10Classes) {
			classes = names
		}
	}
	return &CIFAR10{Dir: dir, Classes: classes, Train: train, Test: test}, nil
}

// readCIFARFile reads one CIFAR-10 binary file into CHW pixels and labels.
func readCIFARFile(path string) (pix, labels []uint8, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	if len(b) == 0 || len(b)%cifarRecord != 0 {
		return nil, nil, fmt.Errorf("datasets: %s: %d bytes is not a whole number of %d-byte CIFAR-10 records (truncated or not a CIFAR-10 binary file)",
			path, len(b), cifarRecord)
	}
	n := len(b) / cifarRecord
	pix = make([]uint8, 0, n*(cifarRecord-1))
	labels = make([]uint8, n)
	for i := range n {
		rec := b[i*cifarRecord : (i+1)*cifarRecord]
		if rec[0] >= 10 {
			return nil, nil, fmt.Errorf("datasets: %s: record %d has label %d, outside 0..9 (not a CIFAR-10 binary file? CIFAR-100's records have two label bytes)",
				path, i, rec[0])
		}
		labels[i] = rec[0]
		pix = append(pix, rec[1:]...)
	}
	return pix, labels, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
