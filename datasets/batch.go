package datasets

import (
	"fmt"
	"math/rand/v2"
)

// Normalization holds the mean and standard deviation of a data set's pixel
// intensities scaled to [0, 1] (pixel/255), over its training split.
type Normalization struct{ Mean, Std float64 }

// Standard normalisation constants.
var (
	// FashionMNISTNorm: mean 0.2860, std 0.3530.
	FashionMNISTNorm = Normalization{Mean: 0.2860, Std: 0.3530}
	// MNISTNorm: mean 0.1307, std 0.3081.
	MNISTNorm = Normalization{Mean: 0.1307, Std: 0.3081}
)

// Value returns the normalised value of pixel p:
//
//	(p/255 − Mean) / Std
//
// computed in float64 and rounded once to float32.
func (n Normalization) Value(p uint8) float32 {
	return float32((float64(p)/255 - n.Mean) / n.Std)
}

// table returns Value for all 256 pixel values.
func (n Normalization) table() *[256]float32 {
	var t [256]float32
	for p := range t {
		t[p] = n.Value(uint8(p))
	}
	return &t
}

// Batch turns the images at indices into a float32 batch of shape
// [len(indices), 1, H, W] (NCHW, flattened row-major), each value
// norm.Value(pixel) = (pixel/255 − Mean)/Std, together with their labels as
// int32. An index outside 0..N-1 is an error.
func (s *Split) Batch(indices []int, norm Normalization) (x []float32, y []int32, err error) {
	if err := s.check(indices); err != nil {
		return nil, nil, err
	}
	lut := norm.table()
	hw := s.H * s.W
	x = make([]float32, len(indices)*hw)
	y = make([]int32, len(indices))
	for b, i := range indices {
		dst := x[b*hw : (b+1)*hw]
		for j, p := range s.Image(i) {
			dst[j] = lut[p]
		}
		y[b] = int32(s.Labels[i])
	}
	return x, y, nil
}

// Augment configures the training augmentation of AugmentedBatch.
type Augment struct {
	// Pad is the zero-padding of the random crop: the image is padded by Pad
	// pixels on every side with pixel value 0 (so the padding's normalised
	// value is (0 − Mean)/Std, not 0), and an H×W window is cut at a uniform
	// random offset (dy, dx) in 0..2*Pad. Pad 0 disables cropping.
	Pad int
	// Flip mirrors each image left-right with probability 1/2.
	Flip bool
}

// DefaultAugment is the standard training augmentation: random crop with
// padding 2 and random horizontal flip.
var DefaultAugment = Augment{Pad: 2, Flip: true}

// AugmentedBatch is Batch with random augmentation applied to every image:
// output pixel (y, x) is taken from padded-image pixel (y+dy, x'+dx), where
// x' = W−1−x if the image is flipped and x otherwise, and the padded image is
// the source shifted by (Pad, Pad) with pixel value 0 all around (equivalent
// to torchvision's RandomCrop(padding=Pad, fill=0) then
// RandomHorizontalFlip before ToTensor and Normalize).
//
// For each image, in the order of indices, it draws dy = rng.IntN(2*Pad+1)
// and dx = rng.IntN(2*Pad+1) if Pad > 0, then flip = rng.IntN(2) == 1 if
// Flip, so the same rng state always gives the same batch.
func (s *Split) AugmentedBatch(indices []int, norm Normalization, aug Augment, rng *rand.Rand) (x []float32, y []int32, err error) {
	if err := s.check(indices); err != nil {
		return nil, nil, err
	}
	if aug.Pad < 0 {
		return nil, nil, fmt.Errorf("datasets: negative crop padding %d", aug.Pad)
	}
	if rng == nil && (aug.Pad > 0 || aug.Flip) {
		return nil, nil, fmt.Errorf("datasets: AugmentedBatch needs a non-nil *rand.Rand")
	}
	lut := norm.table()
	hw := s.H * s.W
	x = make([]float32, len(indices)*hw)
	y = make([]int32, len(indices))
	for b, i := range indices {
		dy, dx, flip := aug.Pad, aug.Pad, false
		if aug.Pad > 0 {
			dy = rng.IntN(2*aug.Pad + 1)
			dx = rng.IntN(2*aug.Pad + 1)
		}
		if aug.Flip {
			flip = rng.IntN(2) == 1
		}
		cropFlip(x[b*hw:(b+1)*hw], s.Image(i), s.H, s.W, aug.Pad, dy, dx, flip, lut)
		y[b] = int32(s.Labels[i])
	}
	return x, y, nil
}

