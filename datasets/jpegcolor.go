package datasets

import "image"

// This file turns a decoded JPEG's Y, Cb, Cr planes into RGB the way libjpeg
// (libjpeg-turbo, which PIL uses) does by default, instead of Go's
// color.YCbCrToRGB with nearest-neighbour chroma: subsampled chroma is
// "fancy" upsampled (a triangle filter, 3/4 of the nearer and 1/4 of the
// further sample, jdsample.c) and the colour conversion uses libjpeg's
// fixed-point tables (jdcolor.c).

// libjpeg's colour conversion constants: 16 fractional bits, FIX(x) =
// round(x·2¹⁶), ONE_HALF = 2¹⁵.
const (
	yccScale   = 16
	yccOneHalf = 1 << (yccScale - 1)
	fixCrR     = 91881  // FIX(1.40200)
	fixCbB     = 116130 // FIX(1.77200)
	fixCrG     = 46802  // FIX(0.71414)
	fixCbG     = 22554  // FIX(0.34414)
)

// yccToRGB is libjpeg's ycc_rgb_convert for one sample:
//
//	R = Y + ((FIX(1.402)·(Cr−128) + ½) >> 16)
//	G = Y + ((−FIX(0.34414)·(Cb−128) − FIX(0.71414)·(Cr−128) + ½) >> 16)
//	B = Y + ((FIX(1.772)·(Cb−128) + ½) >> 16)
//
// each clamped to 0..255 (>> is an arithmetic shift).
func yccToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)
	b1, r1 := int32(cb)-128, int32(cr)-128
	r := yy + (fixCrR*r1+yccOneHalf)>>yccScale
	g := yy + (-fixCbG*b1-fixCrG*r1+yccOneHalf)>>yccScale
	b := yy + (fixCbB*b1+yccOneHalf)>>yccScale
	return clampByte(r), clampByte(g), clampByte(b)
}

