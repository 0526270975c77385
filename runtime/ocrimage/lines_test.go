package ocrimage

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// paragraph is the text the multi-line tests render: lines of different lengths, with i/j dots,
// descenders, capitals, digits and punctuation.
var paragraph = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Pack my box with five dozen liquor jugs, 1234;",
	"jiggling jigsaw (just a quip): ij ji ii jj",
	"Short line.",
	"Sphinx of black quartz, judge my vow! 567890",
}

// Boxes must match the true ink boxes (pixels at least half ink), widened left and right by
// the margin SplitLines adds (S/4, about 0.18 em), with IoU ≥ boxIoU: a row more or less at the
// top or bottom (antialiasing, JPEG ringing) and the margin's rounding are what the tolerance
// is for. Noisy pages are blurred 3×3 before lines are measured, which moves a box's edges by
// up to a row, a fifth of a 10-px blob line: noisyIoU there. On clean images every inked pixel
// of a line must also lie inside its box.
const (
	boxIoU   = 0.85
	noisyIoU = 0.8
)

func checkBoxes(t *testing.T, got, want []image.Rectangle, margin int, contain bool) {
	t.Helper()
	checkBoxesIoU(t, got, want, margin, contain, boxIoU)
}

func checkBoxesIoU(t *testing.T, got, want []image.Rectangle, margin int, contain bool, boxIoU float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d lines %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		wide := image.Rect(want[i].Min.X-margin, want[i].Min.Y, want[i].Max.X+margin, want[i].Max.Y)
		if v := iou(got[i], wide); v < boxIoU {
			t.Errorf("line %d: box %v, true ink box %v widened by %d: IoU %.3f < %.2f", i, got[i], want[i], margin, v, boxIoU)
		}
		if contain && !want[i].In(got[i]) {
			t.Errorf("line %d: box %v does not hold all the ink %v", i, got[i], want[i])
		}
	}
}

func TestSplitLinesFindsEachLineOfAParagraph(t *testing.T) {
	for _, c := range []struct {
		size, pitch float64
	}{
		{12, 18}, {16, 22}, {20, 30}, {28, 36}, {40, 60},
	} {
		t.Run(fmt.Sprintf("size %v pitch %v", c.size, c.pitch), func(t *testing.T) {
			w := int(c.size * 25)
			h := int(c.pitch*float64(len(paragraph)) + 2*c.size)
			p := textPage(t, paragraph, c.size, c.pitch, int(c.size), int(c.size/2), w, h)
			got := SplitLines(Normalize(p.img))
			checkBoxes(t, got, p.lines, marginFor(c.size), true)
		})
	}
}

// A heading over body text: two sizes on one page, with S measured mostly on the body.
func TestSplitLinesOnAHeadingAndBody(t *testing.T) {
	head := textPage(t, []string{"Chapter 7: Quarterly Results"}, 40, 0, 20, 10, 700, 260)
	body := textPage(t, paragraph[:4], 16, 24, 20, 80, 700, 260)
	img := clone(head.img)
	for i, v := range body.img.Pix {
		img.Pix[i] = min(img.Pix[i], v)
	}
	want := append([]image.Rectangle{head.lines[0]}, body.lines...)
	got := SplitLines(Normalize(img))
	if len(got) != len(want) {
		t.Fatalf("%d lines %v, want %d %v", len(got), got, len(want), want)
	}
	checkBoxes(t, got[:1], want[:1], marginFor(16), true) // S comes from the body text
	checkBoxes(t, got[1:], want[1:], marginFor(16), true)
}

