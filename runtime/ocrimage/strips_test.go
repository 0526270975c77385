package ocrimage

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/font"
)

// joined puts a line's segments back side by side: height × total width, row-major.
func joined(segs []Segment) (pix []float32, w, h int) {
	for _, s := range segs {
		w += s.Width
		h = s.Height()
	}
	pix = make([]float32, w*h)
	x0 := 0
	for _, s := range segs {
		for y := 0; y < h; y++ {
			copy(pix[y*w+x0:][:s.Width], s.Pix[y*s.Width:][:s.Width])
		}
		x0 += s.Width
	}
	return pix, w, h
}

func colInk(pix []float32, w, h, x int) float64 {
	var s float64
	for y := 0; y < h; y++ {
		s += float64(pix[y*w+x])
	}
	return s
}

func TestLineStripsKeepsAspectRatio(t *testing.T) {
	for _, c := range []struct {
		boxW, boxH, height int
	}{
		{300, 40, 32}, // shrink
		{90, 12, 32},  // enlarge
		{64, 26, 32},  // 26 + 2·3 margin = 32: no scaling
		{1000, 60, 48},
		{7, 100, 16},
	} {
		t.Run(fmt.Sprintf("%dx%d to height %d", c.boxW, c.boxH, c.height), func(t *testing.T) {
			img := image.NewGray(image.Rect(0, 0, c.boxW+20, c.boxH+20))
			draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
			box := image.Rect(10, 10, 10+c.boxW, 10+c.boxH)
			draw.Draw(img, box.Inset(2), image.Black, image.Point{}, draw.Src)
			segs := LineStrips(Normalize(img), box, c.height, 1<<16)
			if len(segs) != 1 {
				t.Fatalf("%d segments", len(segs))
			}
			m := max(1, int(math.Round(0.1*float64(c.boxH))))
			wantW := int(math.Round(float64(c.boxW) * float64(c.height) / float64(c.boxH+2*m)))
			if s := segs[0]; s.Width != wantW || s.Height() != c.height || len(s.Pix) != c.height*s.Width {
				t.Fatalf("segment %d×%d (%d values), want %d×%d", s.Width, s.Height(), len(s.Pix), wantW, c.height)
			}
			for _, v := range segs[0].Pix {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("value %v outside [0,1]", v)
				}
			}
		})
	}
}

// A uniform area stays uniform through area-averaging and bilinear scaling, and the total ink
// scales with the area (area averaging conserves it).
func TestLineStripsScalingConservesInk(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 400, 100))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(50, 30, 350, 70), image.Black, image.Point{}, draw.Src)
	k := Normalize(img)
	box := image.Rect(0, 25, 400, 75) // 50 rows + 5 margin each side = 60
	segs := LineStrips(k, box, 30, 1<<16)
	pix, w, h := joined(segs)
	var sum float64
	for _, v := range pix {
		sum += float64(v)
	}
	want := 300 * 40 * (30.0 / 60) * (30.0 / 60) // ink area × scale²
	if math.Abs(sum-want) > 0.01*want || w != 200 || h != 30 {
		t.Fatalf("ink %.1f in %d×%d, want %.1f in 200×30", sum, w, h, want)
	}
	if v := pix[15*w+100]; v != 1 {
		t.Fatalf("centre of the block is %v, want 1", v)
	}
}

