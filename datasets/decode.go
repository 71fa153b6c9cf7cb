package datasets

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // registered decoders: GIF, JPEG, PNG
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"strings"
)

// maxImagePixels bounds the width×height an image header may claim, so that a
// corrupt header cannot make the decoder allocate absurd amounts of memory
// (PIL's own decompression-bomb limit is 89 478 485 pixels; this is 2.8×).
const maxImagePixels = 1 << 28

// DecodeRGB reads the image file at path (PNG, JPEG or GIF, recognised by its
// content, not its name) and returns its pixels as interleaved 8-bit RGB,
// row-major: pixel (y, x) channel c is pix[(y*w+x)*3+c]. The conversion to
// RGB follows PIL's Image.convert("RGB"):
//
//   - grey L: R = G = B = L; 16-bit grey (PIL mode I): R = G = B = min(v, 255)
//   - RGBA / grey+alpha / transparent palette entries: the alpha channel is
//     dropped, the colour kept as stored (not composited);
//   - 16-bit colour: the high byte of each sample;
//   - CMYK (Adobe JPEG): with n = 255 − K, R = n − n·C/255 (PIL's MULDIV255
//     rounding), likewise G from M and B from Y;
//   - YCbCr (JPEG): libjpeg's default fancy chroma upsampling and colour
//     conversion (see jpegRGB), as PIL gets them from libjpeg.
//
// A missing, unreadable, truncated or corrupt file, or one that is not an
// image, gives an error naming path.
func DecodeRGB(path string) (pix []uint8, h, w int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("datasets: %w", err)
	}
	return decodeRGBBytes(path, data)
}

// decodeRGBBytes is DecodeRGB on the file's bytes; path is for errors.
func decodeRGBBytes(path string, data []byte) (pix []uint8, h, w int, err error) {
	defer func() {
		if r := recover(); r != nil { // a decoder bug must not take the run down
			pix, h, w, err = nil, 0, 0, fmt.Errorf("datasets: %s: corrupt image (decoder panic: %v)", path, r)
		}
	}()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		if err == image.ErrFormat {
			return nil, 0, 0, fmt.Errorf("datasets: %s: not a PNG, JPEG or GIF image (BMP, TIFF, WebP and PPM are not decoded here)", path)
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, 0, 0, fmt.Errorf("datasets: %s: truncated image header", path)
		}
		return nil, 0, 0, fmt.Errorf("datasets: %s: corrupt image header: %v", path, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return nil, 0, 0, fmt.Errorf("datasets: %s: implausible %s size %dx%d", path, format, cfg.Width, cfg.Height)
	}
	img, _, err := image.Decode(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF || strings.Contains(err.Error(), "short Huffman data") {
			return nil, 0, 0, fmt.Errorf("datasets: %s: truncated %s image (%v)", path, format, err)
		}
		return nil, 0, 0, fmt.Errorf("datasets: %s: corrupt %s image: %v", path, format, err)
	}
	pix, h, w = toRGB(img)
	return pix, h, w, nil
}

// toRGB converts a decoded image to interleaved 8-bit RGB as DecodeRGB states.
func toRGB(img image.Image) (pix []uint8, h, w int) {
	b := img.Bounds()
	h, w = b.Dy(), b.Dx()
	pix = make([]uint8, h*w*3)
	set := func(i int, r, g, bl uint8) { pix[3*i], pix[3*i+1], pix[3*i+2] = r, g, bl }
	switch m := img.(type) {
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				set(y*w+x, v, v, v)
			}
		}
	case *image.Gray16:
		for y := range h {
			for x := range w {
				o := y*m.Stride + 2*x
				v := uint16(m.Pix[o])<<8 | uint16(m.Pix[o+1])
				set(y*w+x, clamp255(v), clamp255(v), clamp255(v))
			}
		}
	case *image.RGBA: // opaque 8-bit truecolour PNG
		rgbRows(pix, m.Pix, m.Stride, h, w, 4, 1)
	case *image.NRGBA:
		rgbRows(pix, m.Pix, m.Stride, h, w, 4, 1)
	case *image.RGBA64:
		rgbRows(pix, m.Pix, m.Stride, h, w, 8, 2)
	case *image.NRGBA64:
		rgbRows(pix, m.Pix, m.Stride, h, w, 8, 2)
	case *image.CMYK:
		for y := range h {
			for x := range w {
				o := y*m.Stride + 4*x
				n := 255 - int(m.Pix[o+3])
				set(y*w+x, cmyk1(m.Pix[o], n), cmyk1(m.Pix[o+1], n), cmyk1(m.Pix[o+2], n))
			}
		}
	case *image.Paletted:
		var pal [256][3]uint8
		for i, c := range m.Palette {
			pal[i] = nonPremultiplied(c)
		}
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				p := pal[v]
				set(y*w+x, p[0], p[1], p[2])
			}
		}
	case *image.YCbCr:
		if p, hh, ww := jpegRGB(m); p != nil {
			return p, hh, ww
		}
		for y := range h {
			for x := range w {
				yi, ci := m.YOffset(b.Min.X+x, b.Min.Y+y), m.COffset(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				set(y*w+x, r, g, bl)
			}
		}
	default: // anything else: the image's own colour model
		for y := range h {
			for x := range w {
				p := nonPremultiplied(img.At(b.Min.X+x, b.Min.Y+y))
				set(y*w+x, p[0], p[1], p[2])
			}
		}
	}
	return pix, h, w
}

// rgbRows copies the first three samples of each pixel (step bytes per pixel,
// sample bytes per sample, the most significant byte first) into pix.
func rgbRows(pix, src []uint8, stride, h, w, step, sample int) {
	for y := range h {
		row := src[y*stride:]
		for x := range w {
			o := x * step
			d := (y*w + x) * 3
			pix[d], pix[d+1], pix[d+2] = row[o], row[o+sample], row[o+2*sample]
		}
	}
}

// clamp255 is PIL's I → L conversion of a 16-bit grey value: min(v, 255).
func clamp255(v uint16) uint8 { return uint8(min(v, 255)) }

// cmyk1 is one channel of PIL's cmyk2rgb: n − MULDIV255(c, n), n = 255 − K,
// with MULDIV255(a, b) = ((a·b + 128) >> 8 + a·b + 128) >> 8.
func cmyk1(c uint8, n int) uint8 {
	t := int(c)*n + 128
	return uint8(n - ((t>>8)+t)>>8)
}

// nonPremultiplied returns the 8-bit colour of c without its alpha, the
// colour as stored for non-premultiplied models.
func nonPremultiplied(c color.Color) [3]uint8 {
	switch v := c.(type) {
	case color.NRGBA:
		return [3]uint8{v.R, v.G, v.B}
	case color.RGBA:
		if v.A == 255 {
			return [3]uint8{v.R, v.G, v.B}
		}
	case color.Gray:
		return [3]uint8{v.Y, v.Y, v.Y}
	case color.YCbCr:
		r, g, b := color.YCbCrToRGB(v.Y, v.Cb, v.Cr)
		return [3]uint8{r, g, b}
	}
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return [3]uint8{n.R, n.G, n.B}
}