// With leading at or below the font's height (Go Regular's ascenders and descenders span
// 0.95 em), descenders of one line touch the ascenders of the next: no blank row separates
// them, and the split must come from the profile's minima.
func TestSplitLinesSeparatesTouchingLines(t *testing.T) {
	for _, pitch := range []float64{18.5, 19, 20} {
		t.Run(fmt.Sprintf("size 20 pitch %v", pitch), func(t *testing.T) {
			text := []string{
				"gjpqy typography gyp jqy gjpqy typography",
				"Hdbkl THE BLACK FLAG kdbhl Hdbkl THE BLACK",
				"gjpqy typography gyp jqy gjpqy typography",
				"Hdbkl THE BLACK FLAG kdbhl Hdbkl THE BLACK",
			}
			p := textPage(t, text, 20, pitch, 10, 5, 480, int(pitch*4)+25)
			touching := 0
			for i := 1; i < len(p.lines); i++ {
				if p.lines[i].Min.Y <= p.lines[i-1].Max.Y {
					touching++
				}
			}
			if touching == 0 && pitch < 19.5 {
				t.Fatalf("test is wrong: no lines touch at pitch %v: %v", pitch, p.lines)
			}
			got := SplitLines(Normalize(p.img))
			if len(got) != len(p.lines) {
				t.Fatalf("%d lines %v, want %d %v", len(got), got, len(p.lines), p.lines)
			}
			for i := range got {
				// Touching lines share rows, so a box can hold only part of them: check the
				// overlap and that each box's centre lies in its own line.
				if v := iou(got[i], p.lines[i]); v < 0.7 {
					t.Errorf("line %d: box %v, ink %v: IoU %.3f < 0.7", i, got[i], p.lines[i], v)
				}
			}
		})
	}
}

// Text set solid (a line pitch of 1 em; Go Regular's ascenders and descenders span 0.95 em):
// rows between lines keep only the descenders and ascenders that meet there. A short line
// ("Short line.") beside long ones makes a low hump in the profile, and a line full of
// descenders ("jiggling jigsaw") a shallow valley under it; each line must still be its own.
// Before the split took nearly blank rows and the nearest humps, sizes 16, 20 and 28 gave
// four lines.
func TestSplitLinesSeparatesLinesSetSolid(t *testing.T) {
	for _, size := range []float64{13, 16, 20, 28} {
		t.Run(fmt.Sprintf("size %v", size), func(t *testing.T) {
			p := textPage(t, paragraph, size, size, int(size), int(size/2), int(size*25), int(size*float64(len(paragraph)+2)))
			got := SplitLines(Normalize(p.img))
			if len(got) != len(p.lines) {
				t.Fatalf("%d lines %v, want %d %v", len(got), got, len(p.lines), p.lines)
			}
			for i, b := range got {
				// Lines share rows: each box must hold its own line's middle row and no other's.
				for j, l := range p.lines {
					mid := (l.Min.Y + l.Max.Y) / 2
					if in := mid >= b.Min.Y && mid < b.Max.Y; in != (i == j) {
						t.Errorf("box %d %v: holds the middle row %d of line %d (%v): %v", i, b, mid, j, l, in)
					}
				}
			}
		})
	}
}

// Solid shapes beside a page's text are not text (SplitPage): a square two lines tall (an
// icon, an avatar) beside the first two lines, a bar of colour under the paragraph and a
// table's vertical border left of it must neither merge lines nor widen their boxes. Before
// the stem height left such runs out, the square's and the border's columns passed for the
// page's tallest stems: the first two lines came out as one box, and every box reached over
// to the border (as SplitLines, for a crop of one line, still does).
func TestSplitPageLeavesIconsBarsAndBordersOut(t *testing.T) {
	for _, size := range []float64{14, 20} {
		t.Run(fmt.Sprintf("size %v", size), func(t *testing.T) {
			pitch := 1.4 * size
			w, h := int(size*30), int(pitch*float64(len(paragraph))+5*size)
			p := textPage(t, paragraph, size, pitch, int(2*size), int(size), w, h)
			img := clone(p.img)
			dark := image.NewUniform(color.Gray{40})
			icon := image.Rect(w-int(3*size), int(size), w-int(size), int(3*size))
			bar := image.Rect(0, h-int(2*size), w, h-int(size/2))
			border := image.Rect(int(size/2), 0, int(size/2)+1, h-int(2.5*size))
			for _, r := range []image.Rectangle{icon, bar, border} {
				draw.Draw(img, r, dark, image.Point{}, draw.Src)
			}
			k := Normalize(img)
			got := SplitPage(k)
			// The bar is a line of its own (a rule, which the reader leaves out); the text
			// lines must be exactly the paragraph's.
			if len(got) > 0 && got[len(got)-1].Min.Y >= bar.Min.Y-2 {
				got = got[:len(got)-1]
			}
			checkBoxes(t, got, p.lines, marginFor(size), true)
			_, _, stem, _ := profileAndStem(Normalize(p.img).Pix, w, h, 0.15, 0.5, true)
			_, _, withShapes, blocks := profileAndStem(k.Pix, w, h, 0.15, 0.5, true)
			assert.InDelta(t, stem, withShapes, 1, "stem height with the shapes (without them %d)", stem)
			assert.NotEmpty(t, blocks)
		})
	}
}