func clampByte(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// upsampleChroma returns a w×h plane upsampled from the subsampled chroma
// plane p (cw×ch samples, row stride stride) by factors (fh, fv), as
// libjpeg's default upsampler does:
//
//   - 2×1 (h2v1_fancy_upsample), for cw > 2: output columns 2c and 2c+1 are
//     (3·s[c] + s[c−1] + 1) >> 2 and (3·s[c] + s[c+1] + 2) >> 2, the first and
//     last output column copying s[0] and s[cw−1];
//   - 1×2 (h1v2_fancy_upsample): output rows 2r and 2r+1 are
//     (3·s[r] + s[r−1] + 1) >> 2 and (3·s[r] + s[r+1] + 2) >> 2;
//   - 2×2 (h2v2_fancy_upsample), for cw > 2: column sums t = 3·s[r] + s[r∓1]
//     (the row above for output row 2r, below for 2r+1), then output columns
//     (3·t[c] + t[c−1] + 8) >> 4 and (3·t[c] + t[c+1] + 7) >> 4, the first
//     and last columns (4·t + 8) >> 4 and (4·t + 7) >> 4;
//   - anything else: each sample repeated fh×fv times (int_upsample).
//
// Rows above the first and below the last are copies of the first and last
// row, as libjpeg's context rows are.
func upsampleChroma(p []uint8, stride, cw, ch, fh, fv, w, h int) []uint8 {
	out := make([]uint8, w*h)
	row := func(r int) []uint8 {
		r = max(0, min(ch-1, r))
		return p[r*stride : r*stride+cw]
	}
	full := make([]uint8, fh*cw) // one upsampled row before cropping to w
	switch {
	case fh == 2 && fv == 1 && cw > 2:
		for y := range h {
			s := row(y)
			h2v1(full, s)
			copy(out[y*w:(y+1)*w], full)
		}
	case fh == 1 && fv == 2:
		for y := range h {
			s0, s1 := row(y/2), row(y/2-1)
			bias := int32(1)
			if y%2 == 1 {
				s1, bias = row(y/2+1), 2
			}
			o := out[y*w : (y+1)*w]
			for x := range w {
				o[x] = uint8((3*int32(s0[x]) + int32(s1[x]) + bias) >> 2)
			}
		}
	case fh == 2 && fv == 2 && cw > 2:
		sum := make([]int32, cw)
		for y := range h {
			s0, s1 := row(y/2), row(y/2-1)
			if y%2 == 1 {
				s1 = row(y/2 + 1)
			}
			for c := range cw {
				sum[c] = 3*int32(s0[c]) + int32(s1[c])
			}
			full[0] = uint8((4*sum[0] + 8) >> 4)
			full[1] = uint8((3*sum[0] + sum[1] + 7) >> 4)
			for c := 1; c < cw-1; c++ {
				full[2*c] = uint8((3*sum[c] + sum[c-1] + 8) >> 4)
				full[2*c+1] = uint8((3*sum[c] + sum[c+1] + 7) >> 4)
			}
			full[2*cw-2] = uint8((3*sum[cw-1] + sum[cw-2] + 8) >> 4)
			full[2*cw-1] = uint8((4*sum[cw-1] + 7) >> 4)
			copy(out[y*w:(y+1)*w], full)
		}
	default:
		for y := range h {
			s := row(y / fv)
			o := out[y*w : (y+1)*w]
			for x := range w {
				o[x] = s[x/fh]
			}
		}
	}
	return out
}

// h2v1 is libjpeg's h2v1_fancy_upsample of one row s (len(s) > 2) into
// full (2·len(s) samples).
func h2v1(full, s []uint8) {
	n := len(s)
	full[0] = s[0]
	full[1] = uint8((3*int32(s[0]) + int32(s[1]) + 2) >> 2)
	for c := 1; c < n-1; c++ {
		v := 3 * int32(s[c])
		full[2*c] = uint8((v + int32(s[c-1]) + 1) >> 2)
		full[2*c+1] = uint8((v + int32(s[c+1]) + 2) >> 2)
	}
	full[2*n-2] = uint8((3*int32(s[n-1]) + int32(s[n-2]) + 1) >> 2)
	full[2*n-1] = s[n-1]
}

// jpegRGB converts a decoded JPEG colour image to interleaved RGB as libjpeg
// does by default (fancy upsampling, libjpeg's colour tables).
func jpegRGB(m *image.YCbCr) (pix []uint8, h, w int) {
	b := m.Bounds()
	w, h = b.Dx(), b.Dy()
	var fh, fv int
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		fh, fv = 1, 1
	case image.YCbCrSubsampleRatio422:
		fh, fv = 2, 1
	case image.YCbCrSubsampleRatio420:
		fh, fv = 2, 2
	case image.YCbCrSubsampleRatio440:
		fh, fv = 1, 2
	case image.YCbCrSubsampleRatio411:
		fh, fv = 4, 1
	case image.YCbCrSubsampleRatio410:
		fh, fv = 4, 2
	default:
		return nil, 0, 0
	}
	cw, ch := (w+fh-1)/fh, (h+fv-1)/fv // libjpeg's downsampled_width / height
	c0 := m.COffset(b.Min.X, b.Min.Y)
	var cb, cr []uint8
	if fh == 1 && fv == 1 {
		cb, cr = m.Cb[c0:], m.Cr[c0:]
	} else {
		cb = upsampleChroma(m.Cb[c0:], m.CStride, cw, ch, fh, fv, w, h)
		cr = upsampleChroma(m.Cr[c0:], m.CStride, cw, ch, fh, fv, w, h)
	}
	cstride := w
	if fh == 1 && fv == 1 {
		cstride = m.CStride
	}
	pix = make([]uint8, h*w*3)
	y0 := m.YOffset(b.Min.X, b.Min.Y)
	for y := range h {
		yr := m.Y[y0+y*m.YStride:]
		for x := range w {
			r, g, bl := yccToRGB(yr[x], cb[y*cstride+x], cr[y*cstride+x])
			d := (y*w + x) * 3
			pix[d], pix[d+1], pix[d+2] = r, g, bl
		}
	}
	return pix, h, w
}
