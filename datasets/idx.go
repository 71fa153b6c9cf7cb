// Package datasets loads image classification data sets — MNIST and
// Fashion-MNIST from IDX files, CIFAR-10 from its binary files, and image
// folders in ImageNet layout (train/<class>/*, val/<class>/*) decoded on
// demand — normalises them into float32 NCHW batches, and provides the
// seeded shuffling, augmentation and calibration sampling used by training
// and BRECQ quantisation runs.
//
// Open(spec, Options) is the single entry: "fashion-mnist", "mnist",
// "cifar10:DIR" or "folder:DIR". Every source is an Images (indexed,
// labelled, normalised CHW); Stream serves batches of any of them in a fixed
// order with parallel workers and bounded read-ahead, and Data.Calibration
// draws the seeded calibration set. Folder images get torchvision's
// evaluation transform (Resize(round(size·256/224)) with PIL's antialiased
// bilinear filter, CenterCrop(size), ToTensor, Normalize), reproduced exactly
// for PNG and within libjpeg-vs-Go IDCT differences for JPEG.
//
// Everything here is deterministic given the seeds: the same seed always
// gives the same permutations, augmentations and calibration indices, and
// the same batches whatever the number of workers.
package datasets

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = uint8) and the
// number of dimensions.
const (
	// MagicImages is the IDX magic number of a uint8 image file with
	// dimensions [N, rows, cols].
	MagicImages uint32 = 0x00000803
	// MagicLabels is the IDX magic number of a uint8 label file with
	// dimension [N].
	MagicLabels uint32 = 0x00000801
)

// maxIDXBytes bounds the payload size a header may claim, so that a corrupt
// header cannot make the reader allocate absurd amounts of memory.
const maxIDXBytes = 1 << 31

// ReadImages reads an IDX uint8 image file (magic 0x00000803), gzip-compressed
// (detected by the leading bytes 0x1f 0x8b) or raw. It returns the pixels of
// all n images, row-major, image after image: pixel (i, y, x) is
// pixels[(i*rows+y)*cols+x]. Any malformed input gives an error naming path.
func ReadImages(path string) (pixels []uint8, n, rows, cols int, err error) {
	dims, data, err := readIDX(path, MagicImages)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	return data, dims[0], dims[1], dims[2], nil
}

// ReadLabels reads an IDX uint8 label file (magic 0x00000801),
// gzip-compressed or raw, and returns one label per item. Any malformed input
// gives an error naming path.
func ReadLabels(path string) ([]uint8, error) {
	_, data, err := readIDX(path, MagicLabels)
	return data, err
}

// ReadSplit reads an image file and its label file (see ReadImages and
// ReadLabels) into a Split; the two files must hold the same number of items.
func ReadSplit(imagesPath, labelsPath string) (*Split, error) {
	pixels, n, h, w, err := ReadImages(imagesPath)
	if err != nil {
		return nil, err
	}
	labels, err := ReadLabels(labelsPath)
	if err != nil {
		return nil, err
	}
	if len(labels) != n {
		return nil, fmt.Errorf("datasets: %s and %s: count mismatch: %d images but %d labels",
			imagesPath, labelsPath, n, len(labels))
	}
	return &Split{Images: pixels, Labels: labels, N: n, H: h, W: w}, nil
}