// Avatars drawn as rings (a rounded square with a square cut out, 2.5 line pitches tall)
// beside a name and a line under it: the rings are not text, and each name and line is a box
// of its own, without the ring. withoutBlocks takes a ring's walls for strokes; before the
// rings were left out, each ring ran its two lines into one box, read "pullg Owen Price".
// The large letters of a heading, close together, stay.
func TestSplitPageLeavesRingIconsOut(t *testing.T) {
	for _, size := range []float64{13, 18} {
		t.Run(fmt.Sprintf("size %v", size), func(t *testing.T) {
			pitch := 1.4 * size
			text := []string{"Owen Price", "The harbor lights came on one by one.", "", "Elena Petrova", "For help, reply with your reference."}
			side := int(2.5 * pitch)
			left := int(size/2) + side + side/2 // the names stand half a ring's width off
			w, h := int(size*30), int(pitch*float64(len(text))+4*size)
			p := textPage(t, text, size, pitch, left, int(size), w, h)
			img := clone(p.img)
			for _, top := range []int{p.lines[0].Min.Y - 2, p.lines[3].Min.Y - 2} {
				ring := image.Rect(int(size/2), top, int(size/2)+side, top+side)
				draw.Draw(img, ring, image.NewUniform(color.Gray{60}), image.Point{}, draw.Src)
				draw.Draw(img, ring.Inset(side/3), image.White, image.Point{}, draw.Src)
			}
			checkBoxes(t, SplitPage(Normalize(img)), textLines(p, text), marginFor(size), true)
		})
	}
	heading := textPage(t, []string{"BOOM DOOM"}, 72, 0, 20, 10, 520, 110)
	k := Normalize(heading.img)
	checkBoxes(t, SplitPage(k), heading.lines, marginFor(72), true)
}

// A settings page's toggle switch beside a row's title and description: a dark pill, twice as
// wide as tall and taller than two stems, with its round light knob cut out of it. Its own
// pixels cover under iconFill of its box; with the knob, its hole, more: it is an icon. Left
// in, it joined the two lines into one band.
func TestSplitPageLeavesToggleSwitchesOut(t *testing.T) {
	for _, size := range []float64{13, 16} {
		t.Run(fmt.Sprintf("size %v", size), func(t *testing.T) {
			pitch := 1.45 * size
			text := []string{"Push notifications", "Alerts for new messages and mentions", "", "Email digest", "A summary of activity every Monday"}
			w, h := int(size*34), int(pitch*float64(len(text))+3*size)
			p := textPage(t, text, size, pitch, int(size), int(size), w, h)
			img := clone(p.img)
			r := int(size) // the pill's half height
			for _, row := range [][2]int{{0, 1}, {3, 4}} {
				a, b := p.lines[row[0]], p.lines[row[1]]
				x0, y0 := w-5*r, (a.Min.Y+b.Max.Y)/2-r
				dark, long := 0, r*8/5 // the straight part between the round ends
				for y := range 2 * r {
					for x := range 2*r + long {
						// Antialiased: the ink is how far inside the pill and outside the knob
						// (radius r−2.5, at the right end) the pixel's centre is, up to a pixel.
						px, py := float64(x)+0.5, float64(y)+0.5
						ex := max(float64(r)-px, px-float64(r+long), 0) // past the straight part
						inPill := float64(r) - math.Hypot(ex, py-float64(r))
						outKnob := math.Hypot(px-float64(r+long), py-float64(r)) - (float64(r) - 2.5)
						v := min(max(min(inPill, outKnob), 0), 1)
						img.SetGray(x0+x, y0+y, color.Gray{uint8(255 - math.Round(205*v))})
						if 205*v > 128 {
							dark++
						}
					}
				}
				require.Less(t, float64(dark), iconFill*float64(2*r*(2*r+long)), "test is wrong: the pill covers iconFill of its box")
			}
			checkBoxes(t, SplitPage(NormalizePage(img)), textLines(p, text), marginFor(size), true)
		})
	}
}

