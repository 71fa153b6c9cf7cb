package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRandomResizedCropParams checks the drawn boxes against
// RandomResizedCrop's contract: inside the image, area fraction in
// [0.08, 1] and aspect in [3/4, 4/3] up to the rounding of the sides, the
// fallback centre crop for extreme aspects, about half flipped, and the same
// draws for the same seed.
func TestRandomResizedCropParams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	flips := 0
	const draws = 4000
	for k := range draws {
		h, w := 20+rng.IntN(500), 20+rng.IntN(500)
		p := RandomResizedCropParams(rng, h, w)
		if p.Top < 0 || p.Left < 0 || p.Top+p.Height > h || p.Left+p.Width > w || p.Height <= 0 || p.Width <= 0 {
			t.Fatalf("draw %d: box %+v outside %dx%d", k, p, w, h)
		}
		// Rounding each side moves area and aspect by at most half a pixel.
		frac := float64(p.Height*p.Width) / float64(h*w)
		lo := 0.08 * (1 - 1/float64(p.Height)) * (1 - 1/float64(p.Width))
		aspect := float64(p.Width) / float64(p.Height)
		slack := (1 + 0.5/float64(p.Width)) * (1 + 0.5/float64(p.Height))
		if frac < lo || aspect < 0.75/slack || aspect > 4.0/3.0*slack {
			// Allowed only as the fallback: the centred largest box of aspect
			// in [3/4, 4/3].
			fallback := (p.Width == w && (p.Height == h || p.Height == int(math.RoundToEven(float64(w)/0.75)))) ||
				(p.Height == h && p.Width == int(math.RoundToEven(float64(h)*4/3)))
			if !fallback || p.Top != (h-p.Height)/2 || p.Left != (w-p.Width)/2 {
				t.Fatalf("draw %d on %dx%d: box %+v has area fraction %.4f, aspect %.4f", k, w, h, p, frac, aspect)
			}
		}
		if p.Flip {
			flips++
		}
	}
	if flips < draws*45/100 || flips > draws*55/100 {
		t.Errorf("%d of %d flipped", flips, draws)
	}
	// Extreme aspect: 10 tries cannot fit, so the fallback centre crop.
	p := RandomResizedCropParams(rand.New(rand.NewPCG(3, 3)), 10, 1000)
	if p.Height != 10 || p.Width != 13 || p.Top != 0 || p.Left != (1000-13)/2 {
		t.Errorf("fallback on 1000x10: %+v, want height 10, width round(10·4/3)=13, centred", p)
	}
	a := &AugmentedImages{Seed: 9}
	first, again, other := a.Params(5, 300, 200), a.Params(5, 300, 200), a.Params(6, 300, 200)
	if first != again || first == other {
		t.Error("per-image draws are not a function of (seed, index)")
	}
}

// TestAugmentedMatchesTorchvision checks that, for the drawn (and some chosen)
// crop boxes, the crop + resize + flip equals torchvision's resized_crop +
// hflip on PIL exactly, and that Load normalises those pixels.
func TestAugmentedMatchesTorchvision(t *testing.T) {
	needTorchvision(t)
	root := filepath.Join(t.TempDir(), "train")
	rng := rand.New(rand.NewPCG(17, 18))
	for k, sz := range [][2]int{{301, 173}, {149, 263}, {40, 33}, {500, 375}} {
		writeFile(t, filepath.Join(root, "c", fmt.Sprintf("%d.png", k)), encodePNG(t, opaque(testImage(rng, sz[0], sz[1], 20))))
	}
	f, err := NewFolderImages(root, 48, 0, ChannelNorm{})
	if err != nil {
		t.Fatal(err)
	}
	a := &AugmentedImages{FolderImages: f, Seed: 4}
	type cs struct {
		file int
		p    CropParams
	}
	var cases []cs
	for i := range f.Files {
		_, h, w, err := DecodeRGB(f.Files[i])
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, cs{i, a.Params(i, h, w)})
	}
	cases = append(cases, cs{0, CropParams{Top: 10, Left: 20, Height: 48, Width: 48, Flip: true}}, // no resize
		cs{1, CropParams{Top: 0, Left: 0, Height: 263, Width: 149}},          // whole image
		cs{2, CropParams{Top: 3, Left: 1, Height: 7, Width: 30, Flip: true}}) // upscale
	args := []string{scriptPath(t), "--crops", filepath.Join(t.TempDir(), "crops"), "48"}
	for _, c := range cases {
		flip := "0"
		if c.p.Flip {
			flip = "1"
		}
		args = append(args, fmt.Sprintf("%s,%d,%d,%d,%d,%s", f.Files[c.file], c.p.Top, c.p.Left, c.p.Height, c.p.Width, flip))
	}
	if b, err := exec.Command(systemPython, args...).CombinedOutput(); err != nil {
		t.Fatalf("pil_reference.py --crops: %v %s", err, b)
	}
	ref, err := os.ReadFile(args[2] + ".u8")
	if err != nil {
		t.Fatal(err)
	}
	n := 48 * 48 * 3
	for k, c := range cases {
		src, h, w, err := DecodeRGB(f.Files[c.file])
		if err != nil {
			t.Fatal(err)
		}
		got, err := cropResizeFlip(src, h, w, c.p, 48)
		if err != nil {
			t.Fatal(err)
		}
		if m, mx := pixelDiff(got, ref[k*n:(k+1)*n]); mx != 0 {
			t.Errorf("%s crop %+v: mean |Δ| %.4f, max %d against torchvision", f.Files[c.file], c.p, m, mx)
		}
		if k < len(f.Files) { // the drawn crops: Load gives their normalised pixels
			vals := make([]float32, n)
			if err := a.Load(c.file, vals); err != nil {
				t.Fatal(err)
			}
			for j := range vals {
				ch, pos := j/(48*48), j%(48*48)
				if want := f.Norm.Value(ch, ref[k*n+pos*3+ch]); vals[j] != want {
					t.Fatalf("%s: value %d = %v, want %v", f.Files[c.file], j, vals[j], want)
				}
			}
		}
		t.Logf("%s %+v: equal to torchvision", filepath.Base(f.Files[c.file]), c.p)
	}
	if _, err := cropResizeFlip(make([]uint8, 300), 10, 10, CropParams{Top: 5, Left: 0, Height: 6, Width: 10}, 4); err == nil {
		t.Error("box outside the image: no error")
	}
}
