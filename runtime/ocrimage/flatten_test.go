package ocrimage

import (
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gradientPage is the paragraph drawn in text of grey level ink on a background that runs
// from grey level left to right across the page.
func gradientPage(t *testing.T, ink uint8, left, right float64) (*image.Gray, page) {
	t.Helper()
	p := textPage(t, paragraph, 16, 26, 20, 12, 560, 160)
	g := image.NewGray(p.img.Rect)
	for y := range 160 {
		for x := range 560 {
			bg := left + (right-left)*float64(x)/559
			cover := 1 - float64(p.img.GrayAt(x, y).Y)/255 // 1 where the text is
			g.SetGray(x, y, color.Gray{clamp8(bg*(1-cover) + float64(ink)*cover)})
		}
	}
	return g, p
}

// White text on a background running from light blue's grey (169) to dark purple's (34): one
// paper level for the page cannot hold it, so Normalize alone finds no lines or wrong ones;
// flattened, the page reads as light text on an even dark ground.
func TestFlattenEvensOutAGradient(t *testing.T) {
	g, p := gradientPage(t, 255, 169, 34)
	require.NotEqual(t, len(p.lines), len(SplitPage(Normalize(g))), "test is wrong: the gradient does not get in the way")
	f := Flatten(g)
	require.NotSame(t, g, f)
	k := Normalize(f)
	assert.True(t, k.Inverted)
	// The IoU bound only: an antialiased edge column next to the drifting paper can fall
	// either side of solid.
	checkBoxes(t, SplitPage(k), p.lines, marginFor(16), false)

	// Dark text on paper that greys from white to 161 top to bottom reads too.
	g2, p2 := gradientPage(t, 20, 255, 255)
	for y := range 160 {
		for x := range 560 {
			v := float64(g2.GrayAt(x, y).Y)
			bg := 255 - 94*float64(y)/159
			g2.SetGray(x, y, color.Gray{clamp8(v * bg / 255)})
		}
	}
	f2 := Flatten(g2)
	require.NotSame(t, g2, f2)
	checkBoxes(t, SplitPage(Normalize(f2)), p2.lines, marginFor(16), false)

	// A wide, short banner darkening from white to 110 top to bottom: its tiles are a twelfth
	// of its height tall, not of its width (three rows of them could not follow the gradient).
	p3 := textPage(t, paragraph[:4], 15, 24, 20, 24, 900, 150)
	g3 := image.NewGray(p3.img.Rect)
	for y := range 150 {
		for x := range 900 {
			bg := 255 - 145*float64(y)/149
			g3.SetGray(x, y, color.Gray{clamp8(float64(p3.img.GrayAt(x, y).Y) * bg / 255)})
		}
	}
	f3 := Flatten(g3)
	require.False(t, f3 == g3, "Flatten left the banner's gradient")
	checkBoxes(t, SplitPage(NormalizePage(f3)), p3.lines, marginFor(15), false)
}

// An even page, and one whose background changes in a step (a dark title bar), come back as
// they are.
func TestFlattenLeavesEvenPagesAndStepsAlone(t *testing.T) {
	p := textPage(t, paragraph, 16, 26, 20, 12, 560, 160)
	assert.Same(t, p.img, Flatten(p.img))
	g, _ := gradientPage(t, 20, 240, 225) // a drift of 15 levels: Normalize copes
	assert.Same(t, g, Flatten(g))
	bar, _, _, _ := barPage(t)
	assert.Same(t, bar, Flatten(bar))
	assert.Nil(t, Flatten(nil))
	tiny := image.NewGray(image.Rect(0, 0, 20, 10))
	assert.Same(t, tiny, Flatten(tiny))
}
