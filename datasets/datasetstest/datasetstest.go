// Package datasetstest writes small synthetic data sets in the on-disk
// formats the datasets package reads, for end-to-end tests of commands that
// take --data folder:DIR or cifar10:DIR.
package datasetstest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// WriteFolder writes an image folder in ImageNet layout under dir:
// dir/{train,val}/c<k>/<i>.{png,jpg} for classes k = 0..classes−1 with
// trainPer and valPer images per class. Image sizes vary between 40 and 120
// pixels a side (portrait and landscape), every other file is a JPEG, and
// each class has its own dominant colour so that a network can tell them
// apart. The same seed always writes the same files.
func WriteFolder(dir string, classes, trainPer, valPer int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x666f6c646572))
	for _, split := range []struct {
		name string
		per  int
	}{{"train", trainPer}, {"val", valPer}} {
		for k := range classes {
			cdir := filepath.Join(dir, split.name, fmt.Sprintf("c%03d", k))
			if err := os.MkdirAll(cdir, 0o755); err != nil {
				return err
			}
			for i := range split.per {
				w, h := 40+rng.IntN(81), 40+rng.IntN(81)
				img := classImage(rng, w, h, k, classes)
				var b bytes.Buffer
				name := fmt.Sprintf("%04d.png", i)
				var err error
				if i%2 == 1 {
					name = fmt.Sprintf("%04d.jpg", i)
					err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
				} else {
					err = png.Encode(&b, img)
				}
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(cdir, name), b.Bytes(), 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// classImage draws a w×h image whose hue depends on class k of n, with a
// random smooth pattern and noise on top.
func classImage(rng *rand.Rand, w, h, k, n int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	hue := 2 * math.Pi * float64(k) / float64(max(n, 1))
	base := [3]float64{128 + 90*math.Cos(hue), 128 + 90*math.Cos(hue-2.094), 128 + 90*math.Cos(hue+2.094)}
	fx, fy, ph := 0.05+0.2*rng.Float64(), 0.05+0.2*rng.Float64(), 6.3*rng.Float64()
	for y := range h {
		for x := range w {
			s := 30 * math.Sin(fx*float64(x)+fy*float64(y)+ph)
			var c [3]uint8
			for ch := range 3 {
				c[ch] = uint8(max(0, min(255, base[ch]+s+float64(rng.IntN(21)-10))))
			}
			img.SetRGBA(x, y, color.RGBA{c[0], c[1], c[2], 255})
		}
	}
	return img
}

// WriteCIFAR10 writes the six CIFAR-10 binary files (data_batch_1..5.bin,
// test_batch.bin) into dir with trainPerFile and testN random 3×32×32 records
// (label byte, then 1024 red, 1024 green, 1024 blue bytes), labels cycling
// through 0..9. The same seed always writes the same files.
func WriteCIFAR10(dir string, trainPerFile, testN int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x6369666172))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}
	for f, name := range names {
		n := trainPerFile
		if f == len(names)-1 {
			n = testN
		}
		b := make([]byte, 0, n*3073)
		for i := range n {
			b = append(b, byte((f*n+i)%10))
			for range 3072 {
				b = append(b, byte(rng.IntN(256)))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
