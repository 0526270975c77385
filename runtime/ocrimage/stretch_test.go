package ocrimage

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// stretchColsRef is stretchCols in float64, from the definition: output column x is the
// Catmull-Rom-weighted mean of the source columns around its centre c = (x+½)·w/w2 − ½, the
// kernel widened by w/w2 when narrowing, columns past the edges paper (their weights count in
// the normalisation), clamped to [0, 1].
func stretchColsRef(pix []float32, w, h, w2 int) []float64 {
	scale := float64(w2) / float64(w)
	shrink := min(scale, 1)
	out := make([]float64, w2*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w2; x++ {
			c := (float64(x)+0.5)/scale - 0.5
			var sum, v float64
			for i := int(math.Floor(c - 2/shrink)); i <= int(math.Ceil(c+2/shrink)); i++ {
				wt := catmullRom((float64(i) - c) * shrink)
				sum += wt
				if i >= 0 && i < w {
					v += wt * float64(pix[y*w+i])
				}
			}
			out[y*w2+x] = min(max(v/sum, 0), 1)
		}
	}
	return out
}

// Against the float64 reference on random ink and awkward widths (float32 weights and sums of
// at most 2·2·(w/w2)+1 taps of values in [0, 1]: well under 1e-5 off); at f = 1 a copy; widening,
// a linear ramp reproduced exactly (Catmull-Rom interpolates and reproduces linear functions).
func TestStretchColsMatchesTheReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, sh := range [][3]int{{120, 3, 37}, {120, 2, 96}, {120, 2, 150}, {1, 2, 5}, {7, 1, 1}, {333, 4, 320}, {50, 3, 171}} {
		w, h, w2 := sh[0], sh[1], sh[2]
		pix := make([]float32, w*h)
		for i := range pix {
			pix[i] = rng.Float32()
		}
		got, want := stretchCols(pix, w, h, w2), stretchColsRef(pix, w, h, w2)
		for i := range want {
			require.InDelta(t, want[i], float64(got[i]), 1e-5, "%d×%d → %d, value %d", w, h, w2, i)
		}
		require.Equal(t, pix, stretchCols(pix, w, h, w))
	}
	const w = 120
	ramp := make([]float32, w)
	for x := range ramp {
		ramp[x] = float32(0.1 + 0.006*float64(x))
	}
	for _, w2 := range []int{150, 301} {
		out := stretchCols(ramp, w, 1, w2)
		scale := float64(w2) / w
		for x := 3; x < w2-3; x++ { // the kernel reaches 2 source columns past each end
			if c := (float64(x)+0.5)/scale - 0.5; c >= 2 && c <= w-3 {
				require.InDelta(t, 0.1+0.006*c, float64(out[x]), 2e-6, "w2 %d, column %d", w2, x)
			}
		}
	}
}

func TestStretchLineScalesALineAndKeepsItsRows(t *testing.T) {
	p := textPage(t, []string{"Narrow or wide, the same words."}, 20, 30, 12, 10, 420, 50)
	ink := Normalize(p.img)
	boxes := SplitLines(ink)
	require.Len(t, boxes, 1)
	box := boxes[0]
	first := LineStrips(ink, box, 32, 1<<16)
	require.NotEmpty(t, first)
	width := func(segs []Segment) int {
		last := segs[len(segs)-1]
		return last.Start + last.Width
	}
	inkSum := func(k *Ink, b image.Rectangle) float64 {
		var s float64
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				s += float64(k.At(x, y))
			}
		}
		return s
	}
	for _, f := range []float64{0.8, 0.85, 1.2, 1.5} {
		wide, nb := StretchLine(ink, box, f)
		require.Equal(t, box.Min.Y, nb.Min.Y)
		require.Equal(t, box.Max.Y, nb.Max.Y)
		require.InDelta(t, f*float64(box.Dx()), float64(nb.Dx()), 2, "f %g: box %v from %v", f, nb, box)
		require.True(t, nb.In(wide.Rect), "f %g: box %v outside %v", f, nb, wide.Rect)
		// The ink is conserved up to the scale (the clamp of the kernel's overshoot takes a little).
		require.InDelta(t, f, inkSum(wide, wide.Rect)/inkSum(ink, box.Inset(-2)), 0.03*f, "f %g", f)
		segs := LineStrips(wide, nb, 32, 1<<16)
		require.NotEmpty(t, segs, "f %g", f)
		require.InDelta(t, f, float64(width(segs))/float64(width(first)), 0.03, "f %g", f)
	}
	k, b := StretchLine(ink, image.Rect(1000, 0, 1100, 10), 1.2)
	require.True(t, b.Empty())
	require.Nil(t, LineStrips(k, b, 32, 320))
}