// A long line of EB Garamond set tight over a short one (testdata/tight-short-line.png, a
// heading, then "Your trial of Lumora Studio … shipped" and "abroad."): the valley between
// them is flat, its lowest row crossed by the b and d of "abroad." and the row beside it
// clear. Taking only the lowest row, the two lines were one box, read as a row of dashes.
func TestSplitPageSplitsAtAFlatValley(t *testing.T) {
	img, err := Load(filepath.Join("testdata", "tight-short-line.png"))
	require.NoError(t, err)
	k := NormalizePage(Gray(img))
	got := SplitPage(k)
	require.Len(t, got, 3, "lines %v", got)
	assert.Less(t, got[1].Max.Y, got[2].Min.Y+3, "the long line and the short one overlap: %v %v", got[1], got[2])
	assert.Less(t, got[2].Dx(), got[1].Dx()/5, "the short line's box %v", got[2])
}

// A form (testdata/form.png: labels, filled fields outlined in grey, a purple button): its
// bold "City" label, a short line alone, is a line of its own. The button is a panel; erased,
// it leaves a soft rim of two rows of half ink, far from every line. The blank rows' noise
// floor was their mean plus four deviations, which the rim lifted above the label's whole
// profile (from 0.25 to 11): the label was lost, and every line's box lost its faint rows.
func TestLocatePageKeepsAShortLabelBesideAnErasedButtonsRim(t *testing.T) {
	img, err := Load(filepath.Join("testdata", "form.png"))
	require.NoError(t, err)
	k, _ := LevelPage(NormalizePage(Flatten(Gray(img))))
	lines, panels := LocatePage(k, nil)
	require.Len(t, panels, 1, "the button")
	city := image.Rect(40, 236, 68, 250) // the label's ink
	var found []image.Rectangle
	for _, l := range lines {
		if l.Box.Overlaps(city) {
			found = append(found, l.Box)
		}
	}
	require.Len(t, found, 1, "lines %v", found)
	assert.Greater(t, iou(found[0], city), 0.5, "the label's box %v", found[0])
}

// The same form's e-mail field holds a placeholder in light grey ("maria.lopez@example.com"),
// no pixel of it solid on a page whose darkest text sets the ink's scale: a faint line, found
// at half its own inkiest pixel. The fields' faint borders and fills, which hold no strokes of
// text, are not lines. Before, the placeholder was lost.
func TestLocatePageFindsAFaintPlaceholder(t *testing.T) {
	img, err := Load(filepath.Join("testdata", "form.png"))
	require.NoError(t, err)
	k, _ := LevelPage(NormalizePage(Flatten(Gray(img))))
	placeholder := image.Rect(52, 334, 217, 347) // its ink
	lines, _ := LocatePage(k, nil)
	var found []image.Rectangle
	for _, l := range lines {
		if l.Box.Overlaps(placeholder) {
			found = append(found, l.Box)
		}
		assert.GreaterOrEqual(t, l.Box.Dy(), 8, "line %v: a field's border or fill", l.Box)
	}
	require.Len(t, found, 1, "lines %v", found)
	assert.Greater(t, iou(found[0], placeholder), 0.6, "the placeholder's box %v", found[0])
	assert.Len(t, lines, 12, "the form's lines")
}

