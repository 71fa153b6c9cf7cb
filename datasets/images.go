package datasets

import (
	"fmt"
	"math/rand/v2"
)

// Images is an indexed, labelled image collection whose items come out as
// normalised float32 C×H×W arrays (one image of an NCHW batch). In-memory
// data sets (MNIST, Fashion-MNIST, CIFAR-10) and image folders, which decode
// files on demand, both implement it; Stream and LoadBatch serve batches of
// any of them.
type Images interface {
	// Len is the number of images.
	Len() int
	// Shape is the channel count, height and width of every image.
	Shape() (c, h, w int)
	// Label is the class of image i, in 0..NumClasses−1.
	Label(i int) int
	// Load writes image i, normalised, into dst (c·h·w values, CHW order).
	// It must be safe to call from several goroutines at once.
	Load(i int, dst []float32) error
}

// ChannelNorm holds per-channel normalisation constants of pixels scaled to
// [0, 1]: channel c of pixel p becomes
//
//	(float32(p)/255 − Mean[c]) / Std[c]
//
// computed in float32, exactly as torchvision's ToTensor followed by
// Normalize(Mean, Std).
type ChannelNorm struct{ Mean, Std []float32 }

// Standard per-channel normalisation constants.
var (
	// ImageNetNorm: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225), the
	// constants torchvision's and the BRECQ authors' ImageNet models use.
	ImageNetNorm = ChannelNorm{Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}}
	// CIFAR10Norm: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435,
	// 0.2616), the widely quoted per-channel mean and standard deviation over
	// all pixels of the 50 000 CIFAR-10 training images (not recomputed here:
	// no CIFAR-10 copy on this machine). Some training code uses std (0.2023,
	// 0.1994, 0.2010) instead; Options.Norm takes a checkpoint's own constants.
	CIFAR10Norm = ChannelNorm{Mean: []float32{0.4914, 0.4822, 0.4465}, Std: []float32{0.2470, 0.2435, 0.2616}}
)

// Value returns the normalised value of pixel value p in channel c:
// (float32(p)/255 − Mean[c]) / Std[c] in float32.
func (n ChannelNorm) Value(c int, p uint8) float32 {
	return (float32(p)/255 - n.Mean[c]) / n.Std[c]
}

// check validates the constants for c channels.
func (n ChannelNorm) check(c int) error {
	if len(n.Mean) != c || len(n.Std) != c {
		return fmt.Errorf("datasets: normalisation has %d means and %d standard deviations for %d channels",
			len(n.Mean), len(n.Std), c)
	}
	for i, s := range n.Std {
		if !(s > 0) {
			return fmt.Errorf("datasets: normalisation std[%d] = %v is not positive", i, s)
		}
	}
	return nil
}

// MemImages is an in-memory Images of uint8 pixels: image i, channel c,
// pixel (y, x) is Pix[((i*C+c)*H+y)*W+x], normalised by a per-channel table.
type MemImages struct {
	Pix    []uint8
	Labels []uint8
	N      int
	C      int
	H, W   int
	lut    [][256]float32
}

// NewMemImages checks the shapes and builds the per-channel tables of norm.
func NewMemImages(pix, labels []uint8, n, c, h, w int, norm ChannelNorm) (*MemImages, error) {
	if n < 0 || c <= 0 || h <= 0 || w <= 0 || len(pix) != n*c*h*w || len(labels) != n {
		return nil, fmt.Errorf("datasets: inconsistent images: N=%d C=%d H=%d W=%d with %d pixels and %d labels",
			n, c, h, w, len(pix), len(labels))
	}
	if err := norm.check(c); err != nil {
		return nil, err
	}
	m := &MemImages{Pix: pix, Labels: labels, N: n, C: c, H: h, W: w, lut: make([][256]float32, c)}
	for ch := range c {
		for p := range 256 {
			m.lut[ch][p] = norm.Value(ch, uint8(p))
		}
	}
	return m, nil
}

