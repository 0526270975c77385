package ocrimage

import (
	"image"
	"image/color"
)

// Gray converts img to 8-bit luminance, compositing any transparency over white paper (a
// transparent PNG of black text reads as black on white, not black on black), or over black
// when over white it would be flat to within MinContrast grey levels and img is not opaque
// (white text on a transparent background, which over white vanishes). Luminance is
// 0.299 R + 0.587 G + 0.114 B, the weights of color.GrayModel and of JPEG's Y. The result has
// img's bounds (its origin is not moved to 0,0), so rectangles found in it are in the source
// image's pixel coordinates. A nil or empty image gives an empty *image.Gray. The standard
// library's image types are converted on up to GOMAXPROCS goroutines.
func Gray(img image.Image) *image.Gray {
	if img == nil {
		return image.NewGray(image.Rectangle{})
	}
	b := img.Bounds()
	out := image.NewGray(b)
	if b.Empty() {
		return out
	}
	switch img.(type) {
	case *image.Gray, *image.YCbCr, *image.NYCbCrA, *image.RGBA, *image.NRGBA, *image.Paletted:
		// The standard library's images may be read from several goroutines at once; other
		// implementations of image.Image are read from this one.
		parallel(b.Dy(), rowChunk(b.Dx()), func(lo, hi int) { grayRows(img, out, lo+b.Min.Y, hi+b.Min.Y) })
	default:
		grayRows(img, out, b.Min.Y, b.Max.Y)
	}
	if o, ok := img.(interface{ Opaque() bool }); flatGray(out) && !(ok && o.Opaque()) {
		over := image.NewGray(b)
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := over.Pix[(y-b.Min.Y)*over.Stride:][:b.Dx()]
			for x := range row {
				row[x] = luma16(img.At(b.Min.X+x, y).RGBA()) // premultiplied: over black as it is
			}
		}
		if !flatGray(over) {
			return over
		}
	}
	return out
}

// flatGray says whether g's grey levels all lie within MinContrast of each other.
func flatGray(g *image.Gray) bool {
	lo, hi := uint8(255), uint8(0)
	w := g.Rect.Dx()
	for y := 0; y < g.Rect.Dy(); y++ {
		for _, v := range g.Pix[y*g.Stride:][:w] {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return int(hi)-int(lo) < MinContrast
}

// grayRows converts rows [y0, y1) of img (in its coordinates) into out, which has img's bounds.
func grayRows(img image.Image, out *image.Gray, y0, y1 int) {
	b := img.Bounds()
	w := b.Dx()
	switch src := img.(type) {
	case *image.Gray:
		for y := y0; y < y1; y++ {
			i := src.PixOffset(b.Min.X, y)
			copy(out.Pix[(y-b.Min.Y)*out.Stride:][:w], src.Pix[i:i+w])
		}
	case *image.YCbCr:
		// Y is already the luma Gray computes; chroma is irrelevant and there is no alpha.
		for y := y0; y < y1; y++ {
			i := src.YOffset(b.Min.X, y)
			copy(out.Pix[(y-b.Min.Y)*out.Stride:][:w], src.Y[i:i+w])
		}
	case *image.NYCbCrA:
		for y := y0; y < y1; y++ {
			yi, ai := src.YOffset(b.Min.X, y), src.AOffset(b.Min.X, y)
			row := out.Pix[(y-b.Min.Y)*out.Stride:][:w]
			for x := range row {
				a := uint32(src.A[ai+x])
				row[x] = uint8((uint32(src.Y[yi+x])*a + 255*(255-a) + 127) / 255)
			}
		}
	case *image.RGBA:
		for y := y0; y < y1; y++ {
			p := src.Pix[src.PixOffset(b.Min.X, y):][:4*w]
			row := out.Pix[(y-b.Min.Y)*out.Stride:][:w]
			for x, i := 0, 0; x < len(row) && i+3 < len(p); x, i = x+1, i+4 {
				white := 255 - uint32(p[i+3]) // premultiplied: colour + (1 − α)·white
				row[x] = luma8(uint32(p[i])+white, uint32(p[i+1])+white, uint32(p[i+2])+white)
			}
		}
	case *image.NRGBA:
		for y := y0; y < y1; y++ {
			p := src.Pix[src.PixOffset(b.Min.X, y):][:4*w]
			row := out.Pix[(y-b.Min.Y)*out.Stride:][:w]
			for x, i := 0, 0; x < len(row) && i+3 < len(p); x, i = x+1, i+4 {
				a := uint32(p[i+3])
				if a == 255 {
					row[x] = luma8(uint32(p[i]), uint32(p[i+1]), uint32(p[i+2]))
					continue
				}
				white := 255 * (255 - a)
				row[x] = luma8((uint32(p[i])*a+white+127)/255, (uint32(p[i+1])*a+white+127)/255, (uint32(p[i+2])*a+white+127)/255)
			}
		}
	case *image.Paletted:
		var lut [256]uint8
		for i := range lut {
			lut[i] = 255 // an index past the palette reads as paper
		}
		for i, c := range src.Palette {
			if i < len(lut) && c != nil {
				lut[i] = overWhite(c)
			}
		}
		for y := y0; y < y1; y++ {
			p := src.Pix[src.PixOffset(b.Min.X, y):][:w]
			row := out.Pix[(y-b.Min.Y)*out.Stride:][:w]
			for x, v := range p {
				row[x] = lut[v]
			}
		}
	default:
		for y := y0; y < y1; y++ {
			row := out.Pix[(y-b.Min.Y)*out.Stride:][:w]
			for x := range row {
				row[x] = overWhite(img.At(b.Min.X+x, y))
			}
		}
	}
}

// luma8 is color.GrayModel's luminance of 8-bit R, G, B.
func luma8(r, g, b uint32) uint8 {
	return uint8((19595*r + 38470*g + 7471*b + 1<<15) >> 16)
}

// overWhite is the luminance of c composited over white.
func overWhite(c color.Color) uint8 {
	r, g, b, a := c.RGBA() // 16-bit, alpha-premultiplied
	white := 0xffff - a
	return luma16(r+white, g+white, b+white, 0xffff)
}

// luma16 is color.GrayModel's luminance, to 8 bits, of 16-bit R, G, B (the alpha is unused:
// premultiplied colours give the luminance over black).
func luma16(r, g, b, _ uint32) uint8 {
	return uint8((19595*r + 38470*g + 7471*b + 1<<15) >> 24)
}
