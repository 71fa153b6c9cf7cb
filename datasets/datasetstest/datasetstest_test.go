package datasetstest

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/brecq-go/brecq/datasets"
)

func TestWriteFolderOpens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "img")
	if err := WriteFolder(dir, 3, 4, 2, 1); err != nil {
		t.Fatal(err)
	}
	d, err := datasets.Open("folder:"+dir, datasets.Options{ImageSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Classes, []string{"c000", "c001", "c002"}) || d.Train.Len() != 12 || d.Test.Len() != 6 {
		t.Fatalf("classes %v, %d train, %d val", d.Classes, d.Train.Len(), d.Test.Len())
	}
	x, y, err := datasets.LoadBatch(d.Test, []int{0, 1, 2, 3, 4, 5}, datasets.LoadOptions{})
	if err != nil || len(x) != 6*3*32*32 || !slices.Equal(y, []int32{0, 0, 1, 1, 2, 2}) {
		t.Fatalf("val batch: %d values, labels %v, %v", len(x), y, err)
	}
	// Same seed, same files.
	dir2 := filepath.Join(t.TempDir(), "img")
	if err := WriteFolder(dir2, 3, 4, 2, 1); err != nil {
		t.Fatal(err)
	}
	d2, err := datasets.Open("folder:"+dir2, datasets.Options{ImageSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	x2, _, err := datasets.LoadBatch(d2.Test, []int{0, 1, 2, 3, 4, 5}, datasets.LoadOptions{})
	if err != nil || !slices.Equal(x, x2) {
		t.Fatalf("a second folder with the same seed differs (%v)", err)
	}
}

func TestWriteCIFAR10Opens(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCIFAR10(dir, 3, 5, 1); err != nil {
		t.Fatal(err)
	}
	d, err := datasets.Open("cifar10:"+dir, datasets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Train.Len() != 15 || d.Test.Len() != 5 || d.Test.Label(4) != 9 {
		t.Fatalf("%d train, %d test, last test label %d", d.Train.Len(), d.Test.Len(), d.Test.Label(4))
	}
}
