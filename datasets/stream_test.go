package datasets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image/gif"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// randomMem returns n random 3×5×4 images with labels i mod 7.
func randomMem(t *testing.T, n int) *MemImages {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, n*3*5*4)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	labels := make([]uint8, n)
	for i := range labels {
		labels[i] = uint8(i % 7)
	}
	m, err := NewMemImages(pix, labels, n, 3, 5, 4, CIFAR10Norm)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestStreamOrder checks that every worker count and prefetch depth gives
// the batches of the requested indices in order, each image equal to a
// direct Load (and to the formula), and that progress counts to the total.
func TestStreamOrder(t *testing.T) {
	m := randomMem(t, 53)
	idx := rand.New(rand.NewPCG(3, 4)).Perm(53)[:50]
	size := 3 * 5 * 4
	for _, workers := range []int{1, 2, 5} {
		for _, prefetch := range []int{1, 3} {
			var calls [][2]int
			s := NewStream(m, idx, 7, LoadOptions{Workers: workers, Prefetch: prefetch,
				Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) }})
			k := 0
			for s.Next() {
				b := s.Batch()
				want := idx[7*k : min(7*k+7, len(idx))]
				if !slices.Equal(b.Indices, want) || len(b.X) != len(want)*size || len(b.Y) != len(want) {
					t.Fatalf("workers %d: batch %d has indices %v (%d values), want %v", workers, k, b.Indices, len(b.X), want)
				}
				for p, i := range want {
					for j := range size {
						c := j / 20
						if v := m.Pix[i*size+j]; b.X[p*size+j] != CIFAR10Norm.Value(c, v) {
							t.Fatalf("workers %d: image %d value %d = %v, want %v", workers, i, j, b.X[p*size+j], CIFAR10Norm.Value(c, v))
						}
					}
					if b.Y[p] != int32(i%7) {
						t.Fatalf("label of %d = %d, want %d", i, b.Y[p], i%7)
					}
				}
				k++
			}
			s.Close()
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if k != 8 {
				t.Fatalf("workers %d: %d batches, want 8 (7×7 + 1)", workers, k)
			}
			if len(calls) != 8 || calls[7] != [2]int{50, 50} || calls[0] != [2]int{7, 50} {
				t.Fatalf("progress calls %v", calls)
			}
		}
	}
}

// countingImages counts Load calls.
type countingImages struct {
	*MemImages
	loads atomic.Int64
}

func (c *countingImages) Load(i int, dst []float32) error {
	c.loads.Add(1)
	return c.MemImages.Load(i, dst)
}