// A long line of text is cut only at whitespace: with pieces of 128 px or more (every word
// fits) each cut lies in a space between words, at a column with no ink at all in the scaled
// image; with 64-px pieces some words must be cut, and then at a column as clean as any in
// reach (a letter space). Every piece fits maxWidth.
func TestLineStripsCutsLongLinesBetweenWords(t *testing.T) {
	text := "The quick brown fox jumps over the lazy dog while five boxing wizards jump quickly and sphinxes of black quartz judge my vow"
	const size = 24.0
	p := textPage(t, []string{text}, size, 0, 10, 6, 1700, 44)
	k := Normalize(p.img)
	boxes := SplitLines(k)
	if len(boxes) != 1 {
		t.Fatalf("%d lines", len(boxes))
	}
	box := boxes[0]
	for _, maxWidth := range []int{256, 200, 128, 64} {
		t.Run(fmt.Sprint("maxWidth ", maxWidth), func(t *testing.T) {
			segs := LineStrips(k, box, 32, maxWidth)
			if len(segs) < 2 {
				t.Fatalf("%d segments", len(segs))
			}
			pix, w, h := joined(segs)
			scale := float64(w) / float64(box.Dx())
			var spaces [][2]float64 // in scaled columns
			for _, sp := range spaceColumns(t, text, size, 10) {
				spaces = append(spaces, [2]float64{float64(sp[0]-box.Min.X) * scale, float64(sp[1]-box.Min.X) * scale})
			}
			start, inWords := 0, 0
			for i, s := range segs {
				if s.Start != start {
					t.Errorf("segment %d starts at scaled column %d, not where the one before ends (%d)", i, s.Start, start)
				}
				if s.Width > maxWidth || s.Width < 1 {
					t.Errorf("segment %d is %d wide (max %d)", i, s.Width, maxWidth)
				}
				if i > 0 {
					cut, prev := start, start-segs[i-1].Width
					ink := colInk(pix, w, h, cut)
					inSpace := false
					for _, sp := range spaces {
						if float64(cut) >= sp[0]-1 && float64(cut) <= sp[1]+1 {
							inSpace = true
						}
					}
					least := math.Inf(1) // the cleanest column the cut could have used
					for c := prev + maxWidth/4; c <= prev+maxWidth; c++ {
						least = min(least, colInk(pix, w, h, c))
					}
					if s.Space != inSpace {
						t.Errorf("cut before segment %d: Space %v, but the cut is in a word space: %v", i, s.Space, inSpace)
					}
					switch {
					case inSpace && ink != 0:
						t.Errorf("cut before segment %d, in a word space at scaled column %d, holds ink %.3f", i, cut, ink)
					case !inSpace && maxWidth >= 128:
						t.Errorf("cut before segment %d at scaled column %d is inside a word, though every word fits %d", i, cut, maxWidth)
					case !inSpace:
						inWords++
						if ink > least+0.05 {
							t.Errorf("cut before segment %d inside a word at scaled column %d holds ink %.3f; column ink down to %.3f was in reach", i, cut, ink, least)
						}
					}
				}
				start += s.Width
			}
			if segs[0].Space {
				t.Error("the first segment follows no space")
			}
			t.Logf("%d pieces, %d cut inside words", len(segs), inWords)
			// Pieces tile the line: boxes side by side, from the line's left to its right.
			for i := 1; i < len(segs); i++ {
				if segs[i].Box.Min.X < segs[i-1].Box.Min.X || segs[i].Box.Min.X > segs[i-1].Box.Max.X {
					t.Errorf("segment boxes %v and %v do not follow each other", segs[i-1].Box, segs[i].Box)
				}
			}
			if segs[0].Box.Min.X != box.Min.X || segs[len(segs)-1].Box.Max.X != box.Max.X {
				t.Errorf("segments span %d…%d, line %v", segs[0].Box.Min.X, segs[len(segs)-1].Box.Max.X, box)
			}
		})
	}
}

