package ocrimage

import (
	"image"
	"image/color"
	"image/draw"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// barPage is a 600×200 page: a dark 40-px title bar with light text (a line rendered black on
// white, inverted) over three lines of a paragraph, and the bar's line's true ink box.
func barPage(t *testing.T) (img *image.Gray, bar, title image.Rectangle, body page) {
	t.Helper()
	head := textPage(t, []string{"Inbox (3)   Sent   Drafts"}, 16, 0, 16, 10, 600, 40)
	body = textPage(t, paragraph[:3], 14, 22, 16, 10, 600, 160)
	img = image.NewGray(image.Rect(0, 0, 600, 200))
	for y := range 40 {
		for x := range 600 {
			img.SetGray(x, y, color.Gray{255 - head.img.GrayAt(x, y).Y})
		}
	}
	draw.Draw(img, image.Rect(0, 40, 600, 200), body.img, image.Point{}, draw.Src)
	for i := range body.lines {
		body.lines[i] = body.lines[i].Add(image.Pt(0, 40))
	}
	return img, image.Rect(0, 0, 600, 40), head.lines[0], body
}

// A title bar is a panel; its light text, holes in it, is the ink of PanelInk, and the page
// without it (Erase) has only the paragraph's lines.
func TestPanelsFindsATitleBarAndPanelInkReadsItsText(t *testing.T) {
	img, bar, title, body := barPage(t)
	k := Normalize(img)
	require.False(t, k.Inverted, "the page is dark on light")
	panels := Panels(k)
	require.Equal(t, []image.Rectangle{bar}, panels)

	pk := PanelInk(k, bar)
	require.False(t, pk.Blank)
	assert.True(t, pk.Inverted, "light text on the bar's dark ground")
	assert.Equal(t, bar, pk.Rect)
	checkBoxes(t, SplitPage(pk), []image.Rectangle{title}, marginFor(16), true)

	rest := Erase(k, panels)
	checkBoxes(t, SplitPage(rest), body.lines, marginFor(14), true)
	assert.Greater(t, k.At(5, 5), float32(0.5), "Erase works on a copy")
	assert.Zero(t, rest.At(5, 5))

	// Without the panels the page's line finder sees the bar as a block of ink: the bar is
	// not read as a line of the page's own.
	for _, b := range SplitPage(rest) {
		assert.False(t, b.Overlaps(bar), "line %v in the bar", b)
	}
}

// Not panels: a square icon (SplitPage's), an outlined box (its frame covers little of its
// box), a bold glyph; a flat bar with no text is a panel whose ink is blank, as is a bar
// holding only a light square (a photo's shapes have no strokes).
func TestPanelsLeavesIconsFramesAndGlyphsAlone(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 400, 300))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	black := image.NewUniform(color.Black)
	draw.Draw(img, image.Rect(10, 10, 50, 50), black, image.Point{}, draw.Src) // icon
	for _, r := range []image.Rectangle{{image.Pt(100, 10), image.Pt(300, 12)}, {image.Pt(100, 58), image.Pt(300, 60)},
		{image.Pt(100, 10), image.Pt(102, 60)}, {image.Pt(298, 10), image.Pt(300, 60)}} {
		draw.Draw(img, r, black, image.Point{}, draw.Src) // frame
	}
	draw.Draw(img, image.Rect(10, 100, 390, 130), black, image.Point{}, draw.Src) // flat bar
	draw.Draw(img, image.Rect(10, 150, 390, 200), black, image.Point{}, draw.Src) // bar with a light square
	draw.Draw(img, image.Rect(100, 160, 140, 190), image.White, image.Point{}, draw.Src)
	glyph := textPage(t, []string{"M"}, 90, 0, 0, 0, 100, 90)
	draw.Draw(img, image.Rect(250, 210, 350, 300), glyph.img, image.Point{}, draw.Src)
	k := Normalize(img)
	panels := Panels(k)
	require.Equal(t, []image.Rectangle{image.Rect(10, 100, 390, 130), image.Rect(10, 150, 390, 200)}, panels)
	for _, p := range panels {
		assert.True(t, PanelInk(k, p).Blank, "panel %v", p)
	}
}

