package ocrimage

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/math/f64"
)

// rotated draws one line of text turned by deg degrees about the page's centre (positive:
// clockwise on screen, so the baseline descends to the right), bilinear, white outside.
func rotated(t *testing.T, text string, size, deg float64) *image.Gray {
	return turn(textPage(t, []string{text}, size, 0, 30, 40, 900, 130), deg)
}

// turn turns a page by deg degrees about its centre, as rotated.
func turn(p page, deg float64) *image.Gray {
	out := image.NewGray(p.img.Rect)
	draw.Draw(out, out.Rect, image.White, image.Point{}, draw.Src)
	a := deg * math.Pi / 180
	c, s := math.Cos(a), math.Sin(a)
	cx, cy := float64(p.img.Rect.Dx())/2, float64(p.img.Rect.Dy())/2
	// source → destination: rotate about (cx, cy)
	m := f64.Aff3{c, -s, cx - c*cx + s*cy, s, c, cy - s*cx - c*cy}
	xdraw.BiLinear.Transform(out, m, p.img, p.img.Rect, xdraw.Over, nil)
	return out
}

func tallestBox(t *testing.T, k *Ink) image.Rectangle {
	boxes := SplitLines(k)
	require.NotEmpty(t, boxes)
	b := boxes[0]
	for _, c := range boxes[1:] {
		if c.Dy() > b.Dy() {
			b = c
		}
	}
	return b
}

// sharpness is Σ of squared differences between neighbouring rows of pix's row profile over
// the square of its total ink: larger when the text's baseline and x-height are crisp rows.
func sharpness(pix []float32, w, h int) float64 {
	prof := make([]float64, h)
	var tot float64
	for y := 0; y < h; y++ {
		for _, v := range pix[y*w:][:w] {
			prof[y] += float64(v)
			tot += float64(v)
		}
	}
	var s float64
	for y := 1; y < h; y++ {
		d := prof[y] - prof[y-1]
		s += d * d
	}
	return s / (tot * tot)
}

const skewText = "The quick brown fox jumps over the lazy dog, 1234"

// lineSkew finds the angle of a turned line to within a step and a half of its search
// (0.375°), and calls a level line, or one turned by less than 0.5°, level.
func TestLineSkewFindsTheAngleOfATurnedLine(t *testing.T) {
	for _, size := range []float64{16, 28} {
		for _, deg := range []float64{-2.5, -1.5, -0.8, 0, 0.2, 0.8, 1.5, 2.5} {
			t.Run(fmt.Sprintf("size %v angle %v", size, deg), func(t *testing.T) {
				k := Normalize(rotated(t, skewText, size, deg))
				slope, ok := lineSkew(k, tallestBox(t, k))
				if math.Abs(deg) < 0.5 {
					assert.False(t, ok, "a level line is left alone (slope %v)", slope)
					return
				}
				require.True(t, ok)
				assert.InDelta(t, deg, math.Atan(slope)*180/math.Pi, 0.375)
			})
		}
	}
	// A few letters fix no angle: a box narrower than three heights is left alone.
	k := Normalize(rotated(t, "Hi!", 28, 2.5))
	_, ok := lineSkew(k, tallestBox(t, k))
	assert.False(t, ok)
}

// A turned line comes out of LineStrips level: its row profile is as crisp as the level
// line's, where the same crop scaled without shearing is not.
func TestLineStripsLevelsATurnedLine(t *testing.T) {
	for _, deg := range []float64{-2.5, -1.5, 1.5, 2.5} {
		t.Run(fmt.Sprint("angle ", deg), func(t *testing.T) {
			flat := Normalize(rotated(t, skewText, 24, 0))
			want := LineStrips(flat, tallestBox(t, flat), 32, 4096)
			require.Len(t, want, 1)
			k := Normalize(rotated(t, skewText, 24, deg))
			box := tallestBox(t, k)
			got := LineStrips(k, box, 32, 4096)
			require.Len(t, got, 1)
			// The same crop, scaled as it is.
			m := max(1, int(math.Round(0.1*float64(box.Dy()))))
			crop := image.Rect(box.Min.X, box.Min.Y-m, box.Max.X, box.Max.Y+m)
			w := int(math.Round(float64(crop.Dx()) * 32 / float64(crop.Dy())))
			plain := resample(k, crop, 32, w)
			level := sharpness(want[0].Pix, want[0].Width, 32)
			// Turned by the test's bilinear rotation and sheared back with linear interpolation, the
			// line is resampled twice, which softens its rows: measured 0.47–0.57 of the level
			// line's crispness (the rows' sub-pixel phase moves it) and 2.1–2.4 times the
			// unsheared crop's.
			sharp := sharpness(got[0].Pix, got[0].Width, 32)
			assert.GreaterOrEqual(t, sharp, 0.4*level, "levelled")
			assert.GreaterOrEqual(t, sharp, 1.5*sharpness(plain, w, 32), "levelled")
			// Levelled, its rows are the level line's, so it is as wide in the model's pixels, to
			// within three rows of the level line's 28-row crop (11 %): the row an edge spreads
			// over in the two resamplings and the margin's rounding. Unsheared, 30–45 % narrower.
			assert.InDelta(t, want[0].Width, got[0].Width, 0.12*float64(want[0].Width))
		})
	}
}

