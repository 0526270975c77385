package ocrimage

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gridPage is a 420×190 table as a web page draws it: three columns of 14-px text in four rows,
// ruled by one-pixel grey lines (grey 170 of 255) that fall between two pixel rows or
// columns, so each is two lines sharing its darkness, and no pixel of them is solid ink. It
// returns the page, each row's text ink box, and the rules' rows and columns.
func gridPage(t *testing.T) (img *image.Gray, rows []image.Rectangle, ruleRows, ruleCols []int) {
	t.Helper()
	cells := [][]string{{"Flight", "From", "Status"}, {"SK1766", "HEL", "Boarding"}, {"TP1937", "LIS", "Delayed"}, {"KL675", "OSL", "On time"}}
	ruleCols = []int{10, 140, 250, 409}
	ruleRows = []int{10, 52, 94, 136, 178}
	img = image.NewGray(image.Rect(0, 0, 420, 190))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	for r, row := range cells {
		var box image.Rectangle
		for c, s := range row {
			text := textPage(t, []string{s}, 14, 0, 0, 0, 120, 30)
			at := image.Pt(ruleCols[c]+12, ruleRows[r]+6)
			draw.Draw(img, text.img.Rect.Add(at), text.img, image.Point{}, draw.Src)
			box = box.Union(text.lines[0].Add(at))
		}
		rows = append(rows, box)
	}
	share := func(x, y int, f float64) { // f of the line's darkness falls on pixel (x, y)
		v := img.GrayAt(x, y).Y
		img.SetGray(x, y, color.Gray{min(v, uint8(255-f*(255-170)))})
	}
	for _, y := range ruleRows { // a quarter of a pixel down
		for x := ruleCols[0]; x <= ruleCols[len(ruleCols)-1]+1; x++ {
			share(x, y, 0.25)
			share(x, y+1, 0.75)
		}
	}
	for _, x := range ruleCols { // half a pixel across
		for y := ruleRows[0]; y <= ruleRows[len(ruleRows)-1]+1; y++ {
			share(x, y, 0.5)
			share(x+1, y, 0.5)
		}
	}
	return img, rows, ruleRows, ruleCols
}

// A table ruled by thin grey lines: its vertical rules are erased and its horizontal rules
// left out, so each row is one line whose crop holds the row's text and nothing of the grid.
// Before, the vertical rules, crossing every row, ran the rows and rules together into bands
// read as garbage ("9 . 4 . 4 . 4 … sindistindist"), and those rules that were lines of their
// own were read as rows of underscores.
func TestLocatePageReadsATableRuledByThinGreyLines(t *testing.T) {
	img, rows, ruleRows, ruleCols := gridPage(t)
	k := NormalizePage(img)
	require.False(t, k.Blank)
	for _, x := range ruleCols {
		require.LessOrEqual(t, k.At(x, 30), float32(0.5), "test is wrong: the rules are solid")
	}
	lines, _ := LocatePage(k, nil)
	var got []image.Rectangle
	for _, l := range lines {
		got = append(got, l.Box)
		for _, x := range ruleCols { // the line is cut from ink without the grid
			for y := l.Box.Min.Y; y < l.Box.Max.Y; y++ {
				require.Zero(t, l.Ink.At(x, y)+l.Ink.At(x+1, y), "line %v: ink of the rule at x = %d", l.Box, x)
			}
		}
	}
	checkBoxes(t, got, rows, marginFor(14), false)

	rest := WithoutVerticalRules(k)
	for _, x := range ruleCols {
		for y := ruleRows[0] + 3; y < ruleRows[len(ruleRows)-1]; y++ {
			if !slices.Contains(ruleRows, y) && !slices.Contains(ruleRows, y-1) {
				require.Zero(t, rest.At(x, y), "(%d, %d) on a vertical rule", x, y)
				require.Zero(t, rest.At(x+1, y), "(%d, %d) on a vertical rule", x+1, y)
			}
		}
	}
	for _, r := range rows { // the text keeps all its ink
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				if slices.Contains(ruleCols, x) || slices.Contains(ruleCols, x-1) {
					continue
				}
				require.Equal(t, k.At(x, y), rest.At(x, y), "(%d, %d) in a row's text", x, y)
			}
		}
	}
	assert.Greater(t, k.At(ruleCols[1], 30), float32(0), "WithoutVerticalRules works on a copy")
}