// LocatePage reads a title bar's line from the bar's own ink, before the paragraph under it.
func TestLocatePageReadsThePanelsLinesInOrder(t *testing.T) {
	img, bar, title, body := barPage(t)
	k := Normalize(img)
	lines, panels := LocatePage(k, nil)
	require.Equal(t, []image.Rectangle{bar}, panels)
	require.Len(t, lines, 1+len(body.lines))
	assert.Equal(t, bar, lines[0].Panel)
	assert.True(t, lines[0].Ink.Inverted)
	checkBoxes(t, []image.Rectangle{lines[0].Box}, []image.Rectangle{title}, marginFor(16), true)
	for i, l := range lines[1:] {
		assert.True(t, l.Panel.Empty())
		checkBoxes(t, []image.Rectangle{l.Box}, body.lines[i:i+1], marginFor(14), true)
	}
	// keep sees the page's own lines only.
	var kept []image.Rectangle
	LocatePage(k, func(b []image.Rectangle) []image.Rectangle { kept = b; return b[1:] })
	require.Len(t, kept, len(body.lines))
	lines, _ = LocatePage(k, func(b []image.Rectangle) []image.Rectangle { return b[1:] })
	require.Len(t, lines, len(body.lines))
}

func TestReadingOrderGoesDownThenAcross(t *testing.T) {
	r := func(x, y, w, h int) image.Rectangle { return image.Rect(x, y, x+w, y+h) }
	boxes := []image.Rectangle{
		r(140, 61, 50, 11), // "Cancel", a row lower by a pixel
		r(10, 10, 300, 14), // the heading
		r(30, 60, 50, 12),  // "Delete"
		r(10, 90, 300, 14), // the text under the buttons
		r(400, 20, 60, 14), // beside the heading but lower by more than half its height: after it
	}
	assert.Equal(t, []int{1, 4, 2, 0, 3}, ReadingOrder(boxes))
}

// dialogPage is a dialog on a dimmed backdrop: a white card on grey 123, holding a dark title
// bar with light text (inside a 1-px rim of the card, whose corners are rounded), two lines of
// dark text and a dark button with light text.
func dialogPage(t *testing.T) (img *image.Gray, title, body []image.Rectangle, button image.Rectangle) {
	t.Helper()
	img = image.NewGray(image.Rect(0, 0, 900, 420)) // the backdrop is most of the picture
	draw.Draw(img, img.Rect, image.NewUniform(color.Gray{123}), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(40, 40, 600, 260), image.White, image.Point{}, draw.Src)
	for _, c := range []image.Point{{40, 40}, {593, 40}, {40, 253}, {593, 253}} { // rounded corners
		for y := range 7 {
			for x := range 7 {
				dx, dy := min(x, 6-x), min(y, 6-y)
				if dx+dy < 3 && (x < 3) == (c.X == 40) && (y < 3) == (c.Y == 40) {
					img.SetGray(c.X+x, c.Y+y, color.Gray{123})
				}
			}
		}
	}
	// Text is drawn by darkening: min(page, text) for dark text; light text is the inverse.
	dark := func(p page, at image.Point) {
		for y := p.img.Rect.Min.Y; y < p.img.Rect.Max.Y; y++ {
			for x := p.img.Rect.Min.X; x < p.img.Rect.Max.X; x++ {
				q := image.Pt(x, y).Add(at)
				img.SetGray(q.X, q.Y, color.Gray{min(img.GrayAt(q.X, q.Y).Y, p.img.GrayAt(x, y).Y)})
			}
		}
	}
	light := func(p page, at image.Point, ground uint8) {
		for y := p.img.Rect.Min.Y; y < p.img.Rect.Max.Y; y++ {
			for x := p.img.Rect.Min.X; x < p.img.Rect.Max.X; x++ {
				cover := 1 - float64(p.img.GrayAt(x, y).Y)/255
				img.SetGray(x+at.X, y+at.Y, color.Gray{clamp8(float64(ground) + cover*(245-float64(ground)))})
			}
		}
	}
	head := textPage(t, []string{"Delete file?"}, 20, 0, 19, 7, 558, 39) // inside the card's 1-px rim
	light(head, image.Pt(41, 41), 50)
	text := textPage(t, paragraph[:2], 16, 24, 20, 10, 540, 60)
	dark(text, image.Pt(40, 100))
	btn := textPage(t, []string{"Delete"}, 16, 0, 14, 7, 90, 32)
	light(btn, image.Pt(480, 210), 40)
	for _, l := range head.lines {
		title = append(title, l.Add(image.Pt(41, 41)))
	}
	for _, l := range text.lines {
		body = append(body, l.Add(image.Pt(40, 100)))
	}
	return img, title, body, btn.lines[0].Add(image.Pt(480, 210))
}