// A blank of two line heights or more inside a line (a receipt's columns) always cuts it, even
// when the line fits in one piece, and the blank is left out but for a margin beside the ink on
// either side: the piece after it starts at the price's ink, not in the blank. Ordinary word
// spaces do not cut a line that fits.
func TestLineStripsCutsAtAWideBlankAndLeavesItOut(t *testing.T) {
	const size = 16.0
	for _, c := range []struct {
		spaces int
		noise  float64 // σ of the paper's noise, grey levels
	}{{12, 0}, {40, 0}, {40, 12}} {
		t.Run(fmt.Sprint(c.spaces, " spaces, noise ", c.noise), func(t *testing.T) {
			text := "Coffee" + strings.Repeat(" ", c.spaces) + "2.50"
			p := textPage(t, []string{text}, size, 0, 10, 6, 600, 30)
			img := p.img
			if c.noise > 0 {
				// Light noise must not break the blank into narrow ones (pieces of noise).
				img = noisy(img, c.noise, 3)
			}
			k := Normalize(img)
			boxes := SplitLines(k)
			require.Len(t, boxes, 1)
			segs := LineStrips(k, boxes[0], 32, 4096)
			require.Equal(t, 2, len(segs), "pieces")
			first, second := segs[0], segs[1]
			assert.Zero(t, first.Start)
			assert.True(t, second.Space)
			gap := second.Start - (first.Start + first.Width) // blank columns left out
			assert.Greater(t, gap, 0)
			assert.GreaterOrEqual(t, second.Gap, wideGap(32))
			// What is left of the blank is the two margins of 0.1 line heights (3 columns).
			assert.LessOrEqual(t, second.Gap-gap, 2*3+2)
			for i, s := range segs {
				pix, w := s.Pix, s.Width
				x0, x1 := -1, -1 // the piece's first and last inked columns
				for x := 0; x < w; x++ {
					if colInk(pix, w, 32, x) > 0.05 {
						if x0 < 0 {
							x0 = x
						}
						x1 = x
					}
				}
				require.GreaterOrEqual(t, x0, 0, "piece %d is blank", i)
				if i == 1 {
					assert.LessOrEqual(t, x0, 4, "the price's piece starts in the blank")
				} else {
					assert.GreaterOrEqual(t, x1, w-5, "the first piece ends in the blank")
				}
			}
		})
	}
	// The same words with one space each: one piece.
	p := textPage(t, []string{"Coffee 2.50 and a bun"}, size, 0, 10, 6, 600, 30)
	k := Normalize(p.img)
	segs := LineStrips(k, SplitLines(k)[0], 32, 4096)
	assert.Len(t, segs, 1)
}

// On a page, a blank of 1.2 line heights cuts a line too (a table's cells: "BCN" and "19:15"
// with 6 spaces between them, about 1.5 line heights); a line read alone keeps it in one piece.
func TestPageLineStripsCutsBetweenTableCells(t *testing.T) {
	p := textPage(t, []string{"BCN      19:15"}, 16, 0, 10, 6, 400, 30)
	k := Normalize(p.img)
	box := SplitLines(k)[0]
	segs := PageLineStrips(k, box, 32, 4096)
	require.Len(t, segs, 2, "pieces on a page")
	assert.True(t, segs[1].Space)
	assert.GreaterOrEqual(t, segs[1].Gap, pageWideGap(32))
	assert.Less(t, segs[1].Gap, wideGap(32), "test is wrong: the blank is wide enough to cut any line")
	assert.Len(t, LineStrips(k, box, 32, 4096), 1, "pieces of a line read alone")
	// Word spaces do not cut a page's line either.
	p = textPage(t, []string{"Coffee 2.50 and a bun"}, 16, 0, 10, 6, 600, 30)
	k = Normalize(p.img)
	assert.Len(t, PageLineStrips(k, SplitLines(k)[0], 32, 4096), 1)
}

// A faint line of a page (light grey text, its inkiest pixel under 0.6 of the page's ink)
// gets the full range in its pieces, as Normalize gives a line read alone; LineStrips keeps
// the ink as it is.
func TestPageLineStripsStretchesAFaintLine(t *testing.T) {
	p := textPage(t, []string{"maria.lopez@example.com"}, 16, 0, 10, 6, 300, 30)
	k := Normalize(p.img)
	box := SplitLines(k)[0]
	for i := range k.Pix {
		k.Pix[i] *= 0.45
	}
	maxOf := func(segs []Segment) float32 {
		m := float32(0)
		for _, s := range segs {
			m = max(m, slices.Max(s.Pix[:s.Height()*s.Width]))
		}
		return m
	}
	assert.InDelta(t, 1, maxOf(PageLineStrips(k, box, 32, 4096)), 1e-6)
	assert.LessOrEqual(t, maxOf(LineStrips(k, box, 32, 4096)), float32(0.46))
}