// Not vertical rules: a paragraph's glyphs (even a tall bar '|', under 15 times as long as
// wide), a solid square, a thick bar six pixels wide, and a large heading's letters.
func TestWithoutVerticalRulesLeavesGlyphsAndBlocksAlone(t *testing.T) {
	text := textPage(t, append([]string{"| l I 1 |"}, paragraph[:3]...), 40, 52, 20, 10, 900, 240)
	img := text.img
	draw.Draw(img, image.Rect(800, 20, 840, 60), image.Black, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(860, 20, 866, 220), image.Black, image.Point{}, draw.Src)
	k := NormalizePage(img)
	assert.Same(t, k, WithoutVerticalRules(k))

	// A heading's tall letters, three times the body's size, several of its strokes tall
	// but close to their neighbours.
	head := textPage(t, []string{"Hello Illinois, little hills"}, 44, 0, 20, 10, 900, 70)
	body := textPage(t, paragraph[:4], 13, 18, 20, 10, 900, 90)
	img = image.NewGray(image.Rect(0, 0, 900, 160))
	draw.Draw(img, image.Rect(0, 0, 900, 70), head.img, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(0, 70, 900, 160), body.img, image.Point{}, draw.Src)
	k = NormalizePage(img)
	assert.Same(t, k, WithoutVerticalRules(k), "a heading's letters")

	// A large serif heading's 'l' (65 px: more than rulesStems times the page's median stroke)
	// stands apart from its neighbours: its stem, 3 px of black
	// and a part-covered pixel either side, holds more ink than a coloured bar (maxRuleMass).
	draw.Draw(img, image.Rect(800, 3, 801, 68), image.NewUniform(color.Gray{115}), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(801, 3, 804, 68), image.Black, image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(804, 3, 805, 68), image.NewUniform(color.Gray{115}), image.Point{}, draw.Src)
	k = NormalizePage(img)
	assert.Same(t, k, WithoutVerticalRules(k), "a heading's stem")
}

// Horizontal rules drawn thin and grey, or between two pixel rows, are rules; a row of dashes,
// a line of text and a short bar are not.
func TestRuleFindsThinGreyRules(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 400, 200))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	bar := func(y int, levels ...uint8) image.Rectangle {
		for i, v := range levels {
			draw.Draw(img, image.Rect(20, y+i, 380, y+i+1), image.NewUniform(color.Gray{v}), image.Point{}, draw.Src)
		}
		return image.Rect(20, y, 380, y+len(levels))
	}
	dark := bar(10, 0)          // solid, a pixel
	quarter := bar(20, 200, 40) // a dark pixel line, a quarter of a pixel down
	halves := bar(30, 128, 128) // a mid-grey line between two rows: no solid pixel
	grey := bar(40, 160, 160)   // two rows of light grey
	// A table's grey row rule, crossed by its darker column rules (a column each, more than
	// twice the rule's ink): the crossings carry it on.
	crossed := bar(64, 210, 120)
	for _, x := range []int{20, 100, 230, 379} {
		draw.Draw(img, image.Rect(x, 60, x+1, 70), image.Black, image.Point{}, draw.Src)
	}
	short := image.Rect(20, 50, 45, 51)
	draw.Draw(img, short, image.Black, image.Point{}, draw.Src)
	dashes := textPage(t, []string{"-------------------------", "A line of text, not a rule."}, 16, 40, 20, 0, 400, 100)
	draw.Draw(img, image.Rect(0, 80, 400, 180), dashes.img, image.Point{}, draw.Src)
	k := NormalizePage(img)
	for _, b := range []image.Rectangle{dark, quarter, halves, grey, crossed} {
		assert.True(t, Rule(k, b), "rule %v", b)
	}
	assert.False(t, Rule(k, short), "a short bar")
	for _, b := range dashes.lines {
		assert.False(t, Rule(k, b.Add(image.Pt(0, 80))), "line %v", b)
	}
}

// monoPage is textPage in Go Mono.
func monoPage(t *testing.T, text string, size float64) *image.Gray {
	t.Helper()
	src, err := opentype.Parse(gomono.TTF)
	require.NoError(t, err)
	f, err := opentype.NewFace(src, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	require.NoError(t, err)
	defer f.Close()
	img := image.NewGray(image.Rect(0, 0, int(size)*len(text)+40, int(2*size)+20))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: img, Src: image.Black, Face: f, Dot: fixed.P(20, int(1.5*size)+10)}
	d.DrawString(text)
	return img
}

