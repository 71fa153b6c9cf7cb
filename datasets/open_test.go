package datasets

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOpenIDX checks that Open("mnist:DIR") serves the IDX data set and that
// its calibration images equal the existing SampleCalibration + Split.Batch.
func TestOpenIDX(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, dir, tinyLabels)
	d, err := Open(MNIST+":"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != MNIST || d.IDX == nil || d.NumClasses != 10 || d.C != 1 || d.H != d.IDX.Train.H || d.Test.Len() != d.IDX.Test.N {
		t.Fatalf("%+v", d)
	}
	x, y, idx, err := d.Calibration(2, 5, LoadOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	wantIdx, _ := SampleCalibration(d.IDX.Train, 2, 5)
	wx, wy, _ := d.IDX.Train.Batch(wantIdx, d.IDX.Norm)
	if !slices.Equal(idx, wantIdx) || !slices.Equal(x, wx) || !slices.Equal(y, wy) {
		t.Fatalf("calibration %v %v %v, want %v %v %v", idx, x, y, wantIdx, wx, wy)
	}
	if _, err := Open(MNIST+":"+dir, Options{ImageSize: 224}); err == nil || !strings.Contains(err.Error(), "folder data only") {
		t.Errorf("image size on mnist: %v", err)
	}
}

func TestOpenCIFARAndFolder(t *testing.T) {
	cdir := t.TempDir()
	writeCIFAR(t, cdir, [6]int{2, 2, 2, 2, 2, 3})
	d, err := Open("cifar10:"+cdir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.CIFAR == nil || d.NumClasses != 10 || d.C != 3 || d.H != 32 || d.W != 32 || d.Train.Len() != 10 || d.Test.Len() != 3 {
		t.Fatalf("cifar10: %+v", d)
	}

	fdir := filepath.Join(t.TempDir(), "imagenet")
	rng := rand.New(rand.NewPCG(21, 22))
	for _, split := range []string{"train", "val"} {
		for _, class := range []string{"n02", "n01", "n03"} {
			for k := range 4 {
				w, h := 40+rng.IntN(60), 40+rng.IntN(60)
				writeFile(t, filepath.Join(fdir, split, class, string(rune('a'+k))+".png"), encodePNG(t, opaque(testImage(rng, w, h, 10))))
			}
		}
	}
	d, err = Open("folder:"+fdir, Options{ImageSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	if d.Folder == nil || !slices.Equal(d.Classes, []string{"n01", "n02", "n03"}) || d.C != 3 || d.H != 32 || d.W != 32 ||
		d.Train.Len() != 12 || d.Test.Len() != 12 || d.Folder.Train.Resize != 37 {
		t.Fatalf("folder: %+v", d)
	}
	// Seeded calibration: the same with any worker count, each image the
	// transform of the drawn training file.
	x1, y1, idx1, err := d.Calibration(7, 3, LoadOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	x2, y2, idx2, err := d.Calibration(7, 3, LoadOptions{Workers: 4, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idx1, idx2) || !slices.Equal(x1, x2) || !slices.Equal(y1, y2) {
		t.Fatal("calibration differs between 1 and 4 workers")
	}
	if want, _ := CalibrationIndices(12, 7, 3); !slices.Equal(idx1, want) {
		t.Fatalf("indices %v, want %v", idx1, want)
	}
	one := make([]float32, 3*32*32)
	for b, i := range idx1 {
		if err := d.Train.Load(i, one); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one, x1[b*len(one):(b+1)*len(one)]) || y1[b] != int32(d.Folder.Train.Labels[i]) {
			t.Fatalf("calibration image %d (file %s) differs from Load", b, d.Folder.Train.Files[i])
		}
	}
	// The authors' training transform for calibration: seeded per image,
	// independent of the worker count, different from the evaluation crop.
	da, err := Open("folder:"+fdir, Options{ImageSize: 32, CalibAugment: true})
	if err != nil {
		t.Fatal(err)
	}
	xa1, ya1, idxa, err := da.Calibration(7, 3, LoadOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	xa2, _, _, err := da.Calibration(7, 3, LoadOptions{Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(idxa, idx1) || !slices.Equal(ya1, y1) || !slices.Equal(xa1, xa2) || slices.Equal(xa1, x1) {
		t.Fatal("augmented calibration: not the same indices / labels, not deterministic, or equal to the evaluation transform")
	}
	aug := &AugmentedImages{FolderImages: da.Folder.Train, Seed: 3}
	if err := aug.Load(idxa[2], one); err != nil || !slices.Equal(one, xa1[2*len(one):3*len(one)]) {
		t.Fatalf("augmented calibration image 2 differs from AugmentedImages.Load: %v", err)
	}
	if _, err := Open("cifar10:"+cdir, Options{CalibAugment: true}); err == nil {
		t.Error("CalibAugment on cifar10: no error")
	}
	if _, _, _, err := d.Calibration(13, 3, LoadOptions{}); err == nil {
		t.Error("13 calibration images from 12: no error")
	}

	for spec, want := range map[string]string{
		"imagenet:/x": "unknown data spec", "cifar10": "want cifar10:DIR", "folder:": "names no folder",
		"folder": "want folder:DIR", "cifar10:" + filepath.Join(cdir, "none"): "no data_batch_1.bin",
	} {
		if _, err := Open(spec, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want an error containing %q", spec, err, want)
		}
	}
}
