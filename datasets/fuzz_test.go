package datasets

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadIDX feeds arbitrary bytes to the IDX readers, as images and as
// labels, raw and gzip-compressed: they must fail with an error naming the
// file (never panic or allocate what the header merely claims), and a
// successful read must return exactly the payload its header describes,
// the same for the raw and the compressed file.
func FuzzReadIDX(f *testing.F) {
	f.Add(tinyImages)
	f.Add(tinyLabels)
	f.Add(threeLabels)
	f.Add([]byte{})
	f.Add(tinyImages[:10])
	f.Add(append(bytes.Clone(tinyImages), 0))
	f.Add([]byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5})
	f.Add([]byte{0x1f, 0x8b, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		raw := filepath.Join(dir, "raw")
		if err := os.WriteFile(raw, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
		gz := filepath.Join(dir, "gz")
		if err := os.WriteFile(gz, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}

		pixels, n, rows, cols, err := ReadImages(raw)
		pixels2, n2, rows2, cols2, err2 := ReadImages(gz)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("raw and gzip disagree: %v vs %v", err, err2)
		}
		if err != nil {
			if !bytes.Contains([]byte(err.Error()), []byte(raw)) {
				t.Fatalf("error does not name the file: %v", err)
			}
		} else {
			if len(data) < 16 || binary.BigEndian.Uint32(data) != MagicImages {
				t.Fatalf("accepted %d bytes without an image header", len(data))
			}
			if n != int(binary.BigEndian.Uint32(data[4:])) || rows != int(binary.BigEndian.Uint32(data[8:])) ||
				cols != int(binary.BigEndian.Uint32(data[12:])) || len(pixels) != n*rows*cols {
				t.Fatalf("dimensions %d x %d x %d with %d pixels do not match the header", n, rows, cols, len(pixels))
			}
			if !bytes.Equal(pixels, data[16:]) {
				t.Fatal("pixels differ from the payload")
			}
			if n2 != n || rows2 != rows || cols2 != cols || !bytes.Equal(pixels2, pixels) {
				t.Fatal("gzip read differs from raw read")
			}
		}

		labels, err := ReadLabels(raw)
		labels2, err2 := ReadLabels(gz)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("labels: raw and gzip disagree: %v vs %v", err, err2)
		}
		if err == nil {
			if len(data) < 8 || binary.BigEndian.Uint32(data) != MagicLabels ||
				len(labels) != int(binary.BigEndian.Uint32(data[4:])) || !bytes.Equal(labels, data[8:]) || !bytes.Equal(labels, labels2) {
				t.Fatalf("labels do not match the file: %d labels from %d bytes", len(labels), len(data))
			}
		}
	})
}
