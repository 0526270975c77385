package ocrimage

import (
	"image"
	"math"
)

// StretchLine returns the part of k around box (a line as SplitLines returns it: its columns
// and a few more, and the rows LineStrips may read around it) with its columns scaled by f
// through a Catmull-Rom kernel, and box in the returned ink's coordinates (rows unchanged,
// columns from 0). LineStrips on the result cuts the line f times as wide as it would from k.
//
// It serves a second reading of a line a model doubts, narrower or wider (ocr's second look):
// scaled at the source's resolution and then to the model's height, the strokes stay as
// sharp as in the first reading (the kernel's small overshoot even sharpens blurred ones a
// little), which scaling the model's 32-pixel pieces again would not keep. Values are
// clamped to [0, 1]; columns past k's edges are paper. f must be positive; a box that misses
// k gives an empty ink and box.
func StretchLine(k *Ink, box image.Rectangle, f float64) (*Ink, image.Rectangle) {
	box = box.Intersect(k.Rect)
	if box.Empty() || !(f > 0) {
		return &Ink{}, image.Rectangle{}
	}
	m := box.Dy() + 2 // LineStrips' margin and a sloping line's shear
	if _, flat := flatLine(k, box); flat {
		m = 6 * box.Dy() // grown to a text line's height (textLineStrokes)
	}
	region := image.Rect(box.Min.X-4, box.Min.Y-m, box.Max.X+4, box.Max.Y+m).Intersect(k.Rect)
	rw, rh := region.Dx(), region.Dy()
	w := max(1, int(math.Round(f*float64(rw))))
	pix := make([]float32, rw*rh)
	kw := k.Rect.Dx()
	for y := 0; y < rh; y++ {
		copy(pix[y*rw:][:rw], k.Pix[(region.Min.Y+y-k.Rect.Min.Y)*kw+region.Min.X-k.Rect.Min.X:][:rw])
	}
	out := &Ink{Rect: image.Rect(0, region.Min.Y, w, region.Max.Y), Pix: stretchCols(pix, rw, rh, w),
		Paper: k.Paper, Full: k.Full, Inverted: k.Inverted}
	scale := float64(w) / float64(rw)
	nb := image.Rect(int(math.Floor(float64(box.Min.X-region.Min.X)*scale)), box.Min.Y,
		int(math.Ceil(float64(box.Max.X-region.Min.X)*scale)), box.Max.Y)
	return out, nb.Intersect(out.Rect)
}

// stretchCols scales the columns of pix (h rows of w values) to w2 through a Catmull-Rom
// kernel, widened by w/w2 when narrowing so that every source column counts; columns past
// the edges are 0. Values are clamped to [0, 1].
func stretchCols(pix []float32, w, h, w2 int) []float32 {
	out := make([]float32, w2*h)
	scale := float64(w2) / float64(w)
	shrink := min(scale, 1)
	support := 2 / shrink // in source columns
	type tap struct {
		i int
		w float32
	}
	taps := make([][]tap, w2)
	for x := range taps {
		c := (float64(x)+0.5)/scale - 0.5 // the output column's centre, in source columns
		var sum float64
		var ts []tap
		for i := int(math.Ceil(c - support)); i <= int(math.Floor(c+support)); i++ {
			wt := catmullRom((float64(i) - c) * shrink)
			sum += wt
			if i >= 0 && i < w && wt != 0 {
				ts = append(ts, tap{i, float32(wt)})
			}
		}
		for j := range ts {
			ts[j].w /= float32(sum)
		}
		taps[x] = ts
	}
	for y := 0; y < h; y++ {
		src, dst := pix[y*w:][:w], out[y*w2:][:w2]
		for x, ts := range taps {
			var v float32
			for _, t := range ts {
				v += t.w * src[t.i]
			}
			dst[x] = min(max(v, 0), 1)
		}
	}
	return out
}

// catmullRom is the Catmull-Rom cubic kernel (Keys' a = −0.5), support [−2, 2].
func catmullRom(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x < 1:
		return (1.5*x-2.5)*x*x + 1
	case x < 2:
		return ((-0.5*x+2.5)*x-4)*x + 2
	}
	return 0
}