// A list of people (testdata/avatar-list.png: a pale round avatar, a bold 15-px name and a
// 13-px line about each, Lato): each name sits close over the smaller line under it, and the
// valley between their humps is lopsided, the fine profile's lowest row three or more rows
// from the coarse profile's. With the valley bound at S/5 rows, each name and its line were
// one box (5 lines instead of 8).
func TestSplitLinesSeparatesNamesFromTheSmallerLinesUnderThem(t *testing.T) {
	img, err := Load(filepath.Join("testdata", "avatar-list.png"))
	require.NoError(t, err)
	k := Normalize(Gray(img))
	for name, split := range map[string]func(*Ink) []image.Rectangle{"SplitLines": SplitLines, "SplitPage": SplitPage} {
		got := split(k)
		require.Len(t, got, 8, "%s: %v", name, got)
		for _, b := range got {
			assert.Less(t, b.Dy(), 25, "%s: box %v holds more than one line", name, b)
		}
	}
}

// A crop of one line often shows a sliver of the next: the tops of its letters, shorter than
// half a stem, close below. The sliver must not join the line (a box that tall, scaled to the
// model's height, squeezes the line): the line's box ends at its own ink.
func TestSplitLinesLeavesASliverOfTheNextLineOut(t *testing.T) {
	for _, size := range []float64{14, 20, 30} {
		t.Run(fmt.Sprint("size ", size), func(t *testing.T) {
			text := []string{"Jack Handey, The New Yorker", "Whose woods these are I think I know"}
			pitch := 1.25 * size
			full := textPage(t, text, size, pitch, 10, 4, 480, int(4*pitch)+10)
			next := full.lines[1]
			// Keep the next line's top quarter: the tops of its capitals and ascenders.
			cut := next.Min.Y + int(math.Round(0.25*float64(next.Dy())))
			img := full.img.SubImage(image.Rect(0, 0, 480, cut)).(*image.Gray)
			got := SplitLines(Normalize(img))
			require.NotEmpty(t, got)
			line := full.lines[0]
			margin := max(2, int(math.Round(0.25*size)))
			assert.LessOrEqual(t, got[0].Min.Y, line.Min.Y, "box %v, line's ink %v", got[0], line)
			assert.GreaterOrEqual(t, got[0].Max.Y, line.Max.Y, "box %v, line's ink %v", got[0], line)
			assert.LessOrEqual(t, got[0].Max.Y, line.Max.Y+margin, "box %v reaches into the sliver from row %d (line's ink %v)", got[0], next.Min.Y, line)
		})
	}
}

func TestSplitLinesGivesOneBoxForOneLine(t *testing.T) {
	for _, text := range []string{
		"Hello, world",
		"iiiiii jjjj ;;;; ....",
		"ooo eee ccc sss",
		"EEEE ==== ---- ____",
		"==========", // two bars of flat glyphs, one line (joinFlatPairs)
		"gjpqy",
		"TITLE IN CAPITALS 1984",
		"a",
	} {
		for _, size := range []float64{10, 18, 32} {
			t.Run(fmt.Sprintf("%q at %v", text, size), func(t *testing.T) {
				// Tight crop: margins of 1 px, so the line fills the image.
				loose := textPage(t, []string{text}, size, 0, 5, 5, int(size*float64(len(text)+4)), int(size*2))
				tight := loose.img.SubImage(loose.lines[0].Inset(-1)).(*image.Gray)
				for name, g := range map[string]*image.Gray{"loose": loose.img, "tight": tight} {
					got := SplitLines(Normalize(g))
					if len(got) != 1 {
						t.Fatalf("%s crop %v: %d lines %v, want 1 around %v", name, g.Rect, len(got), got, loose.lines[0])
					}
					if !loose.lines[0].In(got[0]) {
						t.Errorf("%s crop: box %v misses ink %v", name, got[0], loose.lines[0])
					}
				}
			})
		}
	}
}

