package datasets

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeCIFAR writes the six CIFAR-10 binary files with counts[k] random
// records each (k = 0..4 training batches, 5 the test batch) and returns the
// records of the training and test splits in file order.
func writeCIFAR(t *testing.T, dir string, counts [6]int) (train, test [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	names := append(append([]string{}, CIFAR10TrainFiles...), CIFAR10TestFile)
	for k, name := range names {
		var b []byte
		for range counts[k] {
			rec := make([]byte, 3073)
			rec[0] = byte(rng.IntN(10))
			for j := 1; j < len(rec); j++ {
				rec[j] = byte(rng.IntN(256))
			}
			b = append(b, rec...)
			if k < 5 {
				train = append(train, rec)
			} else {
				test = append(test, rec)
			}
		}
		writeFile(t, filepath.Join(dir, name), b)
	}
	return train, test
}

func TestLoadCIFAR10(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-10-batches-bin") // as the tarball extracts
	train, test := writeCIFAR(t, dir, [6]int{3, 1, 4, 1, 5, 9})
	d, err := LoadCIFAR10(root, ChannelNorm{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Dir != dir || d.Train.Len() != 14 || d.Test.Len() != 9 || d.Classes[9] != "truck" {
		t.Fatalf("dir %s, %d train, %d test, classes %v", d.Dir, d.Train.Len(), d.Test.Len(), d.Classes)
	}
	mean := []float64{0.4914, 0.4822, 0.4465}
	std := []float64{0.2470, 0.2435, 0.2616}
	for _, c := range []struct {
		imgs *MemImages
		recs [][]byte
	}{{d.Train, train}, {d.Test, test}} {
		x, y, err := LoadBatch(c.imgs, []int{len(c.recs) - 1, 0, 2}, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for b, i := range []int{len(c.recs) - 1, 0, 2} {
			rec := c.recs[i]
			if y[b] != int32(rec[0]) {
				t.Fatalf("label of record %d = %d, want %d", i, y[b], rec[0])
			}
			for ch := range 3 {
				for _, yx := range [][2]int{{0, 0}, {0, 31}, {17, 5}, {31, 31}} {
					p := rec[1+ch*1024+yx[0]*32+yx[1]]
					want := (float64(p)/255 - mean[ch]) / std[ch]
					got := x[b*3072+ch*1024+yx[0]*32+yx[1]]
					if math.Abs(float64(got)-want) > 1e-5 {
						t.Fatalf("record %d channel %d pixel %v: %v, want %v", i, ch, yx, got, want)
					}
				}
			}
		}
	}
	// Class names from batches.meta.txt.
	names := "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n"
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte(names))
	if d, err = LoadCIFAR10(dir, ChannelNorm{}); err != nil || d.Classes[3] != "a3" {
		t.Fatalf("classes %v, %v", d.Classes, err)
	}
}

func TestLoadCIFAR10Errors(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR(t, dir, [6]int{1, 1, 1, 1, 1, 2})
	bad := filepath.Join(dir, "data_batch_3.bin")
	good, _ := os.ReadFile(bad)

	writeFile(t, bad, good[:3000])
	if _, err := LoadCIFAR10(dir, ChannelNorm{}); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "3000 bytes") {
		t.Errorf("truncated file: %v", err)
	}
	withLabel := append([]byte{}, good...)
	withLabel[0] = 10
	writeFile(t, bad, withLabel)
	if _, err := LoadCIFAR10(dir, ChannelNorm{}); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "label 10") {
		t.Errorf("bad label: %v", err)
	}
	os.Remove(bad)
	if _, err := LoadCIFAR10(dir, ChannelNorm{}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "data_batch_3.bin") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadCIFAR10(filepath.Join(dir, "nowhere"), ChannelNorm{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing folder: %v", err)
	}
}

// TestMemImagesAugmentedBatch checks the multi-channel augmentation against
// the tested one-channel Split.AugmentedBatch: on a one-channel MemImages it
// is identical, and on CIFAR-style images every channel is that channel's
// Split.AugmentedBatch (same seed, same window and flip), then normalised.
func TestMemImagesAugmentedBatch(t *testing.T) {
	s := &Split{Images: make([]uint8, 5*6*7), Labels: []uint8{1, 2, 3, 4, 5}, N: 5, H: 6, W: 7}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range s.Images {
		s.Images[i] = uint8(rng.IntN(256))
	}
	m, err := SplitImages(s, MNISTNorm)
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{4, 0, 2, 2}
	aug := Augment{Pad: 2, Flip: true}
	gx, gy, err := m.AugmentedBatch(idx, aug, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	wx, wy, _ := s.AugmentedBatch(idx, MNISTNorm, aug, rand.New(rand.NewPCG(7, 7)))
	if !slices.Equal(gx, wx) || !slices.Equal(gy, wy) {
		t.Fatal("one channel: differs from Split.AugmentedBatch")
	}

	dir := t.TempDir()
	writeCIFAR(t, dir, [6]int{2, 1, 1, 1, 1, 1})
	d, err := LoadCIFAR10(dir, ChannelNorm{})
	if err != nil {
		t.Fatal(err)
	}
	idx = []int{5, 1, 3}
	cx, cy, err := d.Train.AugmentedBatch(idx, Augment{Pad: 4, Flip: true}, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	identity := Normalization{Mean: 0, Std: 1.0 / 255} // Value(p) = p
	for c := range 3 {
		ch := &Split{Images: make([]uint8, 6*1024), Labels: d.Train.Labels, N: 6, H: 32, W: 32}
		for i := range 6 {
			copy(ch.Images[i*1024:(i+1)*1024], d.Train.Pix[(i*3+c)*1024:(i*3+c+1)*1024])
		}
		px, py, _ := ch.AugmentedBatch(idx, identity, Augment{Pad: 4, Flip: true}, rand.New(rand.NewPCG(9, 9)))
		for b := range idx {
			for j := range 1024 {
				want := CIFAR10Norm.Value(c, uint8(px[b*1024+j]))
				if got := cx[(b*3+c)*1024+j]; got != want {
					t.Fatalf("image %d channel %d value %d = %v, want %v", idx[b], c, j, got, want)
				}
			}
		}
		if !slices.Equal(cy, py) {
			t.Fatalf("labels %v, want %v", cy, py)
		}
	}
}