// SplitImages presents an IDX split (one grey channel) as Images with the
// split's normalisation norm: the values are exactly those of s.Batch.
func SplitImages(s *Split, norm Normalization) (*MemImages, error) {
	if err := s.check(nil); err != nil {
		return nil, err
	}
	m := &MemImages{Pix: s.Images, Labels: s.Labels, N: s.N, C: 1, H: s.H, W: s.W, lut: []([256]float32){*norm.table()}}
	return m, nil
}

// Len implements Images.
func (m *MemImages) Len() int { return m.N }

// Shape implements Images.
func (m *MemImages) Shape() (c, h, w int) { return m.C, m.H, m.W }

// Label implements Images.
func (m *MemImages) Label(i int) int { return int(m.Labels[i]) }

// Load implements Images.
func (m *MemImages) Load(i int, dst []float32) error {
	hw := m.H * m.W
	if i < 0 || i >= m.N {
		return fmt.Errorf("datasets: index %d outside 0..%d", i, m.N-1)
	}
	if len(dst) != m.C*hw {
		return fmt.Errorf("datasets: Load into %d values, want %d", len(dst), m.C*hw)
	}
	src := m.Pix[i*m.C*hw : (i+1)*m.C*hw]
	for c := range m.C {
		lut := &m.lut[c]
		for j, p := range src[c*hw : (c+1)*hw] {
			dst[c*hw+j] = lut[p]
		}
	}
	return nil
}

// CalibrationIndices chooses n distinct indices of an n_total-image
// collection, the first n entries of
//
//	rand.New(rand.NewPCG(seed, 0x63616c6962)).Perm(total)
//
// — the same indices SampleCalibration gives for a split of total images.
// n must lie in 1..total.
func CalibrationIndices(total, n int, seed uint64) ([]int, error) {
	if n <= 0 || n > total {
		return nil, fmt.Errorf("datasets: cannot choose %d distinct calibration images from %d (want 1..%d)",
			n, total, total)
	}
	return rand.New(rand.NewPCG(seed, calibStream)).Perm(total)[:n:n], nil
}

// AugmentedBatch is Split.AugmentedBatch for any channel count: each image of
// indices is padded by aug.Pad pixels of value 0 on every side (normalised
// per channel, so the padding is (0 − Mean[c])/Std[c]), cut to H×W at a random
// offset (dy, dx) and mirrored left-right with probability 1/2 — the same
// window and flip for all channels, torchvision's RandomCrop(H, padding=Pad)
// + RandomHorizontalFlip. The draws, per image in order, are those of
// Split.AugmentedBatch (dy, dx if Pad > 0, then the flip if aug.Flip), so a
// one-channel MemImages from SplitImages gives exactly Split.AugmentedBatch.
func (m *MemImages) AugmentedBatch(indices []int, aug Augment, rng *rand.Rand) (x []float32, y []int32, err error) {
	if aug.Pad < 0 {
		return nil, nil, fmt.Errorf("datasets: negative crop padding %d", aug.Pad)
	}
	if rng == nil && (aug.Pad > 0 || aug.Flip) {
		return nil, nil, fmt.Errorf("datasets: AugmentedBatch needs a non-nil *rand.Rand")
	}
	hw := m.H * m.W
	x = make([]float32, len(indices)*m.C*hw)
	y = make([]int32, len(indices))
	for b, i := range indices {
		if i < 0 || i >= m.N {
			return nil, nil, fmt.Errorf("datasets: index %d outside 0..%d", i, m.N-1)
		}
		dy, dx, flip := aug.Pad, aug.Pad, false
		if aug.Pad > 0 {
			dy = rng.IntN(2*aug.Pad + 1)
			dx = rng.IntN(2*aug.Pad + 1)
		}
		if aug.Flip {
			flip = rng.IntN(2) == 1
		}
		for c := range m.C {
			src := m.Pix[(i*m.C+c)*hw : (i*m.C+c+1)*hw]
			cropFlip(x[(b*m.C+c)*hw:(b*m.C+c+1)*hw], src, m.H, m.W, aug.Pad, dy, dx, flip, &m.lut[c])
		}
		y[b] = int32(m.Labels[i])
	}
	return x, y, nil
}