// spaceColumns gives the source columns [from, to] between the ink of consecutive words of
// text drawn at x = left.
func spaceColumns(t *testing.T, text string, size float64, left int) [][2]int {
	f := face(t, size)
	defer f.Close()
	var out [][2]int
	words := strings.Split(text, " ")
	for i := 1; i < len(words); i++ {
		before := strings.Join(words[:i], " ")
		b, _ := font.BoundString(f, before)
		sp := font.MeasureString(f, before+" ")
		nb, _ := font.BoundString(f, words[i])
		out = append(out, [2]int{left + b.Max.X.Ceil(), left + (sp + nb.Min.X).Floor()})
	}
	return out
}

// Monospaced and letter-spaced faces have letter gaps as wide as a narrow word space (Courier's
// digits: about 0.15 × the line height). A cut still goes at a word space when one fits: the
// line here is "words" of four stems 9 px apart, 30 px between words; every word fits.
func TestLineStripsPrefersWordSpacesToWideLetterGaps(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 1400, 60))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	var spaces [][2]int // source columns between words
	x := 10
	for x+67 < 1390 {
		for l := 0; l < 4; l++ {
			draw.Draw(img, image.Rect(x, 15, x+10, 44), image.Black, image.Point{}, draw.Src)
			x += 19
		}
		x -= 9
		spaces = append(spaces, [2]int{x, x + 30})
		x += 30
	}
	k := Normalize(img)
	boxes := SplitLines(k)
	if len(boxes) != 1 {
		t.Fatalf("%d lines", len(boxes))
	}
	box := boxes[0]
	const maxWidth = 128
	segs := LineStrips(k, box, 32, maxWidth)
	if len(segs) < 5 {
		t.Fatalf("%d segments", len(segs))
	}
	_, w, _ := joined(segs)
	scale := float64(w) / float64(box.Dx())
	start := 0
	for i, s := range segs {
		if s.Width > maxWidth {
			t.Errorf("segment %d is %d wide", i, s.Width)
		}
		if i > 0 {
			src := float64(box.Min.X) + float64(start)/scale
			inSpace := false
			for _, sp := range spaces {
				inSpace = inSpace || (src >= float64(sp[0]) && src <= float64(sp[1]))
			}
			if !inSpace || !s.Space {
				t.Errorf("cut before segment %d at source column %.1f: in a word space %v, Space %v; want both", i, src, inSpace, s.Space)
			}
		}
		start += s.Width
	}
}

// A "word" with no blank column (letters joined by a baseline stroke) wider than maxWidth is
// cut at the column of least ink in the second half of the allowed width.
func TestLineStripsCutsALongWordAtItsThinnestColumn(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 1200, 60))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(10, 40, 1190, 44), image.Black, image.Point{}, draw.Src) // joining stroke
	for x := 10; x < 1180; x += 13 {
		draw.Draw(img, image.Rect(x, 15, x+5, 44), image.Black, image.Point{}, draw.Src) // stems
	}
	k := Normalize(img)
	box := image.Rect(5, 12, 1195, 47)
	const maxWidth = 100
	segs := LineStrips(k, box, 32, maxWidth)
	pix, w, h := joined(segs)
	x := 0
	for i, s := range segs {
		if s.Width > maxWidth {
			t.Fatalf("segment %d is %d wide", i, s.Width)
		}
		if i > 0 {
			least := math.Inf(1)
			for c := x - segs[i-1].Width + maxWidth/2 + 1; c <= x-segs[i-1].Width+maxWidth && c < w; c++ {
				least = min(least, colInk(pix, w, h, c))
			}
			if got := colInk(pix, w, h, x); got > least+1e-4 {
				t.Errorf("cut %d at column %d holds ink %.3f; the least in range is %.3f", i, x, got, least)
			}
		}
		x += s.Width
	}
	if len(segs) < 10 {
		t.Fatalf("%d segments for a %d-px-wide scaled line", len(segs), w)
	}
}

