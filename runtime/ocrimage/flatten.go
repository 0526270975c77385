package ocrimage

import (
	"image"
	"math"
)

// Bounds of Flatten, in grey levels (of 255).
const (
	flattenSpread = 40 // least spread of the tiles' paper levels that is evened out
	flattenStep   = 24 // most change between neighbouring tiles, or half the spread if more
)

// Flatten evens out a page's background when it changes smoothly across the page: a gradient
// behind the text of a banner or a web page, a photo of a page lit from one side. Normalize
// takes one paper level for the whole image, so where the background drifts past the text's
// level, the text vanishes or the paper turns to ink. The page is cut into tiles (about a
// twelfth of its width by a twelfth of its height, at least 24 px); each tile's paper level
// is the median of its grey levels (text covers less of a tile than its paper, and across a gradient a median is
// steadier than a mode); and where these levels spread over at least flattenSpread grey levels while
// neighbouring tiles differ by at most flattenStep (or half the spread), each pixel's level
// becomes 128 plus its difference from the paper level interpolated between the tiles'
// centres, scaled by 127 over the paper's distance to the far end of the grey scale (white
// for dark paper, black for light), so the paper is 128 everywhere and the text keeps its
// polarity and the whole of its side's range.
// Anything else (an even background, or one that changes in steps, as at the edge of a dark
// bar or card, which Panels reads) comes back as g itself. It is for pages: a crop of one line
// is too small for tiles.
func Flatten(g *image.Gray) *image.Gray {
	if g == nil {
		return g
	}
	w, h := g.Rect.Dx(), g.Rect.Dy()
	// Tiles of about a twelfth of each side (at least 24 px): a wide, short banner still has
	// several rows of them for a gradient from its top to its bottom.
	tw, th := max(24, int(math.Round(float64(w)/12))), max(24, int(math.Round(float64(h)/12)))
	nx, ny := (w+tw-1)/tw, (h+th-1)/th
	if nx*ny < 2 {
		return g
	}
	paper := make([]float64, nx*ny)
	for ty := range ny {
		for tx := range nx {
			var hist [256]int
			for y := ty * th; y < min(h, (ty+1)*th); y++ {
				for _, v := range g.Pix[y*g.Stride+tx*tw : y*g.Stride+min(w, (tx+1)*tw)] {
					hist[v]++
				}
			}
			total, c := 0, 0
			for _, n := range hist {
				total += n
			}
			for v, n := range hist { // the median: text is the lesser part of a tile
				if c += n; 2*c >= total {
					paper[ty*nx+tx] = float64(v)
					break
				}
			}
		}
	}
	lo, hi, step := 255.0, 0.0, 0.0
	for ty := range ny {
		for tx := range nx {
			p := paper[ty*nx+tx]
			lo, hi = min(lo, p), max(hi, p)
			if tx > 0 {
				step = max(step, math.Abs(p-paper[ty*nx+tx-1]))
			}
			if ty > 0 {
				step = max(step, math.Abs(p-paper[(ty-1)*nx+tx]))
			}
		}
	}
	if hi-lo < flattenSpread || step > max(flattenStep, (hi-lo)/2) {
		return g
	}
	// Bilinear between the tiles' centres (clamped at the outer half tiles).
	at := func(c float64, n, t int) (int, int, float64) {
		f := c/float64(t) - 0.5
		if f <= 0 {
			return 0, 0, 0
		}
		if f >= float64(n-1) {
			return n - 1, n - 1, 0
		}
		i := int(f)
		return i, i + 1, f - float64(i)
	}
	out := image.NewGray(g.Rect)
	for y := range h {
		y0, y1, fy := at(float64(y)+0.5, ny, th)
		for x := range w {
			x0, x1, fx := at(float64(x)+0.5, nx, tw)
			top := paper[y0*nx+x0]*(1-fx) + paper[y0*nx+x1]*fx
			bottom := paper[y1*nx+x0]*(1-fx) + paper[y1*nx+x1]*fx
			bg := top*(1-fy) + bottom*fy
			v := 128 + 127*(float64(g.Pix[y*g.Stride+x])-bg)/max(bg, 255-bg, 1)
			out.Pix[y*out.Stride+x] = uint8(math.Round(min(255, max(0, v))))
		}
	}
	return out
}