// readIDX reads an IDX file whose magic number must be want and returns its
// dimensions and its uint8 payload.
func readIDX(path string, want uint32) (dims []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("datasets: %w", err)
	}
	size := st.Size()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("datasets: %s: "+format, append([]any{path}, args...)...)
	}

	// Sniff the gzip magic without moving the file offset.
	var sniff [2]byte
	ns, _ := f.ReadAt(sniff[:], 0)
	compressed := ns == 2 && sniff[0] == 0x1f && sniff[1] == 0x8b
	var r io.Reader = f
	sizeHint := size // decompressed file size, as far as we can tell
	if compressed {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return nil, nil, fail("corrupt gzip header: %v", err)
		}
		defer zr.Close()
		r = zr
		sizeHint = gzipSizeHint(f, size)
	}

	// Header: magic, then one big-endian uint32 per dimension.
	var hdr [4]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, headerErr(fail, n, 4, err)
	}
	magic := binary.BigEndian.Uint32(hdr[:])
	if magic != want {
		return nil, nil, fail("bad magic 0x%08x, want 0x%08x (%s)", magic, want, magicName(want))
	}
	ndims := int(magic & 0xff)
	dimBytes := make([]byte, 4*ndims)
	if n, err := io.ReadFull(r, dimBytes); err != nil {
		return nil, nil, headerErr(fail, 4+n, 4+len(dimBytes), err)
	}
	headerLen := int64(4 + len(dimBytes))
	dims = make([]int, ndims)
	total := uint64(1)
	for i := range dims {
		d := binary.BigEndian.Uint32(dimBytes[4*i:])
		total *= uint64(d)
		if total > maxIDXBytes {
			return nil, nil, fail("implausible header: dimensions %v claim more than %d bytes",
				dimsOf(dimBytes), uint64(maxIDXBytes))
		}
		dims[i] = int(d)
	}
	if ndims == 3 && dims[0] > 0 && (dims[1] == 0 || dims[2] == 0) {
		return nil, nil, fail("bad header: %d images of %dx%d pixels", dims[0], dims[1], dims[2])
	}
	wantBytes := int64(total)
	what := describe(dims, wantBytes)

	if !compressed && size-headerLen != wantBytes {
		if size-headerLen < wantBytes {
			return nil, nil, fail("truncated: header says %s, file has %d", what, size-headerLen)
		}
		return nil, nil, fail("trailing data: header says %s, file has %d", what, size-headerLen)
	}

	data, err = readPayload(r, wantBytes, sizeHint-headerLen)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fail("truncated: header says %s, file has %d (after decompression)", what, len(data))
		}
		return nil, nil, fail("corrupt data after %d of %d payload bytes: %v", len(data), wantBytes, err)
	}
	// The stream must end exactly here. For gzip this read also verifies the
	// CRC-32 and length trailer.
	var extra [1]byte
	if n, err := io.ReadFull(r, extra[:]); n > 0 {
		if compressed {
			// More data than the header claims: a damaged stream usually
			// decodes to garbage of another length, and then fails its
			// checksum. Read on (bounded) to tell the two apart.
			if _, err := io.CopyN(io.Discard, r, maxIDXBytes); err != nil && err != io.EOF {
				return nil, nil, fail("corrupt gzip data: %v", err)
			}
		}
		return nil, nil, fail("trailing data: header says %s, file has more (after decompression)", what)
	} else if err != io.EOF {
		return nil, nil, fail("corrupt data at end of file: %v", err)
	}
	return dims, data, nil
}

// headerErr reports a header that could not be read completely.
func headerErr(fail func(string, ...any) error, got, want int, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fail("truncated: header incomplete (%d of %d bytes)", got, want)
	}
	return fail("reading header: %v", err)
}

// readPayload reads exactly want bytes from r. capHint is the expected number
// of bytes available; it sizes the first allocation, and the buffer only grows
// past it as data actually arrives, so a lying header cannot force a huge
// allocation. On a short read it returns the bytes read and the error.
func readPayload(r io.Reader, want, capHint int64) ([]byte, error) {
	c := min(want, max(capHint, 1<<16))
	buf := make([]byte, 0, c)
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(want, 2*int64(cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// gzipSizeHint returns the decompressed size recorded in the gzip trailer
// (ISIZE, the last four bytes, little-endian, size modulo 2^32), or size if it
// cannot be read.
func gzipSizeHint(f *os.File, size int64) int64 {
	var tail [4]byte
	if size < 18 {
		return size
	}
	if _, err := f.ReadAt(tail[:], size-4); err != nil {
		return size
	}
	return int64(binary.LittleEndian.Uint32(tail[:]))
}

// magicName names the IDX file kind of a magic number.
func magicName(m uint32) string {
	switch m {
	case MagicImages:
		return "IDX uint8 images"
	case MagicLabels:
		return "IDX uint8 labels"
	}
	return "unknown"
}

// describe states what a header announces, for error messages.
func describe(dims []int, nbytes int64) string {
	switch len(dims) {
	case 3:
		return fmt.Sprintf("%d images of %dx%d (%d bytes)", dims[0], dims[1], dims[2], nbytes)
	case 1:
		return fmt.Sprintf("%d labels (%d bytes)", dims[0], nbytes)
	}
	return fmt.Sprintf("dimensions %v (%d bytes)", dims, nbytes)
}

// dimsOf decodes big-endian uint32 dimensions for error messages.
func dimsOf(b []byte) []uint32 {
	d := make([]uint32, len(b)/4)
	for i := range d {
		d[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return d
}