func TestLineStripsHandlesEdgesAndBadArguments(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 100, 20))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	for x := 10; x < 90; x += 10 {
		draw.Draw(img, image.Rect(x, 0, x+3, 20), image.Black, image.Point{}, draw.Src) // stems
	}
	k := Normalize(img)
	// A box touching the image's top and bottom: the margin is paper.
	segs := LineStrips(k, img.Rect, 0, 0)
	if len(segs) != 1 || segs[0].Height() != DefaultHeight || segs[0].Box != img.Rect {
		t.Fatalf("whole-image box: %d segments, %+v", len(segs), segs)
	}
	s := segs[0]
	stem := int(math.Round(11.5 * float64(s.Width) / 100)) // the centre of the stem at x 10…13
	if s.Pix[0*s.Width+stem] != 0 || s.Pix[(DefaultHeight/2)*s.Width+stem] < 0.9 {
		t.Errorf("stem column %d: %v at the top margin (want paper), %v in the middle (want ink)",
			stem, s.Pix[stem], s.Pix[(DefaultHeight/2)*s.Width+stem])
	}
	for _, c := range []struct {
		box         image.Rectangle
		height, max int
	}{
		{image.Rect(200, 0, 300, 20), 32, 256}, // outside
		{image.Rect(10, 5, 10, 15), 32, 256},   // empty
		{img.Rect, -1, 256},
		{img.Rect, 32, -5},
		{img.Rect, MaxHeight + 1, 256},
	} {
		if got := LineStrips(k, c.box, c.height, c.max); got != nil {
			t.Errorf("LineStrips(%v, %d, %d) = %d segments, want nil", c.box, c.height, c.max, len(got))
		}
	}
	if LineStrips(nil, img.Rect, 32, 256) != nil {
		t.Error("nil ink gave segments")
	}
}

func TestSegmentPaddedAndToGray(t *testing.T) {
	s := Segment{Width: 3, Pix: []float32{0, 0.5, 1, 1, 0.25, 0}}
	if s.Height() != 2 {
		t.Fatalf("height %d", s.Height())
	}
	got := s.Padded(5)
	want := []float32{0, 0.5, 1, 0, 0, 1, 0.25, 0, 0, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Padded(5) = %v, want %v", got, want)
	}
	if got := s.Padded(2); fmt.Sprint(got) != fmt.Sprint([]float32{0, 0.5, 1, 0.25}) {
		t.Fatalf("Padded(2) = %v", got)
	}
	g := ToGray(s)
	if g.Rect != image.Rect(0, 0, 3, 2) || g.Pix[0] != 255 || g.Pix[2] != 0 || g.Pix[1] != 128 {
		t.Fatalf("ToGray: %v %v", g.Rect, g.Pix)
	}
}

