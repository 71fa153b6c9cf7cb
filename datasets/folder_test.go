package datasets

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// systemPython is Debian's interpreter, which has python3-torch,
// python3-torchvision and python3-pil.
const systemPython = "/usr/bin/python3"

// needTorchvision skips the test when PIL + torchvision are not installed.
func needTorchvision(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no PIL/torchvision reference run")
	}
	out, err := exec.Command(systemPython, "-c", "import torchvision, PIL, numpy").CombinedOutput()
	if err != nil {
		t.Skipf("PIL/torchvision reference unavailable (apt-get install python3-torch python3-torchvision python3-pil): %v %s", err, out)
	}
}

// scriptPath is scripts/pil_reference.py of this repository.
func scriptPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "scripts", "pil_reference.py"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pilReference is what scripts/pil_reference.py writes for a folder.
type pilReference struct {
	Classes []string
	Samples [][2]any
	Errors  [][2]string
	Pix     []uint8   // N×S×S×3
	Values  []float32 // N×3×S×S
	Version string
}

func runPILReference(t *testing.T, root string, size, resize int) *pilReference {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ref")
	cmd := exec.Command(systemPython, scriptPath(t), root, strconv.Itoa(size), strconv.Itoa(resize), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pil_reference.py: %v\n%s", err, b)
	}
	var meta struct {
		Classes     []string
		Samples     [][2]any
		Errors      [][2]string
		Torchvision string
		PIL         string `json:"pil"`
	}
	b, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	pix, err := os.ReadFile(out + ".u8")
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.ReadFile(out + ".f32")
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, len(fb)/4)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(fb[4*i:]))
	}
	return &pilReference{Classes: meta.Classes, Samples: meta.Samples, Errors: meta.Errors, Pix: pix, Values: vals,
		Version: "torchvision " + meta.Torchvision + ", PIL " + meta.PIL}
}

// testImage draws a w×h image: a smooth random field (a few random
// sinusoids per channel) plus uniform noise of ±noise levels.
func testImage(rng *rand.Rand, w, h int, noise int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	type wave struct{ fx, fy, ph, amp float64 }
	var waves [4][3]wave
	for c := range waves {
		for k := range waves[c] {
			waves[c][k] = wave{rng.Float64() * 0.2, rng.Float64() * 0.2, rng.Float64() * 6.3, 20 + rng.Float64()*40}
		}
	}
	for y := range h {
		for x := range w {
			var v [4]uint8
			for c := range 4 {
				s := 128.0
				for _, wv := range waves[c] {
					s += wv.amp * math.Sin(wv.fx*float64(x)+wv.fy*float64(y)+wv.ph)
				}
				if noise > 0 {
					s += float64(rng.IntN(2*noise+1) - noise)
				}
				v[c] = uint8(max(0, min(255, math.Round(s))))
			}
			img.SetNRGBA(x, y, color.NRGBA{v[0], v[1], v[2], v[3]})
		}
	}
	return img
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// opaque returns img with alpha 255 (an RGBA image: PNG writes it as RGB).
func opaque(img *image.NRGBA) *image.RGBA {
	b := img.Bounds()
	out := image.NewRGBA(b)
	for i := 0; i < len(img.Pix); i += 4 {
		copy(out.Pix[i:i+3], img.Pix[i:i+3])
		out.Pix[i+3] = 255
	}
	return out
}

func grey(img *image.NRGBA) *image.Gray {
	out := image.NewGray(img.Bounds())
	for i := range out.Pix {
		out.Pix[i] = img.Pix[4*i+1]
	}
	return out
}

// writePNGFolder writes a val/ folder of PNG images covering the colour
// types, portrait and landscape, odd sizes, up- and downscaling, a size that
// needs no resize, files in a sub-folder and files that are not images.
func writePNGFolder(t *testing.T, root string) {
	rng := rand.New(rand.NewPCG(7, 8))
	rgb := func(w, h, noise int) []byte { return encodePNG(t, opaque(testImage(rng, w, h, noise))) }
	writeFile(t, filepath.Join(root, "ant", "a1.png"), rgb(301, 173, 30))      // landscape, down
	writeFile(t, filepath.Join(root, "ant", "A0.PNG"), rgb(149, 263, 0))       // portrait, smooth, up
	writeFile(t, filepath.Join(root, "ant", "sub", "z.png"), rgb(97, 61, 60))  // both sides up
	writeFile(t, filepath.Join(root, "ant", "sub-b", "y.png"), rgb(45, 45, 5)) // square, up 5.7×
	writeFile(t, filepath.Join(root, "ant", "notes.txt"), []byte("not an image"))
	writeFile(t, filepath.Join(root, "bee", "g.png"), encodePNG(t, grey(testImage(rng, 333, 211, 20))))
	writeFile(t, filepath.Join(root, "bee", "rgba.png"), encodePNG(t, testImage(rng, 180, 240, 10)))
	pal := image.NewPaletted(image.Rect(0, 0, 123, 77), nil)
	for range 256 {
		pal.Palette = append(pal.Palette, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))})
	}
	for i := range pal.Pix {
		pal.Pix[i] = uint8((i%123 + i/123*3 + rng.IntN(20)) % 256)
	}
	writeFile(t, filepath.Join(root, "bee", "pal.png"), encodePNG(t, pal))
	w16 := image.NewRGBA64(image.Rect(0, 0, 77, 300))
	src := testImage(rng, 77, 300, 40)
	for i := 0; i < len(src.Pix); i += 4 {
		for c := range 3 {
			v := uint16(src.Pix[i+c])<<8 | uint16(rng.IntN(256))
			w16.Pix[2*(i+c)], w16.Pix[2*(i+c)+1] = uint8(v>>8), uint8(v)
		}
		w16.Pix[2*(i+3)], w16.Pix[2*(i+3)+1] = 255, 255
	}
	writeFile(t, filepath.Join(root, "bee", "h16.png"), encodePNG(t, w16))
	writeFile(t, filepath.Join(root, "Cat", "exact.png"), rgb(256, 300, 30)) // shorter side already 256
	writeFile(t, filepath.Join(root, "Cat", "sq.png"), rgb(257, 257, 30))    // centre offset 16.5
	writeFile(t, filepath.Join(root, "Cat", "big.png"), rgb(803, 611, 30))   // 2.4× down
	// Random sizes from 17 to 900 pixels a side, either orientation.
	for k := range 16 {
		w, h := 17+rng.IntN(884), 17+rng.IntN(884)
		writeFile(t, filepath.Join(root, "rand", fmt.Sprintf("r%02d-%dx%d.png", k, w, h)), rgb(w, h, rng.IntN(60)))
	}
}