// A dialog on a dimmed backdrop: the card is a panel of the page, the title bar and the button
// panels of the card. The backdrop reaches the bar through the card's rounded corners: taken
// for what lies around the card, the bar and its line were lost. Normalize's noise estimate, the root mean square of the distances on the
// backdrop's side, takes the card's dark bar, text and button for noise and leaves no ink at
// all; NormalizePage does not.
func TestLocatePageReadsADialogOnADimmedBackdrop(t *testing.T) {
	img, title, body, button := dialogPage(t)
	require.True(t, Normalize(img).Blank, "test is wrong: Normalize finds ink")
	k := NormalizePage(img)
	require.False(t, k.Blank)
	lines, panels := LocatePage(k, nil)
	require.Len(t, panels, 1, "the card")
	var got []image.Rectangle
	for _, l := range lines {
		got = append(got, l.Box)
		assert.False(t, l.Panel.Empty(), "line %v lies on a panel", l.Box)
	}
	want := append(append(append([]image.Rectangle{}, title...), body...), button)
	checkBoxes(t, got, want, marginFor(16), false)
}

// A sheet photographed at a slant on a darker table: the sheet is the panel (a quarter of the
// page and more), and the table showing in the corners of its box, and the sheet's own
// outline, are not ink in its PanelInk; its text is.
func TestPanelInkLeavesWhatLiesAroundThePanelOut(t *testing.T) {
	text := textPage(t, paragraph[:3], 14, 22, 30, 30, 320, 130)
	img := image.NewGray(image.Rect(0, 0, 480, 260))                                    // the table is most of the picture: its paper
	draw.Draw(img, img.Rect, image.NewUniform(color.Gray{90}), image.Point{}, draw.Src) // the table
	for y := 10; y < 170; y++ {
		shift := (y - 10) / 16 // the sheet's edges lean by a pixel every 16 rows
		for x := 10 + shift; x < 350-10+shift; x++ {
			v := uint8(250)
			if x == 10+shift || x == 339+shift || y == 10 || y == 169 {
				v = 200 // a lighter outline
			}
			if tx, ty := x-10, y-20; tx >= 0 && tx < 320 && ty >= 0 && ty < 130 {
				v = min(v, text.img.GrayAt(tx, ty).Y)
			}
			img.SetGray(x, y, color.Gray{v})
		}
	}
	k := NormalizePage(img)
	require.True(t, k.Inverted, "test is wrong: the table is not the page's paper")
	panels := Panels(k)
	require.Len(t, panels, 1)
	pk := PanelInk(k, panels[0])
	require.False(t, pk.Blank)
	var want []image.Rectangle
	for _, l := range text.lines {
		want = append(want, l.Add(image.Pt(10, 20)))
	}
	checkBoxes(t, SplitPage(pk), want, marginFor(14), false)
}

