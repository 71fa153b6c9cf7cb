package datasets

import (
	"fmt"
	"math"
)

// resizePrecision is the number of fractional bits of the fixed-point filter
// coefficients, Pillow's PRECISION_BITS = 32 − 8 − 2 = 22.
const resizePrecision = 22

// axisCoeffs are the bilinear resampling coefficients of one image axis
// resized from in to out pixels: output pixel o reads the input pixels
// start[o] .. start[o]+count[o]−1 with the fixed-point weights
// k[o*ksize : o*ksize+count[o]].
type axisCoeffs struct {
	start, count []int
	k            []int32
	ksize        int
}

// bilinearCoeffs computes the coefficients of Pillow's antialiased bilinear
// resampling (Image.resize(size, BILINEAR), libImaging/Resample.c) of an axis
// of in pixels to out pixels. With scale = in/out and s = max(scale, 1) (the
// triangle filter is widened by the scale factor when downscaling), output
// pixel o has centre c = (o + 0.5)·scale and reads the input pixels
// x ∈ [trunc(c − s + 0.5), trunc(c + s + 0.5)) ∩ [0, in) with weights
//
//	w_x = max(0, 1 − |(x − c + 0.5)/s|),  normalised to Σ w_x = 1,
//
// each then stored as the integer trunc(w_x·2²² ± 0.5) (rounded half away
// from zero), as Pillow's normalize_coeffs_8bpc does.
func bilinearCoeffs(in, out int) axisCoeffs {
	scale := float64(float32(in)) / float64(out) // Pillow's box is float: (in1 − in0)
	filterscale := max(scale, 1)
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := axisCoeffs{start: make([]int, out), count: make([]int, out), k: make([]int32, out*ksize), ksize: ksize}
	w := make([]float64, ksize)
	for o := range out {
		center := (float64(o) + 0.5) * scale
		ss := 1.0 / filterscale
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > in {
			xmax = in
		}
		xmax -= xmin
		ww := 0.0
		for x := range xmax {
			v := math.Abs((float64(x+xmin) - center + 0.5) * ss)
			if v < 1 {
				v = 1 - v
			} else {
				v = 0
			}
			w[x] = v
			ww += v
		}
		k := c.k[o*ksize : o*ksize+ksize]
		for x := range xmax {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<resizePrecision))
			} else {
				k[x] = int32(0.5 + v*(1<<resizePrecision))
			}
		}
		c.start[o], c.count[o] = xmin, xmax
	}
	return c
}