// Rows of dashes set without spaces are counted, sharp or grainy, in a proportional and a
// monospaced face, and blurred at 20 px; blurred at 14 px their bars may run together, and
// then they are left to the model, but never miscounted. So are rows of equals signs where
// their glyphs stand apart and their two bars do. Rows with spaces, dashes and equals signs
// mixed, tildes, dots, underscores and words are not counted (but for tildes blurred flat,
// which the recognizer leaves to the model's reading).
func TestDashRowCountsDashes(t *testing.T) {
	type want struct {
		glyph byte
		n     int
	}
	rows := map[string]want{
		strings.Repeat("-", 26): {'-', 26},
		strings.Repeat("-", 5):  {'-', 5},
		strings.Repeat("=", 12): {'=', 12},
		"- - - - - - - - - -":   {},
		"=-=-=-=-=-=-=-=-":      {},
		"~~~~~~~~~~~~":          {},
		"..............":        {},
		"Name: ________":        {},
		"rn mm rn mm":           {},
	}
	for text, w := range rows {
		for _, size := range []float64{14, 20} {
			for _, mono := range []bool{false, true} {
				var img *image.Gray
				if mono {
					img = monoPage(t, text, size)
				} else {
					img = textPage(t, []string{text}, size, 0, 20, 10, int(size)*len(text)+40, int(2*size)+20).img
				}
				for _, cond := range []string{"sharp", "blurred", "grainy"} {
					g := image.NewGray(img.Rect)
					copy(g.Pix, img.Pix)
					switch cond {
					case "blurred":
						g = blurred(g, 1)
					case "grainy":
						g = noisy(g, 10, 5)
					}
					k := Normalize(g)
					boxes := SplitLines(k)
					require.NotEmpty(t, boxes)
					box := boxes[0]
					for _, b := range boxes[1:] {
						box = box.Union(b)
					}
					glyph, n, ok := DashRow(k, box)
					name := fmt.Sprintf("%q at %g px, mono %v, %s", text, size, mono, cond)
					if w.n == 0 {
						if !(text[0] == '~' && cond == "blurred") {
							assert.False(t, ok, "%s: read %d %c", name, n, glyph)
						}
						continue
					}
					if !ok && cond == "blurred" && size < 20 {
						continue
					}
					// A blur runs an equals sign's two bars into one, and the Go font's
					// equals signs touch at 14 px: those rows are the model's to read.
					if !ok && w.glyph == '=' && (cond == "blurred" || !mono && size < 20) {
						continue
					}
					if assert.True(t, ok, name) {
						assert.Equal(t, string(w.glyph), string(glyph), name)
						assert.Equal(t, w.n, n, name)
					}
				}
			}
		}
	}
}

// An agenda's event or a toast: a coloured bar 4 px wide beside a card's two lines, as tall as
// both (too short for a rule 25 times its width) but taller than any stroke of the page's
// text, the second with a column of light antialiasing beside it (5 px across), the third
// lighter and off the grid by half a pixel, the fourth only 4.7 strokes tall. It is erased,
// and the two lines are two: before, the bar ran them into one band, read as "--".
func TestLocatePageSplitsTheLinesBesideACardsBar(t *testing.T) {
	for _, size := range []float64{13, 16} {
		p := textPage(t, []string{"Board meeting at nine", "Cafe Lumen, second floor", "", "Flight to Oslo", "Gate 12, terminal B", "", "Call with the bank", "Room 4B, video", "", "Pick up the keys", "Main St 14"}, size, 1.35*size, 40, 10, 420, int(16*size))
		img := clone(p.img)
		short := 0 // the last bar's height: 4.7 of the page's strokes once the others are drawn
		for i, pair := range [][2]int{{0, 1}, {3, 4}, {6, 7}, {9, 10}} {
			a, b := p.lines[pair[0]], p.lines[pair[1]]
			rows := func(x0, x1 int) image.Rectangle { return image.Rect(x0, a.Min.Y-3, x1, b.Max.Y+3) }
			switch i {
			case 0:
				draw.Draw(img, rows(28, 32), image.NewUniform(color.Gray{70}), image.Point{}, draw.Src)
			case 1: // drawn off the pixel grid: a column of light antialiasing beside it
				draw.Draw(img, rows(28, 32), image.NewUniform(color.Gray{70}), image.Point{}, draw.Src)
				draw.Draw(img, rows(27, 28), image.NewUniform(color.Gray{205}), image.Point{}, draw.Src)
			case 2: // a lighter colour, off the grid by half a pixel: 5 px across
				draw.Draw(img, rows(27, 28), image.NewUniform(color.Gray{150}), image.Point{}, draw.Src)
				draw.Draw(img, rows(28, 31), image.NewUniform(color.Gray{50}), image.Point{}, draw.Src)
				draw.Draw(img, rows(31, 32), image.NewUniform(color.Gray{150}), image.Point{}, draw.Src)
			case 3: // shorter: 4.7 of the text's strokes, across the gap between the lines
				short = int(math.Ceil(4.7 * float64(medianRun(NormalizePage(img).Pix, 420, int(16*size)))))
				mid := (a.Max.Y + b.Min.Y) / 2
				draw.Draw(img, image.Rect(28, mid-short/2, 32, mid-short/2+short), image.NewUniform(color.Gray{70}), image.Point{}, draw.Src)
			}
		}
		k := NormalizePage(img)
		stroke := float64(medianRun(k.Pix, 420, int(16*size)))
		require.True(t, float64(short) >= 4.5*stroke && float64(short) < 5*stroke, "test is wrong: the short bar is %d px, the stroke %g", short, stroke)
		lines, _ := LocatePage(k, nil)
		var got, want []image.Rectangle
		for _, l := range lines {
			got = append(got, l.Box)
		}
		for i, l := range p.lines {
			if i%3 != 2 {
				want = append(want, l)
			}
		}
		checkBoxes(t, got, want, marginFor(size), true)
	}
}