// cropFlip writes into dst (h*w values) the h×w window at offset (dy, dx) of
// src (h×w pixels) zero-padded by pad on every side, mirrored left-right if
// flip, mapping each pixel through lut (padding is lut[0]):
//
//	dst[y][x] = lut[src[y+dy−pad][x'+dx−pad]], x' = w−1−x if flip else x,
//
// or lut[0] where the source coordinate falls outside src.
func cropFlip(dst []float32, src []uint8, h, w, pad, dy, dx int, flip bool, lut *[256]float32) {
	padValue := lut[0]
	for y := range h {
		row := dst[y*w : (y+1)*w]
		sy := y + dy - pad
		if sy < 0 || sy >= h {
			for x := range row {
				row[x] = padValue
			}
			continue
		}
		srow := src[sy*w : (sy+1)*w]
		for x := range row {
			cx := x
			if flip {
				cx = w - 1 - x
			}
			if sx := cx + dx - pad; sx >= 0 && sx < w {
				row[x] = lut[srow[sx]]
			} else {
				row[x] = padValue
			}
		}
	}
}

// check validates the split's shape and that every index lies in 0..N-1.
func (s *Split) check(indices []int) error {
	if s == nil {
		return fmt.Errorf("datasets: nil split")
	}
	if s.N < 0 || s.H <= 0 || s.W <= 0 || len(s.Images) != s.N*s.H*s.W || len(s.Labels) != s.N {
		return fmt.Errorf("datasets: inconsistent split: N=%d H=%d W=%d with %d pixels and %d labels",
			s.N, s.H, s.W, len(s.Images), len(s.Labels))
	}
	for _, i := range indices {
		if i < 0 || i >= s.N {
			return fmt.Errorf("datasets: index %d outside 0..%d", i, s.N-1)
		}
	}
	return nil
}

// Second words of the PCG seeds, so that epoch shuffles and calibration
// sampling draw from different streams for the same seed.
const (
	epochStream = 0x65706f6368 // "epoch"
	calibStream = 0x63616c6962 // "calib"
)

// EpochPermutation returns the training order of epoch number epoch: a
// permutation of 0..n-1 equal to
//
//	rand.New(rand.NewPCG(seed, 0x65706f6368+uint64(epoch))).Perm(n)
//
// It depends only on (n, seed, epoch), so a run can be resumed at any epoch.
func EpochPermutation(n int, seed uint64, epoch int) []int {
	return rand.New(rand.NewPCG(seed, epochStream+uint64(epoch))).Perm(n)
}

// Minibatches cuts perm into consecutive batches of batchSize indices (the
// batches share perm's memory). The last, shorter batch is dropped if
// dropLast, kept otherwise. batchSize <= 0 gives no batches.
func Minibatches(perm []int, batchSize int, dropLast bool) [][]int {
	if batchSize <= 0 {
		return nil
	}
	var out [][]int
	for start := 0; start < len(perm); start += batchSize {
		end := start + batchSize
		if end > len(perm) {
			if dropLast {
				break
			}
			end = len(perm)
		}
		out = append(out, perm[start:end:end])
	}
	return out
}

// SampleCalibration chooses n distinct images of split (the training split,
// for BRECQ calibration) and returns their indices, the first n entries of
//
//	rand.New(rand.NewPCG(seed, 0x63616c6962)).Perm(split.N)
//
// in that order. The same seed always gives the same indices. n must lie in
// 1..split.N.
func SampleCalibration(split *Split, n int, seed uint64) (indices []int, err error) {
	if split == nil {
		return nil, fmt.Errorf("datasets: SampleCalibration: nil split")
	}
	if n <= 0 || n > split.N {
		return nil, fmt.Errorf("datasets: SampleCalibration: cannot choose %d distinct images from %d (want 1..%d)",
			n, split.N, split.N)
	}
	return rand.New(rand.NewPCG(seed, calibStream)).Perm(split.N)[:n:n], nil
}