func TestPrepareReadsAParagraph(t *testing.T) {
	p := textPage(t, paragraph, 20, 30, 20, 10, 560, 175)
	img := tinted(p.img, color.RGBA{245, 240, 225, 255}, color.RGBA{20, 20, 60, 255})
	lines, err := Prepare(img, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != len(paragraph) {
		t.Fatalf("%d lines, want %d", len(lines), len(paragraph))
	}
	for i, l := range lines {
		if v := iou(l.Box, p.lines[i]); v < 0.8 {
			t.Errorf("line %d: box %v, ink %v, IoU %.2f", i, l.Box, p.lines[i], v)
		}
		total := 0
		for _, s := range l.Segments {
			if s.Height() != DefaultHeight || s.Width > DefaultMaxWidth || !s.Box.In(img.Bounds()) {
				t.Errorf("line %d: segment %d×%d box %v", i, s.Width, s.Height(), s.Box)
			}
			total += s.Width
		}
		// 20 px/em text in a box ~1.2 em tall: a character is ~0.5 em wide, so about
		// 32/(1.2·1.2)·0.5 ≈ 11 px of the scaled line.
		if per := float64(total) / float64(len(paragraph[i])); per < 6 || per > 16 {
			t.Errorf("line %d: %.1f px per character", i, per)
		}
	}
	if _, err := Prepare(nil, 0, 0); err == nil {
		t.Error("Prepare(nil) succeeded")
	}
	if _, err := Prepare(image.NewGray(image.Rect(0, 0, 0, 5)), 0, 0); err == nil || !strings.Contains(err.Error(), "zero size") {
		t.Errorf("Prepare(empty) error %v", err)
	}
	if _, err := Prepare(img, -3, 0); err == nil || !strings.Contains(err.Error(), "line height -3") {
		t.Errorf("Prepare(height -3) error %v", err)
	}
	white := image.NewGray(image.Rect(0, 0, 50, 50))
	draw.Draw(white, white.Rect, image.White, image.Point{}, draw.Src)
	if lines, err := Prepare(white, 0, 0); err != nil || len(lines) != 0 {
		t.Errorf("blank page: %d lines, %v", len(lines), err)
	}
}

// Property test over random shapes (1…257 a side), contents (blank, noise, blobs, inverted)
// and model sizes: Prepare never fails on a valid image, and what it returns is well formed.
func TestPrepareOnRandomShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		w, h := 1+rng.IntN(257), 1+rng.IntN(257)
		x0, y0 := rng.IntN(5)-2, rng.IntN(5)-2 // not always at the origin
		g := image.NewGray(image.Rect(x0, y0, x0+w, y0+h))
		paper := uint8(rng.IntN(256))
		for i := range g.Pix {
			g.Pix[i] = paper
		}
		switch trial % 4 {
		case 1: // noise
			noisy(g, float64(rng.IntN(80)), rng.Uint64())
		case 2, 3: // blobs of another level
			ink := uint8(rng.IntN(256))
			for range rng.IntN(40) {
				x, y := g.Rect.Min.X+rng.IntN(w), g.Rect.Min.Y+rng.IntN(h)
				r := image.Rect(x, y, x+1+rng.IntN(20), y+1+rng.IntN(30)).Intersect(g.Rect)
				draw.Draw(g, r, image.NewUniform(color.Gray{ink}), image.Point{}, draw.Src)
			}
		}
		height, maxWidth := 1+rng.IntN(64), 1+rng.IntN(300)
		lines, err := Prepare(g, height, maxWidth)
		if err != nil {
			t.Fatalf("trial %d (%v): %v", trial, g.Rect, err)
		}
		var prev image.Rectangle
		for i, l := range lines {
			// Reading order: top to bottom, side-by-side lines (rows overlapping by half the
			// shorter height) left to right.
			sideBySide := 2*(min(prev.Max.Y, l.Box.Max.Y)-max(prev.Min.Y, l.Box.Min.Y)) >= min(prev.Dy(), l.Box.Dy())
			ordered := i == 0 || prev.Min.Y <= l.Box.Min.Y || sideBySide && prev.Min.X <= l.Box.Min.X
			if !l.Box.In(g.Rect) || l.Box.Empty() || !ordered {
				t.Fatalf("trial %d (%v): line box %v (previous %v)", trial, g.Rect, l.Box, prev)
			}
			prev = l.Box
			for _, s := range l.Segments {
				if s.Width < 1 || s.Width > maxWidth || s.Height() != height || len(s.Pix) != height*s.Width || !s.Box.In(g.Rect) {
					t.Fatalf("trial %d (%v): segment %d×%d (%d values) box %v", trial, g.Rect, s.Width, s.Height(), len(s.Pix), s.Box)
				}
				for _, v := range s.Pix {
					if !(v >= 0 && v <= 1) {
						t.Fatalf("trial %d: value %v", trial, v)
					}
				}
			}
		}
	}
}