// pixelDiff compares two equal-length byte arrays: mean and max |a − b|.
func pixelDiff(a, b []uint8) (mean float64, maxd int) {
	sum := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		sum += d
		maxd = max(maxd, d)
	}
	return float64(sum) / float64(len(a)), maxd
}

// checkAgainstPIL opens root with FolderImages and compares order, labels,
// cropped pixels and normalised values with the PIL/torchvision reference.
// It returns the per-file mean and max pixel differences.
func checkAgainstPIL(t *testing.T, root string, size int) (means []float64, maxes []int, f *FolderImages) {
	t.Helper()
	resize := ResizeFor(size)
	ref := runPILReference(t, root, size, resize)
	if len(ref.Errors) > 0 {
		t.Fatalf("PIL could not load %v", ref.Errors)
	}
	f, err := NewFolderImages(root, size, 0, ChannelNorm{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Classes, ref.Classes) {
		t.Fatalf("classes %v, torchvision %v", f.Classes, ref.Classes)
	}
	if len(f.Files) != len(ref.Samples) {
		t.Fatalf("%d files, torchvision %d: %v vs %v", len(f.Files), len(ref.Samples), f.Files, ref.Samples)
	}
	for i, s := range ref.Samples {
		if f.Files[i] != s[0].(string) || f.Labels[i] != int(s[1].(float64)) {
			t.Fatalf("sample %d: %s label %d, torchvision %s label %v", i, f.Files[i], f.Labels[i], s[0], s[1])
		}
	}
	n := size * size * 3
	for i := range f.Files {
		pix, err := f.Pixels(i)
		if err != nil {
			t.Fatal(err)
		}
		m, mx := pixelDiff(pix, ref.Pix[i*n:(i+1)*n])
		means, maxes = append(means, m), append(maxes, mx)
		// Normalised values: the same float32 arithmetic as torchvision.
		vals := make([]float32, n)
		if err := f.Load(i, vals); err != nil {
			t.Fatal(err)
		}
		want := ref.Values[i*n : (i+1)*n]
		hw := size * size
		for j := range vals {
			// Our value of the pixel PIL produced must be torchvision's exactly.
			c := j / hw
			p := ref.Pix[i*n+(j%hw)*3+c]
			if got := f.Norm.Value(c, p); got != want[j] {
				t.Fatalf("%s: value %d of pixel %d = %v, torchvision %v", f.Files[i], j, p, got, want[j])
			}
			if mx == 0 && vals[j] != want[j] {
				t.Fatalf("%s: Load value %d = %v, torchvision %v", f.Files[i], j, vals[j], want[j])
			}
		}
	}
	t.Logf("reference: %s", ref.Version)
	return means, maxes, f
}

// TestFolderMatchesTorchvisionPNG compares the evaluation transform on PNG
// files (lossless, so the resize alone is tested) with torchvision's
// ImageFolder + Resize + CenterCrop + ToTensor + Normalize on PIL, at 224
// (resize 256) and at 64 (resize 73).
func TestFolderMatchesTorchvisionPNG(t *testing.T) {
	needTorchvision(t)
	root := filepath.Join(t.TempDir(), "val")
	writePNGFolder(t, root)
	for _, size := range []int{224, 64} {
		means, maxes, f := checkAgainstPIL(t, root, size)
		total, worst := 0.0, 0
		for i := range means {
			t.Logf("size %d %-28s mean |Δ| %.4f max %d", size, strings.TrimPrefix(f.Files[i], root), means[i], maxes[i])
			total += means[i]
			worst = max(worst, maxes[i])
			if means[i] > 1 {
				t.Errorf("size %d %s: mean |Δ| %.4f levels > 1", size, f.Files[i], means[i])
			}
		}
		t.Logf("size %d: %d PNG files, mean |Δ| %.4f levels, max %d", size, len(means), total/float64(len(means)), worst)
		if worst != 0 {
			t.Errorf("size %d: PNG pixels differ from PIL by up to %d levels; the resize should be exact", size, worst)
		}
	}
}

// TestFolderJPEGAgainstPIL measures Go's JPEG decoding + the transform
// against libjpeg (PIL) + the same transform. Chroma upsampling and colour
// conversion follow libjpeg (jpegcolor.go); the IDCTs differ, so the bound is
// looser than for PNG and the figures are logged.
func TestFolderJPEGAgainstPIL(t *testing.T) {
	needTorchvision(t)
	root := filepath.Join(t.TempDir(), "val")
	rng := rand.New(rand.NewPCG(9, 10))
	writeFile(t, filepath.Join(root, "a", "land.jpg"), encodeJPEG(t, testImage(rng, 301, 173, 0), 90))
	writeFile(t, filepath.Join(root, "a", "port.JPEG"), encodeJPEG(t, testImage(rng, 149, 263, 20), 90))
	writeFile(t, filepath.Join(root, "a", "big.jpeg"), encodeJPEG(t, testImage(rng, 640, 480, 10), 75))
	writeFile(t, filepath.Join(root, "b", "grey.jpg"), encodeJPEG(t, grey(testImage(rng, 300, 200, 10)), 90))
	writeFile(t, filepath.Join(root, "b", "png-named.JPEG"), encodePNG(t, opaque(testImage(rng, 200, 300, 10))))
	writeFile(t, filepath.Join(root, "b", "jpeg-named.bmp"), encodeJPEG(t, testImage(rng, 250, 190, 10), 85))
	for _, j := range []struct{ name, w, h, mode, sub string }{
		{"cmyk.jpg", "275", "190", "CMYK", "0"},
		{"pil420.jpg", "263", "171", "RGB", "2"},
		{"pil422.jpg", "171", "263", "RGB", "1"},
		{"pil444.jpg", "300", "199", "RGB", "0"},
		{"pilgrey.jpg", "199", "300", "L", "0"},
	} {
		pilJPEG(t, filepath.Join(root, "b", j.name), j.w, j.h, j.mode, j.sub)
	}
	means, maxes, f := checkAgainstPIL(t, root, 224)
	for i := range means {
		t.Logf("%-20s mean |Δ| %.4f levels, max %d", strings.TrimPrefix(f.Files[i], root), means[i], maxes[i])
		// Observed with libjpeg-turbo (PIL 9.4): ≤ 0.05 mean, ≤ 3 max; the
		// rest is Go's IDCT against libjpeg's.
		if means[i] > 0.5 || maxes[i] > 16 {
			t.Errorf("%s: mean |Δ| %.4f levels > 0.5 or max %d > 16", f.Files[i], means[i], maxes[i])
		}
	}
}

// pilJPEG writes a JPEG with PIL/libjpeg (see scripts/pil_reference.py).
func pilJPEG(t *testing.T, path, w, h, mode, subsampling string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(systemPython, scriptPath(t), "--jpeg", path, w, h, "3", mode, subsampling).CombinedOutput(); err != nil {
		t.Fatalf("writing a %s JPEG: %v %s", mode, err, b)
	}
}

// TestDecodeAgainstPIL compares DecodeRGB alone (no resize, whose averaging
// hides differences) with PIL's Image.open(f).convert("RGB"): PNG exactly,
// JPEG within the IDCT differences, figures logged.
func TestDecodeAgainstPIL(t *testing.T) {
	needTorchvision(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(13, 14))
	var files []string
	add := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		files = append(files, p)
	}
	add("rgb.png", encodePNG(t, opaque(testImage(rng, 131, 77, 20))))
	add("rgba.png", encodePNG(t, testImage(rng, 77, 131, 20)))
	add("go420.jpg", encodeJPEG(t, testImage(rng, 301, 173, 10), 90))
	add("gogrey.jpg", encodeJPEG(t, grey(testImage(rng, 173, 301, 10)), 90))
	for _, j := range []struct{ name, w, h, mode, sub string }{
		{"pil420.jpg", "263", "171", "RGB", "2"}, {"pil422.jpg", "171", "263", "RGB", "1"},
		{"pil444.jpg", "300", "199", "RGB", "0"}, {"pilcmyk.jpg", "275", "190", "CMYK", "0"},
		{"pil420odd.jpg", "3", "5", "RGB", "2"},
	} {
		p := filepath.Join(dir, j.name)
		pilJPEG(t, p, j.w, j.h, j.mode, j.sub)
		files = append(files, p)
	}
	out := filepath.Join(dir, "ref")
	if b, err := exec.Command(systemPython, append([]string{scriptPath(t), "--decode", out}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("pil_reference.py --decode: %v %s", err, b)
	}
	var meta struct{ Sizes [][2]int }
	b, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(out + ".u8")
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for k, f := range files {
		pix, h, w, err := DecodeRGB(f)
		if err != nil {
			t.Fatal(err)
		}
		if [2]int{w, h} != meta.Sizes[k] {
			t.Fatalf("%s: %dx%d, PIL %v", f, w, h, meta.Sizes[k])
		}
		m, mx := pixelDiff(pix, ref[off:off+len(pix)])
		off += len(pix)
		t.Logf("%-14s %dx%d decoded: mean |Δ| %.4f levels, max %d", filepath.Base(f), w, h, m, mx)
		if strings.HasSuffix(f, ".png") && mx != 0 {
			t.Errorf("%s: PNG decoding differs from PIL by up to %d", f, mx)
		}
		if m > 0.5 || mx > 16 {
			t.Errorf("%s: mean |Δ| %.4f > 0.5 or max %d > 16", f, m, mx)
		}
	}
}

func TestResizeShorterAndCenterOffset(t *testing.T) {
	for _, c := range []struct{ h, w, size, wh, ww int }{
		{173, 301, 256, 256, 445}, // 256·301/173 = 445.4
		{263, 149, 256, 451, 256},
		{300, 256, 256, 300, 256},
		{100, 100, 256, 256, 256},
	} {
		if h, w := ResizeShorter(c.h, c.w, c.size); h != c.wh || w != c.ww {
			t.Errorf("ResizeShorter(%d, %d, %d) = %d, %d; want %d, %d", c.h, c.w, c.size, h, w, c.wh, c.ww)
		}
	}
	for _, c := range []struct{ n, crop, want int }{
		{256, 224, 16}, {257, 224, 16}, {259, 224, 18}, {258, 224, 17}, {224, 224, 0}, {200, 224, -12}, {201, 224, -11},
	} {
		if got := CenterOffset(c.n, c.crop); got != c.want {
			t.Errorf("CenterOffset(%d, %d) = %d, want %d", c.n, c.crop, got, c.want)
		}
	}
	if ResizeFor(224) != 256 || ResizeFor(64) != 73 || ResizeFor(32) != 37 {
		t.Errorf("ResizeFor(224, 64, 32) = %d, %d, %d; want 256, 73, 37", ResizeFor(224), ResizeFor(64), ResizeFor(32))
	}
}