// In a turned paragraph each line's box also holds corners of the lines above and below, which
// shearing makes level too: the crop must still be the line's own rows, as wide in the model's
// pixels as the level paragraph's line.
func TestLineStripsLevelsALineOfATurnedParagraph(t *testing.T) {
	text := []string{
		"Whose woods these are I think I know.",
		"His house is in the village though;",
		"He will not see me stopping here",
		"To watch his woods fill up with snow.",
	}
	for _, c := range []struct{ size, pitch, deg float64 }{{24, 1.6, 2}, {24, 1.3, 1}, {16, 1.5, -2}, {20, 1.4, 1.2}} {
		t.Run(fmt.Sprintf("size %v pitch %v angle %v", c.size, c.pitch, c.deg), func(t *testing.T) {
			p := textPage(t, text, c.size, c.pitch*c.size, 40, 40, 700, 300)
			flat := Normalize(p.img)
			k := Normalize(turn(p, c.deg))
			want, got := SplitLines(flat), SplitLines(k)
			require.Len(t, want, len(text))
			require.Len(t, got, len(text), "the turned paragraph's lines: %v", got)
			for i := range text {
				w := LineStrips(flat, want[i], 32, 4096)
				g := LineStrips(k, got[i], 32, 4096)
				require.Len(t, w, 1)
				require.Len(t, g, 1)
				// Within three rows of a 20-row crop (15 %; see the test above); with the corners of
				// the lines above and below in the crop, 30–70 % narrower.
				assert.InDelta(t, w[0].Width, g[0].Width, 0.15*float64(w[0].Width), "line %d", i)
			}
		})
	}
}

// A paragraph turned by 2–3° at ordinary line spacing drifts by more than the paper between
// its lines, and SplitLines merges them; levelled first, every line is found, and its box,
// mapped back to source pixels, holds the turned line's centre. A level page is left as it is.
func TestLevelPageSeparatesTheLinesOfATurnedParagraph(t *testing.T) {
	text := []string{
		"The quarterly report is attached below; the figures are final.",
		"Revenue grew by 12.5% to $4,380,000 in Q3, ahead of the plan.",
		"Please review sections 2-4 before Friday and send your notes.",
		"Contact: jane.doe@example.com (ext. 4471) or the front desk.",
		"Meeting moved to Room 7B at 10:30 AM. Thanks, and see you all!",
	}
	const size, pitch = 16.0, 23.0 // 1.45 lines
	for _, deg := range []float64{-5, -3, -2.5, 2.5, 3, 5} {
		t.Run(fmt.Sprint("angle ", deg), func(t *testing.T) {
			p := textPage(t, text, size, pitch, 40, 60, 620, 240)
			k := Normalize(turn(p, deg))
			require.Less(t, len(SplitLines(k)), len(text), "the test's paragraph must merge when not levelled")
			level, slope := LevelPage(k)
			assert.InDelta(t, deg, math.Atan(slope)*180/math.Pi, 0.375)
			boxes := SplitLines(level)
			require.Len(t, boxes, len(text))
			a := deg * math.Pi / 180
			cx, cy := float64(p.img.Rect.Dx())/2, float64(p.img.Rect.Dy())/2
			for i, b := range boxes {
				src := SourceBox(k, b, slope)
				require.True(t, src.In(k.Rect))
				// the truth line's centre, turned as turn turns the page
				tx := float64(p.lines[i].Min.X+p.lines[i].Max.X)/2 - cx
				ty := float64(p.lines[i].Min.Y+p.lines[i].Max.Y)/2 - cy
				x, y := cx+math.Cos(a)*tx-math.Sin(a)*ty, cy+math.Sin(a)*tx+math.Cos(a)*ty
				assert.True(t, image.Pt(int(x), int(y)).In(src), "line %d: centre (%.0f, %.0f) outside %v", i, x, y, src)
				assert.Less(t, src.Dy(), b.Dy()+int(math.Ceil(math.Abs(slope)*float64(b.Dx())))+2)
			}
		})
	}
	flat := Normalize(textPage(t, text, size, pitch, 40, 60, 620, 240).img)
	level, slope := LevelPage(flat)
	assert.Same(t, flat, level)
	assert.Zero(t, slope)
	blank := Normalize(image.NewGray(image.Rect(0, 0, 50, 20)))
	level, slope = LevelPage(blank)
	assert.Same(t, blank, level)
	assert.Zero(t, slope)
}

// A photographed chat: a paragraph's lines on the left and dark solid bubbles on the right,
// turned by 2°. The bubbles' columns are most of the page's vertical runs of solid ink; the
// stem height they gave let their rows vote, and the slope was missed. LevelPage measures it
// on the page without its panels.
func TestLevelPageMeasuresAroundSolidBubbles(t *testing.T) {
	text := []string{
		"Did you get a chance to look at it?",
		"Quick question: which branch is it?",
		"Can you send me the slides from Monday?",
	}
	p := textPage(t, text, 15, 70, 30, 40, 760, 300)
	for i := range 3 { // a bubble beside each line, lower and to the right
		draw.Draw(p.img, image.Rect(420, 70+70*i, 730, 115+70*i), image.NewUniform(color.Gray{50}), image.Point{}, draw.Src)
	}
	for _, deg := range []float64{-2, 2} {
		k := NormalizePage(turn(p, deg))
		_, slope := LevelPage(k)
		assert.InDelta(t, deg, math.Atan(slope)*180/math.Pi, 0.375, "turned by %g°", deg)
	}
}