// Prepare splits big images across goroutines; the answer must not depend on how many.
func TestPrepareIsTheSameOnOneCoreAndMany(t *testing.T) {
	p := textPage(t, paragraph, 20, 30, 20, 10, 900, 400)
	img := tinted(noisy(p.img, 20, 9), color.RGBA{240, 240, 230, 255}, color.RGBA{10, 10, 40, 255})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one, err := Prepare(img, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GOMAXPROCS(8)
	many, err := Prepare(img, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(one) != fmt.Sprint(many) {
		t.Fatal("Prepare on 8 goroutines differs from Prepare on 1")
	}
}

// A row of dashes or equals signs has a box a stroke tall; LineStrips scales it as a line of
// text in the same face, not magnified into bars (about 9× here). Text, a row of dots and a
// blurred word are not flat lines and keep their boxes.
func TestLineStripsScalesFlatLinesAsText(t *testing.T) {
	scale := func(t *testing.T, text string) (float64, bool) {
		p := textPage(t, []string{text}, 24, 30, 10, 10, 420, 60)
		ink := Normalize(p.img)
		boxes := SplitLines(ink)
		if len(boxes) == 0 {
			t.Fatalf("%q: no line found", text)
		}
		best := boxes[0]
		for _, b := range boxes[1:] {
			if b.Dy() > best.Dy() {
				best = b
			}
		}
		_, flat := flatLine(ink, best)
		segs := LineStrips(ink, best, 32, 1<<16)
		if len(segs) == 0 {
			t.Fatalf("%q: no segments", text)
		}
		// A row of dots, scaled by its own box, has blanks of several of its heights between
		// them, so it is cut at each (see wideGap); the scale is the whole line's.
		last := segs[len(segs)-1]
		return float64(last.Start+last.Width) / float64(best.Dx()), flat
	}
	text, flat := scale(t, "Text -- with dashes")
	if flat {
		t.Fatalf("a line of text taken for a flat line")
	}
	for _, s := range []string{"-----------", "- - - - - -", "______ ______"} {
		got, flat := scale(t, s)
		if !flat {
			t.Errorf("%q: not taken for a flat line", s)
		}
		if r := got / text; r < 0.6 || r > 1.6 {
			t.Errorf("%q scaled %.3f× a source pixel, %.2f times the text line's %.3f×", s, got, r, text)
		}
	}
	for _, s := range []string{". . . . . .", "ocean wave", "mummer", "a", "—"} {
		if _, flat := scale(t, s); flat {
			t.Errorf("%q taken for a flat line", s)
		}
	}
	// Wide sharp pieces a stroke is far thinner than: glyphs drawn as outlines (joined "oo").
	outlines := image.NewGray(image.Rect(0, 0, 300, 40))
	draw.Draw(outlines, outlines.Rect, image.White, image.Point{}, draw.Src)
	for x := 10; x+40 < 300; x += 50 {
		r := image.Rect(x, 12, x+40, 26)
		draw.Draw(outlines, r, image.Black, image.Point{}, draw.Src)
		draw.Draw(outlines, r.Inset(2), image.White, image.Point{}, draw.Src)
	}
	ink := Normalize(outlines)
	if _, flat := flatLine(ink, image.Rect(10, 12, 290, 26)); flat {
		t.Errorf("a row of outlined boxes taken for a flat line")
	}
	// Blurred words: blobs as wide as words, strokes as wide as the blobs are tall.
	for _, s := range []string{"see", "cocoa sauce on a canoe"} {
		p := textPage(t, []string{s}, 12, 30, 10, 10, 200, 40)
		ink = Normalize(blurred(p.img, 2))
		for _, b := range SplitLines(ink) {
			if _, flat := flatLine(ink, b); flat {
				t.Errorf("blurred %q (box %v) taken for a flat line", s, b)
			}
		}
	}
}

// blurred is g box-blurred r pixels each way, r times over (about a Gaussian).
func blurred(g *image.Gray, r int) *image.Gray {
	w, h := g.Rect.Dx(), g.Rect.Dy()
	cur := make([]float64, w*h)
	for i, v := range g.Pix {
		cur[i] = float64(v)
	}
	for pass := 0; pass < r; pass++ {
		next := make([]float64, w*h)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				s, n := 0.0, 0
				for dy := -r; dy <= r; dy++ {
					for dx := -r; dx <= r; dx++ {
						if xx, yy := x+dx, y+dy; xx >= 0 && xx < w && yy >= 0 && yy < h {
							s += cur[yy*w+xx]
							n++
						}
					}
				}
				next[y*w+x] = s / float64(n)
			}
		}
		cur = next
	}
	out := image.NewGray(g.Rect)
	for i, v := range cur {
		out.Pix[i] = clamp8(v)
	}
	return out
}