// Rows of dashes at a line's spacing stay lines of their own: only flat rows as close as the
// bars of an equals sign are joined.
func TestSplitLinesKeepsSpacedRowsOfDashesApart(t *testing.T) {
	for _, size := range []float64{10, 18, 32} {
		p := textPage(t, []string{"----------", "----------", "=========="}, size, 1.4*size, 5, 5, int(size*14), int(size*5))
		got := SplitLines(Normalize(p.img))
		require.Len(t, got, 3, "size %v: %v", size, got)
	}
}

// The dots of i and j above a line with no ascenders, and a row of commas below one with no
// descenders, are separate bands of the profile; they belong to their lines.
func TestSplitLinesKeepsDotsAndCommasWithTheirLine(t *testing.T) {
	text := []string{"iii iii iii", "mmm,,, ... ,,,", "ji ij iiii", "nn ,,,, nn"}
	p := textPage(t, text, 24, 40, 10, 5, 260, 175)
	got := SplitLines(Normalize(p.img))
	checkBoxes(t, got, p.lines, marginFor(24), true)
}

// Glyph-like blobs (black rectangles) with known boxes, on several backgrounds.
func TestSplitLinesOnBlobs(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 400, 200))
	draw.Draw(img, img.Rect, image.White, image.Point{}, draw.Src)
	var want []image.Rectangle
	for i, row := range []struct{ y, h, x0, x1 int }{
		{20, 14, 30, 370}, {60, 18, 10, 200}, {110, 10, 150, 390}, {150, 24, 50, 110},
	} {
		var box image.Rectangle
		for x := row.x0; x+4 <= row.x1; x += 9 {
			// "letters": stems of the line's height, some shorter (x-height), one with a
			// descender-like tail
			top, bot := row.y, row.y+row.h
			if (x/9+i)%3 == 1 {
				top += row.h / 3
			}
			b := image.Rect(x, top, x+4, bot)
			draw.Draw(img, b, image.Black, image.Point{}, draw.Src)
			box = box.Union(b)
		}
		want = append(want, box)
	}
	for name, g := range map[string]*image.Gray{
		"clean":        img,
		"noisy":        noisy(clone(img), 60, 3),
		"inverted":     inverted(clone(img)),
		"low contrast": lowContrast(clone(img), 200, 40),
	} {
		t.Run(name, func(t *testing.T) {
			got := SplitLines(Normalize(g))
			tol := boxIoU
			if name == "noisy" {
				tol = noisyIoU
			}
			checkBoxesIoU(t, got, want, 6, name != "noisy", tol)
		})
	}
}

func TestSplitLinesUnderDegradations(t *testing.T) {
	p := textPage(t, paragraph, 18, 28, 15, 10, 480, 170)
	for name, img := range map[string]image.Image{
		"noise σ60":          noisy(clone(p.img), 60, 7),
		"noise σ30":          noisy(clone(p.img), 30, 8),
		"40 grey levels":     lowContrast(clone(p.img), 220, 40),
		"inverted (dark UI)": remap(clone(p.img), func(v float64) float64 { return 30 + (255-v)*0.8 }),
		"tinted":             tinted(p.img, color.RGBA{250, 235, 190, 255}, color.RGBA{40, 30, 120, 255}),
		"jpeg q30":           jpegged(t, p.img, 30),
		"low contrast jpeg":  jpegged(t, lowContrast(clone(p.img), 200, 40), 50),
	} {
		t.Run(name, func(t *testing.T) {
			got := SplitLines(Normalize(Gray(img)))
			tol := boxIoU
			if strings.HasPrefix(name, "noise") {
				tol = noisyIoU
			}
			checkBoxesIoU(t, got, p.lines, marginFor(18), false, tol)
		})
	}
}