// clip8 turns an accumulated fixed-point sum into a pixel value:
// clamp(ss >> 22, 0, 255).
func clip8(ss int32) uint8 {
	v := ss >> resizePrecision
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resizeCrop resizes the interleaved image src (h×w pixels of ch uint8
// channels, row-major, channel fastest) to outH×outW with Pillow's
// antialiased bilinear filter — exactly Image.resize((outW, outH),
// Image.BILINEAR) on an 8-bit image — and returns the window of cropH×cropW
// output pixels whose top-left corner is output pixel (top, left), in the same
// interleaved layout. Output pixels outside the outH×outW image (a window
// hanging over the edge) are 0, as torchvision's CenterCrop pads.
//
// As in Pillow, the horizontal pass runs first and rounds each intermediate
// value to uint8:
//
//	t[y][o] = clamp((2²¹ + Σ_x k_o(x)·src[y][x]) >> 22, 0, 255)
//	out[o'][o] = clamp((2²¹ + Σ_y k_o'(y)·t[y][o]) >> 22, 0, 255)
//
// with the integer coefficients of bilinearCoeffs; a pass whose size does not
// change is skipped (it would be the identity). Only the pixels inside the
// window are computed, which does not change their values.
func resizeCrop(src []uint8, h, w, ch, outH, outW, top, left, cropH, cropW int) ([]uint8, error) {
	if h <= 0 || w <= 0 || outH <= 0 || outW <= 0 || cropH <= 0 || cropW <= 0 || len(src) != h*w*ch {
		return nil, fmt.Errorf("datasets: resize of a %dx%dx%d image (%d bytes) to %dx%d, window %dx%d: bad sizes",
			h, w, ch, len(src), outH, outW, cropH, cropW)
	}
	dst := make([]uint8, cropH*cropW*ch)
	// The part of the window that lies inside the resized image.
	y0, y1 := max(top, 0), min(top+cropH, outH)
	x0, x1 := max(left, 0), min(left+cropW, outW)
	if y0 >= y1 || x0 >= x1 {
		return dst, nil
	}

	// Horizontal pass over the source rows the window's output rows read.
	rowLo, rowHi := y0, y1 // source rows needed (identity vertical pass)
	var vc axisCoeffs
	needV := outH != h
	if needV {
		vc = bilinearCoeffs(h, outH)
		rowLo = vc.start[y0]
		rowHi = 0
		for o := y0; o < y1; o++ {
			rowHi = max(rowHi, vc.start[o]+vc.count[o])
		}
	}
	tw := x1 - x0 // width of the intermediate image
	tmp := make([]uint8, (rowHi-rowLo)*tw*ch)
	if outW != w {
		hc := bilinearCoeffs(w, outW)
		acc := make([]int32, ch)
		for y := rowLo; y < rowHi; y++ {
			srow := src[y*w*ch : (y+1)*w*ch]
			trow := tmp[(y-rowLo)*tw*ch : (y-rowLo+1)*tw*ch]
			for o := x0; o < x1; o++ {
				for c := range acc {
					acc[c] = 1 << (resizePrecision - 1)
				}
				k := hc.k[o*hc.ksize:]
				s := hc.start[o]
				for i := range hc.count[o] {
					p := srow[(s+i)*ch : (s+i+1)*ch]
					for c := range acc {
						acc[c] += int32(p[c]) * k[i]
					}
				}
				for c := range acc {
					trow[(o-x0)*ch+c] = clip8(acc[c])
				}
			}
		}
	} else {
		for y := rowLo; y < rowHi; y++ {
			copy(tmp[(y-rowLo)*tw*ch:(y-rowLo+1)*tw*ch], src[(y*w+x0)*ch:(y*w+x1)*ch])
		}
	}

	// Vertical pass, written into the window.
	rowBytes := tw * ch
	for o := y0; o < y1; o++ {
		drow := dst[((o-top)*cropW+(x0-left))*ch:]
		drow = drow[:rowBytes]
		if !needV {
			copy(drow, tmp[(o-rowLo)*rowBytes:(o-rowLo+1)*rowBytes])
			continue
		}
		k := vc.k[o*vc.ksize:]
		s := vc.start[o] - rowLo
		n := vc.count[o]
		for j := range rowBytes {
			acc := int32(1 << (resizePrecision - 1))
			for i := range n {
				acc += int32(tmp[(s+i)*rowBytes+j]) * k[i]
			}
			drow[j] = clip8(acc)
		}
	}
	return dst, nil
}

// ResizeShorter returns the size (h', w') of an h×w image whose shorter side
// is resized to size, as torchvision's Resize(size) computes it:
//
//	short' = size,  long' = trunc(size·long/short)
//
// (a square image becomes size×size).
func ResizeShorter(h, w, size int) (int, int) {
	if w <= h {
		return int(float64(size*h) / float64(w)), size
	}
	return size, int(float64(size*w) / float64(h))
}

// CenterOffset returns the offset of a centred window of length crop in an
// axis of length n, as torchvision's CenterCrop computes it:
// round((n − crop)/2) with Python's round half to even (so (257 − 224)/2 =
// 16.5 gives 16). When crop > n torchvision first pads the axis by
// ⌊(crop − n)/2⌋ zeros before (and the rest after); the returned offset is
// then the negative of that padding.
func CenterOffset(n, crop int) int {
	if crop > n {
		return -((crop - n) / 2)
	}
	return int(math.RoundToEven(float64(n-crop) / 2))
}