func TestPrepareLeavesHorizontalRulesOut(t *testing.T) {
	text := []string{"Quarterly Update", "", paragraph[0], paragraph[1], paragraph[3]}
	for _, th := range []int{2, 4} {
		p := textPage(t, text, 20, 30, 10, 10, 560, 175)
		bar := image.Rect(10, 10+30+18, 550, 10+30+18+th) // in the empty line's place
		draw.Draw(p.img, bar, image.Black, image.Point{}, draw.Src)
		ink := Normalize(p.img)
		boxes := SplitLines(ink)
		// The rule is a line to the line finder: without Rule it would be read.
		require.Len(t, boxes, 5, "thickness %d: boxes %v", th, boxes)
		var rules []image.Rectangle
		for _, b := range boxes {
			if Rule(ink, b) {
				rules = append(rules, b)
			}
		}
		require.Len(t, rules, 1, "thickness %d", th)
		require.Greater(t, iou(rules[0], bar), 0.5, "thickness %d: rule box %v, bar %v", th, rules[0], bar)

		lines, err := Prepare(p.img, 0, 0)
		require.NoError(t, err)
		require.Len(t, lines, 4, "thickness %d", th)
		for i, want := range []image.Rectangle{p.lines[0], p.lines[2], p.lines[3], p.lines[4]} {
			require.Greater(t, iou(lines[i].Box, want), 0.8, "thickness %d, line %d: box %v, ink %v", th, i, lines[i].Box, want)
		}
	}

	// Not rules: lines of text, rows of dashes and of spaced underscores, an underline as long as
	// a word, and a bar with a break in it. (A row of equals signs whose glyphs touch, as Go
	// Regular's do, is two bars the line finder splits, and each is a rule.)
	for _, s := range []string{"Short line.", "-----------", "______ ______", "—"} {
		p := textPage(t, []string{s}, 24, 30, 10, 10, 420, 60)
		ink := Normalize(p.img)
		for _, b := range SplitLines(ink) {
			require.False(t, Rule(ink, b), "%q (box %v) taken for a rule", s, b)
		}
	}
	for _, bar := range [][]image.Rectangle{
		{image.Rect(10, 20, 10+60, 22)},                             // 30 strokes long
		{image.Rect(10, 20, 200, 22), image.Rect(215, 20, 400, 22)}, // broken in the middle
	} {
		g := image.NewGray(image.Rect(0, 0, 420, 40))
		draw.Draw(g, g.Rect, image.White, image.Point{}, draw.Src)
		for _, r := range bar {
			draw.Draw(g, r, image.Black, image.Point{}, draw.Src)
		}
		ink := Normalize(g)
		for _, b := range SplitLines(ink) {
			require.False(t, Rule(ink, b), "bars %v (box %v) taken for a rule", bar, b)
		}
	}
	require.False(t, Rule(nil, image.Rect(0, 0, 10, 10)))
}