func TestSplitLinesOnBlankImagesFindsNothing(t *testing.T) {
	white := image.NewGray(image.Rect(0, 0, 300, 100))
	draw.Draw(white, white.Rect, image.White, image.Point{}, draw.Src)
	grey := image.NewGray(image.Rect(0, 0, 300, 100))
	draw.Draw(grey, grey.Rect, image.NewUniform(color.Gray{128}), image.Point{}, draw.Src)
	for name, g := range map[string]*image.Gray{"white": white, "grey": grey, "1×1": image.NewGray(image.Rect(0, 0, 1, 1))} {
		if got := SplitLines(Normalize(g)); len(got) != 0 {
			t.Errorf("%s: %d lines %v, want none", name, len(got), got)
		}
	}
	if got := SplitLines(nil); got != nil {
		t.Errorf("nil ink: %v", got)
	}
}

// Boxes are in source coordinates even when the image does not start at 0,0.
func TestSplitLinesUsesSourceCoordinates(t *testing.T) {
	p := textPage(t, paragraph[:2], 16, 26, 10, 40, 400, 110)
	sub := p.img.SubImage(image.Rect(0, 30, 400, 110)).(*image.Gray)
	got := SplitLines(Normalize(sub))
	checkBoxes(t, got, p.lines, marginFor(16), true)
}

// marginFor is the left and right margin SplitLines adds for Go Regular at size px/em: S/4,
// with S the height of a stem with an ascender, 0.73 em.
// textLines is the boxes of p's lines (drawn from text) that are not blank.
func textLines(p page, text []string) []image.Rectangle {
	var out []image.Rectangle
	for i, l := range p.lines {
		if text[i] != "" {
			out = append(out, l)
		}
	}
	return out
}

func marginFor(size float64) int { return max(2, int(math.Round(0.73*size/4))) }

func clone(g *image.Gray) *image.Gray {
	c := *g
	c.Pix = append([]uint8(nil), g.Pix...)
	return &c
}

func TestPercentileMatchesSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n < 300; n += 7 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(rng.IntN(20)) // many ties
		}
		sorted := slices.Clone(v)
		slices.Sort(sorted)
		for _, q := range []float64{0, 0.05, 0.1, 0.5, 0.9, 1} {
			want := sorted[min(n-1, int(q*float64(n)))]
			if got := percentile(v, q); got != want {
				t.Fatalf("n %d q %v: %v, want %v", n, q, got, want)
			}
		}
	}
}

// Single lines of light fonts whose profile has two peaks, the x-height's top and the
// baseline (Courier Prime at 13 and 17 px, Cantarell Regular and Light), rendered by
// `moegpu ocr --write-eval` (testdata/oneline). They were split into an upper and a lower
// band, and the tallest band, read alone, gave garbage.
func TestSplitLinesKeepsALightFontsLineWhole(t *testing.T) {
	files, err := filepath.Glob("testdata/oneline/*.png")
	require.NoError(t, err)
	require.Len(t, files, 4)
	for _, f := range files {
		img, err := Load(f)
		require.NoError(t, err)
		ink := Normalize(Gray(img))
		got := SplitLines(ink)
		require.NotEmpty(t, got, f)
		// The tallest box reaches the line's topmost and bottommost solid ink: the longest run
		// of rows holding solid ink (0055.png also shows, below a blank gap, the tops of the
		// next line's letters: a sliver that is a line of its own, not part of this one).
		top, bot, runTop := -1, -1, -1
		w := ink.Rect.Dx()
		for y := 0; y <= ink.Rect.Dy(); y++ {
			solid := false
			for _, v := range ink.Pix[min(y, ink.Rect.Dy()-1)*w:][:w] {
				solid = solid || (v > 0.5 && y < ink.Rect.Dy())
			}
			switch {
			case solid && runTop < 0:
				runTop = y
			case !solid && runTop >= 0:
				if y-runTop > bot-top {
					top, bot = runTop, y
				}
				runTop = -1
			}
		}
		box := got[0]
		for _, b := range got[1:] {
			if b.Dy() > box.Dy() {
				box = b
			}
		}
		assert.LessOrEqual(t, box.Min.Y, top, f)
		assert.GreaterOrEqual(t, box.Max.Y, bot, f)
	}
}
