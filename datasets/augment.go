package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// augmentStream is the second word of the per-image PCG seeds of
// AugmentedImages ("rrcrop").
const augmentStream = 0x727263726f70

// CropParams is a RandomResizedCrop draw: the Height×Width box at (Top, Left)
// of the source image, mirrored left-right after resizing when Flip.
type CropParams struct {
	Top, Left, Height, Width int
	Flip                     bool
}

// RandomResizedCropParams draws a crop box of an h×w image as torchvision's
// RandomResizedCrop.get_params with scale (0.08, 1) and ratio (3/4, 4/3), then
// a flip as RandomHorizontalFlip(0.5), from rng instead of torch's generator:
// up to 10 times, area a = h·w·U(0.08, 1) and aspect r = exp(U(log 3/4,
// log 4/3)) give W = round(√(a·r)), H = round(√(a/r)) (half to even); the
// first that fits is placed at Top = U{0..h−H}, Left = U{0..w−W}. If none
// fits, the centre crop of the largest box with aspect in [3/4, 4/3]:
// W = w, H = round(w·4/3) when w/h < 3/4; H = h, W = round(h·4/3) when
// w/h > 4/3; else the whole image, at ((h−H)/2, (w−W)/2) rounded down.
// Flip = U[0, 1) < 0.5.
func RandomResizedCropParams(rng *rand.Rand, h, w int) CropParams {
	const minScale, maxScale = 0.08, 1.0
	minRatio, maxRatio := 3.0/4.0, 4.0/3.0
	area := float64(h * w)
	logLo, logHi := math.Log(minRatio), math.Log(maxRatio)
	for range 10 {
		target := area * (minScale + (maxScale-minScale)*rng.Float64())
		aspect := math.Exp(logLo + (logHi-logLo)*rng.Float64())
		cw := int(math.RoundToEven(math.Sqrt(target * aspect)))
		ch := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if 0 < cw && cw <= w && 0 < ch && ch <= h {
			top := rng.IntN(h - ch + 1)
			left := rng.IntN(w - cw + 1)
			return CropParams{Top: top, Left: left, Height: ch, Width: cw, Flip: rng.Float64() < 0.5}
		}
	}
	inRatio := float64(w) / float64(h)
	cw, ch := w, h
	if inRatio < minRatio {
		ch = int(math.RoundToEven(float64(w) / minRatio))
	} else if inRatio > maxRatio {
		cw = int(math.RoundToEven(float64(h) * maxRatio))
	}
	return CropParams{Top: (h - ch) / 2, Left: (w - cw) / 2, Height: ch, Width: cw, Flip: rng.Float64() < 0.5}
}

// cropResizeFlip cuts the box p out of the interleaved RGB image src (h×w),
// resizes it to size×size with PIL's bilinear filter (skipped when the box is
// already size×size, as torchvision does) and mirrors it left-right if p.Flip:
// torchvision's resized_crop followed by hflip on a PIL image.
func cropResizeFlip(src []uint8, h, w int, p CropParams, size int) ([]uint8, error) {
	if p.Top < 0 || p.Left < 0 || p.Height <= 0 || p.Width <= 0 || p.Top+p.Height > h || p.Left+p.Width > w {
		return nil, fmt.Errorf("datasets: crop box %+v outside a %dx%d image", p, w, h)
	}
	box := make([]uint8, p.Height*p.Width*3)
	for y := range p.Height {
		copy(box[y*p.Width*3:(y+1)*p.Width*3], src[((p.Top+y)*w+p.Left)*3:((p.Top+y)*w+p.Left+p.Width)*3])
	}
	out, err := resizeCrop(box, p.Height, p.Width, 3, size, size, 0, 0, size, size)
	if err != nil {
		return nil, err
	}
	if p.Flip {
		for y := range size {
			row := out[y*size*3 : (y+1)*size*3]
			for a, b := 0, size-1; a < b; a, b = a+1, b-1 {
				for c := range 3 {
					row[3*a+c], row[3*b+c] = row[3*b+c], row[3*a+c]
				}
			}
		}
	}
	return out, nil
}

// AugmentedImages serves a folder split with the training transform the
// BRECQ authors' calibration images go through (their build_imagenet_data:
// RandomResizedCrop(Size) + RandomHorizontalFlip + ToTensor + Normalize),
// drawn for image i from rand.New(rand.NewPCG(Seed, 0x727263726f70 ^ i)) with
// RandomResizedCropParams — so the same seed always gives the same crops,
// whatever the order or number of workers.
type AugmentedImages struct {
	*FolderImages
	Seed uint64
}

// Params returns the crop drawn for image i of an h×w source.
func (a *AugmentedImages) Params(i, h, w int) CropParams {
	return RandomResizedCropParams(rand.New(rand.NewPCG(a.Seed, augmentStream^uint64(i))), h, w)
}

// Load implements Images with the training transform.
func (a *AugmentedImages) Load(i int, dst []float32) error {
	if i < 0 || i >= len(a.Files) {
		return fmt.Errorf("datasets: index %d outside 0..%d", i, len(a.Files)-1)
	}
	path := a.Files[i]
	src, h, w, err := DecodeRGB(path)
	if err != nil {
		return err
	}
	pix, err := cropResizeFlip(src, h, w, a.Params(i, h, w), a.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return a.normalize(pix, dst)
}