// A receipt photographed on a grey table, both grainy: the table is most of the picture, so
// the sheet is a light panel on it, and its lines are read from its own ink. Panels once
// refused a page this noisy (paper noise 0.056 by noiseLevel; testdata of a photographed
// receipt gave one line, the whole sheet).
func TestLocatePageReadsANoisyPhotographOfASheet(t *testing.T) {
	text := textPage(t, paragraph[:4], 14, 22, 20, 20, 420, 130)
	img := image.NewGray(image.Rect(0, 0, 560, 300))
	draw.Draw(img, img.Rect, image.NewUniform(color.Gray{150}), image.Point{}, draw.Src) // the table
	sheet := image.Rect(60, 60, 500, 210)
	draw.Draw(img, sheet, image.NewUniform(color.Gray{242}), image.Point{}, draw.Src)
	for y := range 130 {
		for x := range 420 {
			v := min(img.GrayAt(x+70, y+70).Y, text.img.GrayAt(x, y).Y)
			img.SetGray(x+70, y+70, color.Gray{v})
		}
	}
	k := NormalizePage(noisy(img, 8, 1))
	require.True(t, k.Inverted, "test is wrong: the table is not the page's paper")
	require.Greater(t, noiseLevel(k.Pix, k.Rect.Dx(), k.Rect.Dy()), 0.04, "test is wrong: the page is not grainy")
	checkOnePanelsLines(t, k, "the sheet", text.lines, image.Pt(70, 70), marginFor(14))
}

// checkOnePanelsLines requires LocatePage to find one panel in k (what, for the messages),
// every line on it, and the lines' boxes to be want moved by at (checkBoxes, IoU only).
func checkOnePanelsLines(t *testing.T, k *Ink, what string, want []image.Rectangle, at image.Point, margin int) {
	t.Helper()
	lines, panels := LocatePage(k, nil)
	require.Len(t, panels, 1, what)
	var got, moved []image.Rectangle
	for _, l := range lines {
		got = append(got, l.Box)
		assert.Equal(t, panels[0], l.Panel, "line %v lies on %s", l.Box, what)
	}
	for _, l := range want {
		moved = append(moved, l.Add(at))
	}
	checkBoxes(t, got, moved, margin, false)
}

// Noise does not make panels: paragraphs of small and large print under Gaussian noise up to
// the training data's heaviest (σ 60 grey levels) hold none.
func TestPanelsAreNotMadeOfNoise(t *testing.T) {
	for _, size := range []float64{10, 24, 40} {
		text := textPage(t, paragraph[:5], size, 1.3*size, 30, 30, 1400, int(8*size)+60)
		for _, sigma := range []float64{15, 30, 60} {
			k := NormalizePage(noisy(text.img, sigma, uint64(size)))
			assert.Empty(t, Panels(k), "%g px, σ %g", size, sigma)
		}
	}
}

// A word blurred into a blob of ink (its letters run together, the gaps between them left as
// slits to its sides) is as wide as a button and as full, but its "text" reaches its sides:
// it is no panel, and LocatePage keeps it a line of the page. A button's text keeps a margin.
func TestLocatePageTakesABlobForTextNotAPanel(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 300, 120))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	blob := image.Rect(20, 20, 60, 34)
	draw.Draw(img, blob, image.Black, image.Point{}, draw.Src)
	for _, x := range []int{22, 30, 41, 50, 57} { // the gaps between its letters
		draw.Draw(img, image.Rect(x, 24, x+1, 30), image.White, image.Point{}, draw.Src)
	}
	button := image.Rect(20, 60, 160, 94)
	draw.Draw(img, button, image.Black, image.Point{}, draw.Src)
	label := textPage(t, []string{"Save"}, 16, 0, 0, 0, 60, 24)
	for y := range 24 {
		for x := range 60 {
			if v := label.img.GrayAt(x, y).Y; v < 255 {
				img.SetGray(x+60, y+65, color.Gray{255 - v})
			}
		}
	}
	k := NormalizePage(img)
	require.Len(t, Panels(k), 2, "test is wrong: the blob and the button are not both solid areas")
	lines, panels := LocatePage(k, nil)
	require.Equal(t, []image.Rectangle{button}, panels)
	onButton := 0
	for _, l := range lines {
		if l.Box.Overlaps(blob) {
			assert.True(t, l.Panel.Empty(), "line %v of the blob lies on a panel", l.Box)
		} else {
			assert.Equal(t, button, l.Panel, "line %v", l.Box)
			onButton++
		}
	}
	assert.Equal(t, 1, onButton, "the button's label")
	assert.Greater(t, len(lines), onButton, "the blob is read as the page's")
}