// TestStreamBoundedAhead checks that a slow consumer never has more than
// Prefetch batches loaded ahead of it, and that loading does run ahead.
func TestStreamBoundedAhead(t *testing.T) {
	m := &countingImages{MemImages: randomMem(t, 100)}
	all := make([]int, 100)
	for i := range all {
		all[i] = i
	}
	const bs, prefetch = 5, 3
	s := NewStream(m, all, bs, LoadOptions{Workers: 4, Prefetch: prefetch})
	defer s.Close()
	k := 0
	maxAhead := 0
	for s.Next() {
		k++
		time.Sleep(20 * time.Millisecond) // the consumer is slow
		loaded := int(m.loads.Load())
		if bound := (k + prefetch) * bs; loaded > bound {
			t.Fatalf("after %d batches consumed, %d images loaded > %d (prefetch %d)", k, loaded, bound, prefetch)
		}
		maxAhead = max(maxAhead, loaded-k*bs)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("at most %d images loaded ahead of the consumer (bound %d)", maxAhead, prefetch*bs)
	if maxAhead == 0 {
		t.Error("the stream never loaded ahead of the consumer")
	}
}

// TestSequentialBatches serves an evaluation loop: consecutive batches come
// from the stream, an out-of-order request is loaded directly, both exact.
func TestSequentialBatches(t *testing.T) {
	m := randomMem(t, 23)
	var last [2]int
	fn, stop := SequentialBatches(m, 10, LoadOptions{Workers: 3, Progress: func(d, n int) { last = [2]int{d, n} }})
	defer stop()
	for pass := range 2 {
		for start := 0; start < 23; start += 10 {
			idx := make([]int, min(10, 23-start))
			for i := range idx {
				idx[i] = start + i
			}
			x, y, err := fn(idx)
			if err != nil {
				t.Fatal(err)
			}
			wx, wy, err := LoadBatch(m, idx, LoadOptions{Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(x, wx) || !slices.Equal(y, wy) {
				t.Fatalf("pass %d batch at %d differs from LoadBatch", pass, start)
			}
		}
		if last != [2]int{23, 23} {
			t.Fatalf("pass %d: progress %v, want [23 23]", pass, last)
		}
	}
	x, _, err := fn([]int{5, 2})
	if err != nil || len(x) != 2*60 {
		t.Fatalf("out-of-order request: %d values, %v", len(x), err)
	}
}

// writeBadFolder writes a val/ folder with one good PNG and bad files.
func writeBadFolder(t *testing.T, root string) (good string, bad map[string]string) {
	rng := rand.New(rand.NewPCG(5, 6))
	pngBytes := encodePNG(t, opaque(testImage(rng, 40, 30, 10)))
	jpgBytes := encodeJPEG(t, testImage(rng, 40, 30, 10), 90)
	good = filepath.Join(root, "a", "0good.png")
	writeFile(t, good, pngBytes)
	junk := make([]byte, 500)
	for i := range junk {
		junk[i] = byte(rng.IntN(256))
	}
	bad = map[string]string{
		filepath.Join(root, "a", "corrupt.png"):    "corrupt",
		filepath.Join(root, "a", "truncated.png"):  "",
		filepath.Join(root, "a", "truncated.jpg"):  "truncated",
		filepath.Join(root, "a", "cutscan.jpg"):    "truncated jpeg image",
		filepath.Join(root, "a", "text.jpg"):       "not a PNG, JPEG or GIF",
		filepath.Join(root, "a", "empty.png"):      "",
		filepath.Join(root, "a", "picture.bmp"):    "BMP, TIFF, WebP and PPM are not decoded",
		filepath.Join(root, "a", "hugeheader.png"): "implausible png size 100000x100000",
	}
	corrupt := slices.Clone(pngBytes)
	for i := 60; i < len(corrupt)-20; i += 7 {
		corrupt[i] ^= 0x5a
	}
	writeFile(t, filepath.Join(root, "a", "corrupt.png"), corrupt)
	writeFile(t, filepath.Join(root, "a", "truncated.png"), pngBytes[:len(pngBytes)/2])
	writeFile(t, filepath.Join(root, "a", "truncated.jpg"), jpgBytes[:len(jpgBytes)/2])
	bigJPEG := encodeJPEG(t, testImage(rng, 200, 150, 10), 90)
	writeFile(t, filepath.Join(root, "a", "cutscan.jpg"), bigJPEG[:len(bigJPEG)*4/5])
	writeFile(t, filepath.Join(root, "a", "text.jpg"), []byte("this is a text file, not an image\n"))
	writeFile(t, filepath.Join(root, "a", "empty.png"), nil)
	writeFile(t, filepath.Join(root, "a", "picture.bmp"), append([]byte("BM"), junk...))
	huge := slices.Clone(pngBytes[:33]) // signature + IHDR claiming 100000×100000
	copy(huge[16:], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(huge[29:], crc32.ChecksumIEEE(huge[12:29]))
	writeFile(t, filepath.Join(root, "a", "hugeheader.png"), huge)
	return good, bad
}

// TestFolderBadFiles checks that every corrupt, truncated, empty or non-image
// file gives an error naming it (and no panic), that a stream stops at the
// first bad file in order with its name, and that good files still load.
func TestFolderBadFiles(t *testing.T) {
	root := filepath.Join(t.TempDir(), "val")
	good, bad := writeBadFolder(t, root)
	f, err := NewFolderImages(root, 32, 0, ChannelNorm{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Files) != 1+len(bad) {
		t.Fatalf("%d files listed, want %d", len(f.Files), 1+len(bad))
	}
	dst := make([]float32, 3*32*32)
	for i, p := range f.Files {
		err := f.Load(i, dst)
		if p == good {
			if err != nil {
				t.Errorf("good file: %v", err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", p)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), bad[p]) {
			t.Errorf("%s: error %q does not name the file (and %q)", p, err, bad[p])
		}
		t.Logf("%s: %v", filepath.Base(p), err)
	}
	s := NewStream(f, []int{0, 1, 2, 3, 4, 5, 6, 7}, 3, LoadOptions{Workers: 3})
	for s.Next() {
	}
	s.Close()
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), f.Files[1]) {
		// Files are sorted: 0good.png first, so the first bad one is f.Files[1].
		t.Errorf("stream error %v, want one naming %s", err, f.Files[1])
	}
}

// TestFolderLayoutErrors checks the errors for a wrong folder layout.
func TestFolderLayoutErrors(t *testing.T) {
	img := func(t *testing.T) []byte {
		return encodePNG(t, opaque(testImage(rand.New(rand.NewPCG(1, 1)), 20, 20, 0)))
	}
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing dir", func(t *testing.T, dir string) {}, "no such file"},
		{"no val", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train", "a", "x.png"), img(t))
		}, "has no val/ folder"},
		{"no train", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "val", "a", "x.png"), img(t))
		}, "has no train/ folder"},
		{"no classes", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train", "x.png"), img(t))
			writeFile(t, filepath.Join(dir, "val", "a", "x.png"), img(t))
		}, "has no class folders"},
		{"empty class", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train", "a", "x.png"), img(t))
			writeFile(t, filepath.Join(dir, "train", "b", "readme.txt"), []byte("x"))
			writeFile(t, filepath.Join(dir, "train", "c", "y.png"), img(t))
			if err := os.MkdirAll(filepath.Join(dir, "train", "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "val", "a", "x.png"), img(t))
		}, "in the class folders b, d"},
		{"different classes", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train", "a", "x.png"), img(t))
			writeFile(t, filepath.Join(dir, "train", "b", "x.png"), img(t))
			writeFile(t, filepath.Join(dir, "val", "a", "x.png"), img(t))
			writeFile(t, filepath.Join(dir, "val", "c", "x.png"), img(t))
		}, "only in train: b; only in val: c"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			c.setup(t, dir)
			_, err := OpenFolder(dir, 32, 0, ChannelNorm{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestDecodeMutatedFiles feeds DecodeRGB 600 randomly damaged PNG, JPEG and
// GIF files (bytes flipped, cut, inserted): none may panic, and every failure
// must name the file.
func TestDecodeMutatedFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	img := testImage(rng, 37, 29, 20)
	var gifBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, img, nil); err != nil {
		t.Fatal(err)
	}
	originals := [][]byte{encodePNG(t, img), encodeJPEG(t, img, 80), encodePNG(t, grey(img)), gifBuf.Bytes()}
	fails := 0
	for k := range 600 {
		b := slices.Clone(originals[k%len(originals)])
		switch k % 3 {
		case 0:
			for range 1 + rng.IntN(8) {
				b[rng.IntN(len(b))] = byte(rng.IntN(256))
			}
		case 1:
			b = b[:rng.IntN(len(b))]
		case 2:
			at := rng.IntN(len(b))
			b = append(b[:at], append([]byte{byte(rng.IntN(256)), byte(rng.IntN(256))}, b[at:]...)...)
		}
		name := fmt.Sprintf("mutant-%03d.img", k)
		pix, h, w, err := decodeRGBBytes(name, b)
		if err != nil {
			fails++
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name the file", err)
			}
		} else if len(pix) != h*w*3 {
			t.Fatalf("%s: %d bytes for %dx%d", name, len(pix), w, h)
		}
	}
	t.Logf("%d of 600 damaged files rejected with an error, the rest decoded", fails)
}