// A chat bubble photographed at a slant: a dark rounded card whose edges lean by a pixel every
// 40 columns, its light text in two lines, the whole picture blurred. What lies around the
// card in its box joins into a ring (the slanted top and bottom wedges and the rounded
// corners), and its blurred edge is a band of part-coloured pixels; neither is read as a line
// of the card's (once, each edge read as a line of dashes and underscores).
func TestLocatePageLeavesASlantedCardsEdgesOut(t *testing.T) {
	text := textPage(t, paragraph[:2], 14, 22, 0, 0, 300, 44)
	img := image.NewGray(image.Rect(0, 0, 400, 150))
	draw.Draw(img, img.Rect, image.NewUniform(color.Gray{232}), image.Point{}, draw.Src)
	const r = 10 // the corners' radius
	for x := 40; x < 360; x++ {
		top, bottom := 30+(x-40)/40, 100+(x-40)/40
		for y := top; y < bottom; y++ {
			dx := max(40+r-x, x-(359-r), 0)
			dy := max(top+r-y, y-(bottom-1-r), 0)
			if dx*dx+dy*dy > r*r {
				continue // outside a rounded corner
			}
			v := uint8(70)
			if tx, ty := x-50, y-45; tx >= 0 && tx < 300 && ty >= 0 && ty < 44 {
				v = max(v, 255-text.img.GrayAt(tx, ty).Y)
			}
			img.SetGray(x, y, color.Gray{v})
		}
	}
	for range 2 {
		img = boxBlur(img)
	}
	checkOnePanelsLines(t, NormalizePage(img), "the card", text.lines, image.Pt(50, 45), marginFor(14)+2)
}

// boxBlur is g blurred by a 3×3 mean (edges clamped).
func boxBlur(g *image.Gray) *image.Gray {
	out := image.NewGray(g.Rect)
	b := g.Rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			s := 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					s += int(g.GrayAt(min(max(x+dx, b.Min.X), b.Max.X-1), min(max(y+dy, b.Min.Y), b.Max.Y-1)).Y)
				}
			}
			out.SetGray(x, y, color.Gray{uint8((s + 4) / 9)})
		}
	}
	return out
}

// A page shown in a viewer: a white sheet in a dark grey surround that is most of the
// picture's edge but little of its area. The surround is a frame (withoutFrame), not ink: it
// once filled every row, and the page read as one line.
func TestLocatePageReadsAPageInsideADarkFrame(t *testing.T) {
	text := textPage(t, paragraph[:3], 14, 22, 0, 0, 360, 70)
	img := image.NewGray(image.Rect(0, 0, 460, 160))
	draw.Draw(img, img.Rect, image.NewUniform(color.Gray{80}), image.Point{}, draw.Src)
	sheet := image.Rect(10, 10, 450, 150)
	draw.Draw(img, sheet, image.White, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(50, 45, 410, 115), text.img, image.Point{}, draw.Src)
	k := NormalizePage(img)
	require.False(t, k.Inverted, "test is wrong: the sheet is not the page's paper")
	require.Greater(t, k.At(5, 5), float32(0.5), "test is wrong: the frame is not solid ink")
	lines, panels := LocatePage(k, nil)
	assert.Empty(t, panels)
	var got, want []image.Rectangle
	for _, l := range lines {
		got = append(got, l.Box)
	}
	for _, l := range text.lines {
		want = append(want, l.Add(image.Pt(50, 45)))
	}
	checkBoxes(t, got, want, marginFor(14), true)
}
