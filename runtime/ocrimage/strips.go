package ocrimage

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
)

// Defaults and bounds of the model's line tensor, in pixels (runtime/config.ImageConfig's
// image_height and max_image_width).
const (
	DefaultHeight   = 32
	DefaultMaxWidth = 256
	MaxHeight       = 4096    // largest height LineStrips and Prepare accept
	MaxStripWidth   = 1 << 16 // largest maxWidth LineStrips and Prepare accept

	maxLineValues = 1 << 26 // most float32 values LineStrips scales one line to
)

// Segment is one piece of a text line, scaled to the model's height: Pix holds len(Pix)/Width
// rows (the height asked for) of Width float32 values, row-major, in [0,1], 1 = ink. Box is
// the part of the source image it shows, in source pixels: the line's box widened by the
// vertical margin (clipped to the image) and narrowed to this piece's columns (for a sloping
// line that LineStrips shears level, the sloping box it was sheared from).
type Segment struct {
	Box   image.Rectangle
	Width int
	Pix   []float32
	// Space says the piece was cut from the one before it at a word space (a gap at least
	// 0.15 × height wide); false for a line's first piece and for a cut between the letters
	// of a word too long for one piece, whose texts join without a space.
	Space bool
	// Gap is the width, in columns of Pix (the scaled line), of the blank run the cut before
	// this piece lies in: 0 for a line's first piece and for a cut through ink.
	Gap int
	// Start is the piece's first column in the whole line scaled to the model's height. Pieces
	// follow each other without overlap; each starts where the one before ends, except after a
	// blank of 2 line heights or more, which is left out (see wideGap).
	Start int
}

// Height is the number of rows of s.Pix.
func (s Segment) Height() int {
	if s.Width <= 0 {
		return 0
	}
	return len(s.Pix) / s.Width
}

// Padded returns s as a Height()×width row-major tensor, paper (0) past its own width: the
// fixed-width input the model reads (width = max_image_width). Columns past width are cut, but
// LineStrips never makes a segment wider than the maxWidth it was given.
func (s Segment) Padded(width int) []float32 {
	h := s.Height()
	out := make([]float32, h*max(width, 0))
	n := min(s.Width, width)
	for y := 0; y < h && n > 0; y++ {
		copy(out[y*width:][:n], s.Pix[y*s.Width:][:n])
	}
	return out
}

// ToGray draws s as a grey picture for debugging: ink black, paper white.
func ToGray(s Segment) *image.Gray {
	h := s.Height()
	g := image.NewGray(image.Rect(0, 0, max(s.Width, 0), h))
	for i, v := range s.Pix[:h*max(s.Width, 0)] {
		g.Pix[i] = uint8(math.Round(float64(255 * (1 - min(max(v, 0), 1)))))
	}
	return g
}

// LineStrips cuts one line (box, in source pixels, as SplitLines returns) out of k and scales
// it for the model:
//
//   - Rows: the box plus a margin of 10 % of its height (at least 1 px) above and below; past
//     the image's edge the margin is paper. The margin keeps whatever the image has there,
//     fragments of neighbouring lines included, as real crops do, except the glyphs of lines
//     above and below that reach into these rows from outside them (withoutNeighbours: in
//     text set solid, their descenders and ascenders stand beside the line's own capitals).
//   - Skew: a line at least three times as wide as tall whose text slopes by 0.5° to 3°
//     (measured by projection profiles) is first sheared level, each column moved up or down,
//     and its rows become the level line's ink rows (never more than the box's) plus the
//     margin. Columns do not move, so x positions keep their meaning; a segment's Box stays
//     the unsheared crop's.
//   - Flat lines: a row of dashes or equals signs (flatLine), whose box is only a stroke tall,
//     first gets the height of a line of text in a face of that stroke (textLineStrokes),
//     centred on its ink, and is not deskewed; scaled by its own box it would become bars
//     many times the size of any glyph in a line of text.
//   - Scale: to height rows keeping the aspect ratio (width = round(box width × scale));
//     area-averaged when shrinking, bilinear when enlarging.
//   - Width: a line wider than maxWidth is cut into pieces at most maxWidth wide, at whitespace:
//     runs of columns whose ink is within 3 % of the line's inkiest column from its floor
//     (its 10th percentile, which noise raises), other than the line's own margins. Each cut
//     goes at the emptiest column of a gap, and takes, of the gaps that fit, the one nearest
//     to the limit among the widest (at least half the widest gap that fits: word spaces
//     before letter spaces, however wide a face's letter gaps are) and cleanest (a gap
//     running past the limit may offer only its inky edge), avoiding pieces under
//     maxWidth/4, so it never passes through a glyph. Only a
//     stretch with no gap within maxWidth (a long word with touching letters) is cut at its
//     column of least ink in the second half of the allowed width.
//
// height and maxWidth of 0 mean DefaultHeight and DefaultMaxWidth. It returns nil when box
// misses k, when height is outside [1, MaxHeight] or maxWidth outside [1, MaxStripWidth], or
// when the scaled line would hold more than 2²⁶ values (a hairline thousands of pixels long
// enlarged to a tall height: 256 MB).
func LineStrips(k *Ink, box image.Rectangle, height, maxWidth int) []Segment {
	return lineStrips(k, box, height, maxWidth, wideGap, false)
}

// PageLineStrips is LineStrips for a line of a page (from SplitPage or LocatePage): it also
// cuts the line at every blank of pageWideGap, the gap between a table's or a form's columns.
func PageLineStrips(k *Ink, box image.Rectangle, height, maxWidth int) []Segment {
	return lineStrips(k, box, height, maxWidth, pageWideGap, true)
}

// Strips is LineStrips for an image read as one line (single), PageLineStrips for a line of a
// page.
func Strips(single bool) func(k *Ink, box image.Rectangle, height, maxWidth int) []Segment {
	if single {
		return LineStrips
	}
	return PageLineStrips
}

// lineStrips is LineStrips cutting at every blank of at least wide(height) columns.
func lineStrips(k *Ink, box image.Rectangle, height, maxWidth int, wide func(h int) int, stretch bool) []Segment {
	if height == 0 {
		height = DefaultHeight
	}
	if maxWidth == 0 {
		maxWidth = DefaultMaxWidth
	}
	if k == nil || height < 1 || height > MaxHeight || maxWidth < 1 || maxWidth > MaxStripWidth {
		return nil
	}
	box = box.Intersect(k.Rect)
	if box.Empty() || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return nil
	}
	t, flat := flatLine(k, box)
	if !flat {
		t, flat = barRow(k, box)
	}
	if flat {
		// A row of dashes or equals signs: its box is a stroke tall, and scaled to height rows
		// it would be magnified many times over into bars no line of text has. It gets the
		// height of a line of text in a face of that stroke, centred on its ink.
		grow := int(math.Round(textLineStrokes*t)) - box.Dy()
		box.Min.Y -= grow / 2
		box.Max.Y += grow - grow/2
	}
	m := max(1, int(math.Round(0.1*float64(box.Dy()))))
	crop := image.Rect(box.Min.X, box.Min.Y-m, box.Max.X, box.Max.Y+m)
	slope, sloped := lineSkew(k, box)
	sloped = sloped && !flat
	if !flat {
		s := 0 // rows a shear reads past the crop
		if sloped {
			s = int(math.Ceil(math.Abs(slope)*float64(box.Dx())/2)) + 1
		}
		k = withoutNeighbours(k, box, crop.Min.Y-s, crop.Max.Y+s)
	}
	src, from := k, crop // what is scaled: the crop, or the line sheared level
	if sloped {
		src = deskewed(k, box, slope)
		from = src.Rect
	}
	cw, ch := from.Dx(), from.Dy()
	scale := float64(height) / float64(ch)
	outW := max(1, int(math.Round(float64(cw)*scale)))
	if float64(outW)*float64(height) > maxLineValues {
		return nil
	}
	pix := resample(src, from, height, outW)
	if stretch {
		// A faint line of a page (its inkiest pixel under 0.6: light grey text on a page of
		// dark) gets the full range, as Normalize gives a line read alone.
		if m := slices.Max(pix); m > 0 && m < 0.6 {
			for i := range pix {
				pix[i] = min(1, pix[i]/m)
			}
		}
	}

	shown := crop.Intersect(k.Rect)
	var segs []Segment
	for _, c := range cuts(pix, outW, height, maxWidth, wide(height)) {
		x0 := box.Min.X + int(math.Floor(float64(c.start)*float64(cw)/float64(outW)))
		x1 := box.Min.X + int(math.Ceil(float64(c.end)*float64(cw)/float64(outW)))
		seg := Segment{
			Box:   image.Rect(x0, shown.Min.Y, min(x1, box.Max.X), shown.Max.Y),
			Width: c.end - c.start,
			Pix:   pix, // the whole line in one piece
			Space: c.gap >= wordGap(height),
			Gap:   c.gap,
			Start: c.start,
		}
		if seg.Width != outW {
			seg.Pix = make([]float32, height*seg.Width)
			for y := 0; y < height; y++ {
				copy(seg.Pix[y*seg.Width:][:seg.Width], pix[y*outW+c.start:][:seg.Width])
			}
		}
		segs = append(segs, seg)
	}
	return segs
}

// textLineStrokes is the height, in strokes, LineStrips gives a flat line: about the
// ascender-to-descender height of a regular face (whose em is 10–12 strokes).
const textLineStrokes = 9

// flatLine says whether the line in box is a row of flat glyphs only (dashes, equals signs,
// a rule), and gives its stroke width: the box is at most 1.25 strokes tall (strokeWidth; a
// line with any letter or digit is at least an x-height, 3.5 strokes or more, tall), and its
// ink, split at columns without solid ink, makes at least two pieces, three in four of them at
// least 1.5 times as wide as the box is tall, and its edges are sharp (nine in ten pixels with
// ink above 0.15 are above 0.5). Blurred words (blobs as tall as their strokes are wide, with
// soft edges) and a row of dots (square pieces) are not flat.
func flatLine(k *Ink, box image.Rectangle) (stroke float64, ok bool) {
	return flatGlyphs(k, box, 0.9)
}

// flatGlyphs is flatLine with the share of inked pixels that must be solid as sharp.
func flatGlyphs(k *Ink, box image.Rectangle, sharp float64) (stroke float64, ok bool) {
	box = box.Intersect(k.Rect)
	t := strokeWidth(k, box)
	h := box.Dy()
	if t == 0 || float64(h) > 1.25*t {
		return 0, false
	}
	if !sharpEdges(k, box, sharp) {
		return 0, false
	}
	runs := solidRuns(k, box)
	wide := 0
	for _, run := range runs {
		if float64(run) >= 1.5*float64(h) {
			wide++
		}
	}
	return t, len(runs) >= 2 && 4*wide >= 3*len(runs)
}

// sharpEdges says whether, of the pixels in box with ink (> 0.15), at least share (flatLine:
// nine in ten) are solid (> 0.5). Blur leaves wide soft edges, and blurred words are blobs that
// look like dashes otherwise.
func sharpEdges(k *Ink, box image.Rectangle, share float64) bool {
	kw := k.Rect.Dx()
	inked, solid := 0, 0
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for _, v := range k.Pix[(y-k.Rect.Min.Y)*kw+box.Min.X-k.Rect.Min.X:][:box.Dx()] {
			if v > 0.15 {
				inked++
			}
			if v > 0.5 {
				solid++
			}
		}
	}
	return float64(solid) >= share*float64(inked)
}

// solidRuns returns the lengths of the runs of columns of box that hold solid ink (> 0.5),
// left to right.
func solidRuns(k *Ink, box image.Rectangle) []int {
	kw := k.Rect.Dx()
	var runs []int
	run := 0
	for x := box.Min.X; x < box.Max.X; x++ {
		solidCol := false
		for y := box.Min.Y; y < box.Max.Y && !solidCol; y++ {
			solidCol = k.Pix[(y-k.Rect.Min.Y)*kw+x-k.Rect.Min.X] > 0.5
		}
		if solidCol {
			run++
		} else if run > 0 {
			runs = append(runs, run)
			run = 0
		}
	}
	if run > 0 {
		runs = append(runs, run)
	}
	return runs
}

// ruleStrokes is the shortest horizontal rule, in strokes: about four line heights of a face of
// that stroke (textLineStrokes), longer than a dash, a lone word's underline or a short row of
// touching underscores.
const ruleStrokes = 4 * textLineStrokes

// Rule says whether the line in box (as SplitLines returns it) is a horizontal rule, not
// text: one bar of solid ink at most 1.25 strokes tall (strokeWidth), with sharp edges, unbroken
// over 95 % of the box's width or more, and at least 36 strokes long (a rule of 2 pixels: 72
// pixels or longer). A line of text is 3.5 strokes tall or more; a row of dashes, dots or
// spaced underscores is broken into pieces. Such a bar scaled to a line's height is a black
// slab the model reads as a long run of invented text, so Prepare and `moegpu ocr` leave rules
// out of a page's lines. A rule drawn thin and grey, or between two pixel rows, has no solid
// ink: faintRule finds it from each column's summed ink. It is false for a box that misses k.
func Rule(k *Ink, box image.Rectangle) bool {
	if k == nil || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return false
	}
	box = box.Intersect(k.Rect)
	if box.Empty() {
		return false
	}
	if faintRule(k, box) {
		return true
	}
	t := strokeWidth(k, box)
	w, h := box.Dx(), box.Dy()
	if t == 0 || float64(h) > 1.25*t || float64(w) < ruleStrokes*t || !sharpEdges(k, box, 0.9) {
		return false
	}
	longest := 0
	for _, r := range solidRuns(k, box) {
		longest = max(longest, r)
	}
	return 20*longest >= 19*w
}

// strokeWidth is the median length of the runs of solid ink (> 0.5) in box, along rows and
// along columns, each run counted once: in text, most runs cross a stroke (a stem along a
// row, a bar or a bowl's side along a column); in a row of dashes, the many short columns
// through a dash outnumber its few long rows. It is 0 when box holds no solid ink.
func strokeWidth(k *Ink, box image.Rectangle) float64 {
	box = box.Intersect(k.Rect)
	w, h := box.Dx(), box.Dy()
	if w <= 0 || h <= 0 {
		return 0
	}
	counts := make([]int, max(w, h)+1) // counts[n]: runs of length n
	kw := k.Rect.Dx()
	at := func(x, y int) bool { return k.Pix[(y-k.Rect.Min.Y)*kw+x-k.Rect.Min.X] > 0.5 }
	col := make([]int, w) // the current vertical run of each column
	for y := box.Min.Y; y < box.Max.Y; y++ {
		run := 0
		for x := box.Min.X; x < box.Max.X; x++ {
			i := x - box.Min.X
			if at(x, y) {
				run++
				col[i]++
				continue
			}
			if run > 0 {
				counts[run]++
				run = 0
			}
			if col[i] > 0 {
				counts[col[i]]++
				col[i] = 0
			}
		}
		if run > 0 {
			counts[run]++
		}
	}
	for _, n := range col {
		if n > 0 {
			counts[n]++
		}
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	for n, c := 0, 0; ; n++ { // the median run: reached, as the counts sum to total
		if c += counts[n]; 2*c >= total {
			return float64(n)
		}
	}
}

// taps says, for each of m output samples, which source samples of a row of n make it and
// with what weights: output o is Σ w[j]·src[i[j]] for j in [start[o], start[o+1]). Shrinking
// (m < n), each output averages the exact area it covers; enlarging or keeping the size, it
// interpolates the two nearest (bilinear, centres aligned, edges clamped).
type taps struct {
	start []int32
	i     []int32
	w     []float32
	two   bool // every output has exactly two taps: start[o] = 2o
}

func makeTaps(n, m int) taps {
	t := taps{start: make([]int32, 0, m+1), i: make([]int32, 0, 2*m+n), w: make([]float32, 0, 2*m+n)}
	add := func(i int, w float32) { t.i, t.w = append(t.i, int32(i)), append(t.w, w) }
	for o := 0; o < m; o++ {
		t.start = append(t.start, int32(len(t.i)))
		if m < n {
			step := float64(n) / float64(m)
			lo, hi := float64(o)*step, float64(o+1)*step
			for i := int(lo); i < n && float64(i) < hi; i++ {
				if cover := min(hi, float64(i+1)) - max(lo, float64(i)); cover > 1e-9 {
					add(i, float32(cover/step))
				}
			}
			continue
		}
		s := (float64(o)+0.5)*float64(n)/float64(m) - 0.5
		s = min(max(s, 0), float64(n-1))
		i := int(s)
		f := s - float64(i)
		if f < 1e-9 || i+1 >= n {
			add(i, 1)
			add(i, 0) // every enlarging output has two taps, so resample can unroll them
			continue
		}
		add(i, float32(1-f))
		add(i+1, float32(f))
	}
	t.start = append(t.start, int32(len(t.i)))
	t.two = true
	for o := 0; o < m; o++ {
		if t.start[o+1]-t.start[o] != 2 {
			t.two = false
			break
		}
	}
	return t
}

// resample scales the crop of k (rows outside k are paper) to outH × outW: rows first, so
// that the column pass, which cannot run along memory, has only outH rows to do.
func resample(k *Ink, crop image.Rectangle, outH, outW int) []float32 {
	cw, ch := crop.Dx(), crop.Dy()
	kw := k.Rect.Dx()
	tmp := make([]float32, outH*cw) // outH rows × cw columns
	rows := makeTaps(ch, outH)
	for o := 0; o < outH; o++ {
		dst := tmp[o*cw:][:cw]
		for j := rows.start[o]; j < rows.start[o+1]; j++ {
			y, wt := crop.Min.Y+int(rows.i[j]), rows.w[j]
			if y < k.Rect.Min.Y || y >= k.Rect.Max.Y {
				continue // paper
			}
			src := k.Pix[(y-k.Rect.Min.Y)*kw+crop.Min.X-k.Rect.Min.X:][:cw]
			for x, v := range src {
				dst[x] += wt * v
			}
		}
	}
	out := make([]float32, outH*outW)
	cols := makeTaps(cw, outW)
	if cols.two { // enlarging: two taps a column (a lone tap has a zero partner)
		for y := 0; y < outH; y++ {
			src, dst := tmp[y*cw:][:cw], out[y*outW:][:outW]
			ci, cwt := cols.i[:2*outW], cols.w[:2*outW]
			for x := range dst {
				j := 2 * x
				v := cwt[j]*src[ci[j]] + cwt[j+1]*src[ci[j+1]]
				if v > 1 {
					v = 1 // rounding
				}
				dst[x] = v
			}
		}
		return out
	}
	for y := 0; y < outH; y++ {
		src, dst := tmp[y*cw:][:cw], out[y*outW:][:outW]
		for x := range dst {
			var s float32
			for j := cols.start[x]; j < cols.start[x+1]; j++ {
				s += cols.w[j] * src[cols.i[j]]
			}
			if s > 1 {
				s = 1 // rounding
			}
			dst[x] = s
		}
	}
	return out
}

// piece is columns [start, end) of a line; gap is the width of the blank run the cut before
// it lies in (0: none, or a cut through ink).
type piece struct {
	start, end int
	gap        int
}

// wordGap is the narrowest gap, in columns of a line scaled to h rows, that counts as a word
// space: 0.15 line heights. The gaps beside the full stops, slashes and hyphens of a URL reach
// 0.2 (the recognizer's joinSpace then reads the texts either side), but a word space before a
// slash can be under 0.18 ("at /var/log" in assets/samples): raised to 0.2, five held-out sets
// read 0.01–0.06 % CER better and that sample worse.
func wordGap(h int) int { return max(2, int(math.Round(0.15*float64(h)))) }

// blankRun is a run of blank columns [a, b) of a line.
type blankRun struct{ a, b int }

// wideGap is the narrowest gap, in columns of a line scaled to h rows, that always cuts the
// line, however short: 2 line heights, six times a wide word space. A model shown a blank that
// wide (between the columns of a receipt or a table, or two columns of text read as one line)
// fills it with invented leaders ("Coffee ---- . 2.30") and loses what follows it; read apart,
// each side reads as a line of its own. Only widely letter-spaced dot leaders and underscore
// runs of the training data's lines are that wide: on six held-out sets of 900 lines
// (`moegpu ocr --write-eval DIR --seed 1…6`) the cut changes 3 lines, all for the better
// (counts of dots and underscores); at 1.5 line heights it also split letter-spaced digits
// ("988" read "9 8"). The blanks are found by wideBlanks, which looks past light noise.
func wideGap(h int) int { return max(3, 2*h) }

// pageWideGap is wideGap on a page: 1 line height. The cells of a table and a form's label
// and field stand 1 to 2 line heights apart, and a piece holding two of them read "BCN" for
// "BCN 19:15" (the model loses what follows a blank it has not seen in training); on a page
// a word is not letter-spaced that widely, and a word space is half a line height or less.
// Measured with the shipped model on three sets of pages (140 screenshots and photographs:
// tables, forms, receipts, terminals, navigation bars), CER at 2, 1.2 and 1 line heights:
// 1.65, 1.65, 1.67 %; 5.77, 5.38, 5.26 %; 3.41, 3.10, 3.07 % (at 1, a lone "1" between two
// wide blanks of a terminal's listing reads "i"). On the six held-out line sets 1.2 costs 16
// edits (letter-spaced digits read "5 02 222 114 6", spaced dot leaders), so a line read alone
// keeps wideGap.
func pageWideGap(h int) int { return max(3, h) }

// cuts splits columns [0, w) of pix (h rows × w) into pieces at most maxWidth wide, at
// whitespace where there is any, and at every gap of at least wideGap(h) columns (see
// LineStrips).
func cuts(pix []float32, w, h, maxWidth, wide int) []piece {
	col := make([]float64, w)
	for y := 0; y < h; y++ {
		for x, v := range pix[y*w:][:w] {
			col[x] += float64(v)
		}
	}
	base, peak := percentile(col, 0.10), slices.Max(col)
	blank := base + 0.03*(peak-base)
	var gaps []blankRun
	for x := 0; x < w; {
		if col[x] > blank {
			x++
			continue
		}
		a := x
		for x < w && col[x] <= blank {
			x++
		}
		gaps = append(gaps, blankRun{a, x})
	}
	// The line's parts between wide gaps, each cut to maxWidth on its own. A wide gap's blank
	// is left out but for a margin of 0.1 line heights beside the ink on either side, about
	// what a line's own box keeps (a piece that starts with a long blank reads as garbage:
	// "Coffee 0" for "Coffee 2.50").
	var out []piece
	s, gapW := 0, 0
	m := max(1, int(math.Round(0.1*float64(h))))
	for _, g := range wideBlanks(pix, col, w, h, gaps, wide) {
		if g.a > s {
			out = widthCuts(out, col, gaps, s, g.a+m, maxWidth, gapW)
			s, gapW = g.b-m, g.b-g.a
		}
	}
	return widthCuts(out, col, gaps, s, w, maxWidth, gapW)
}

// wideBlanks finds the blanks of at least wide columns inside a line (pix its h rows × w
// columns, col their sums; gaps its blank runs by those sums, see cuts), the line's margins
// left out. A
// column is ink here when one of its pixels is solid (above 0.5) or it lies in a run of
// columns outside gaps at least h/3 wide or holding at least h/4 of ink (summed): the specks
// that noise leaves on the paper of a scan or a photo, fainter than ink and narrow, then do
// not break a wide blank into narrow ones (which the model read as leaders: "Coffee
// ------------ . 2.50"), while the strokes of a faint leader of dashes or underscores still
// count, as does a thin dash, grey once scaled ("shoes. -- George": each dash 9 columns of
// 0.49 at most, 11 of ink).
func wideBlanks(pix []float32, col []float64, w, h int, gaps []blankRun, wide int) []blankRun {
	ink := make([]bool, w)
	for y := 0; y < h; y++ {
		for x, v := range pix[y*w:][:w] {
			if v > 0.5 {
				ink[x] = true
			}
		}
	}
	prev := 0 // the end of the gap before the current run of columns outside gaps
	for i := 0; i <= len(gaps); i++ {
		end := w
		if i < len(gaps) {
			end = gaps[i].a
		}
		mass := 0.0
		for x := prev; x < end; x++ {
			mass += col[x]
		}
		if end-prev >= max(1, h/3) || mass >= float64(h)/4 {
			for x := prev; x < end; x++ {
				ink[x] = true
			}
		}
		if i < len(gaps) {
			prev = gaps[i].b
		}
	}
	var out []blankRun
	for x := 0; x < w; {
		if ink[x] {
			x++
			continue
		}
		a := x
		for x < w && !ink[x] {
			x++
		}
		if a > 0 && x < w && x-a >= wide {
			out = append(out, blankRun{a, x})
		}
	}
	return out
}

// widthCuts appends to out the pieces, at most maxWidth wide, of columns [s, e) of a line
// (col its column sums, gaps its blank runs; gapW the width of the gap the cut at s lies in).
func widthCuts(out []piece, col []float64, gaps []blankRun, s, e, maxWidth, gapW int) []piece {
	s0 := s
	for e-s > maxWidth {
		limit := s + maxWidth // the piece is [s, cut) with s < cut ≤ limit
		type cand struct {
			cut, width int
			ink        float64
		}
		var cands []cand
		for _, g := range gaps {
			if g.a <= s0 || g.b >= e {
				continue // the line's own margins, or the wide gap at either end of the part
			}
			lo, hi := max(g.a, s+1), min(g.b, limit+1) // cut columns allowed in this gap
			if lo >= hi {
				continue
			}
			c := argminCol(col, lo, hi)
			cands = append(cands, cand{c, g.b - g.a, col[c]})
		}
		// Pieces under a quarter of maxWidth only when nothing else fits.
		var pool []cand
		for _, c := range cands {
			if c.cut-s >= maxWidth/4 {
				pool = append(pool, c)
			}
		}
		if len(pool) == 0 {
			pool = cands
		}
		cut, cutGap := -1, 0
		if len(pool) > 0 {
			widest := 0
			for _, c := range pool {
				widest = max(widest, c.width)
			}
			// Word spaces before letter spaces: only gaps at least half as wide as the widest.
			// (A fixed floor such as wordGap(h) lets the wide letter gaps of a monospaced or
			// letter-spaced face win over an earlier word space, cutting inside a word.)
			need := (widest + 1) / 2
			cleanest := math.Inf(1)
			for _, c := range pool {
				if c.width >= need {
					cleanest = min(cleanest, c.ink)
				}
			}
			for _, c := range pool {
				// the latest of the wide gaps whose cut column is as clean as the cleanest
				// (a gap running past the limit may offer only its edge)
				if c.width >= need && c.ink <= cleanest+0.05 && c.cut > cut {
					cut, cutGap = c.cut, c.width
				}
			}
		} else {
			// One word wider than maxWidth: the column of least ink in the second half of
			// the allowed range, the later of equals.
			cut = limit
			for x := limit; x > s+maxWidth/2 && x > s; x-- {
				if col[x] < col[cut] {
					cut = x
				}
			}
		}
		out = append(out, piece{s, cut, gapW})
		s, gapW = cut, cutGap
	}
	return append(out, piece{s, e, gapW})
}

// argminCol is the column of least ink in [a, b), the centre of a run of equal minima.
func argminCol(col []float64, a, b int) int {
	best := a
	for x := a; x < b; x++ {
		if col[x] < col[best] {
			best = x
		}
	}
	end := best
	for end+1 < b && col[end+1] == col[best] {
		end++
	}
	return (best + end) / 2
}

// Line is one text line of an image: Box from SplitLines (source pixels) and the segments
// LineStrips cut it into, left to right.
type Line struct {
	Box      image.Rectangle
	Segments []Segment
}

// CutLine is PageLineStrips on box of k, a page that LevelPage levelled from src by slope (or
// src itself, slope 0), with the line's box and each piece's mapped back to src's pixels
// (SourceBox: a levelled page's rows reach past the source's); LineStrips when single says the
// image is read as one line. Its Segments are empty where they give none.
func CutLine(src, k *Ink, slope float64, box image.Rectangle, height, maxWidth int, single bool) Line {
	segs := Strips(single)(k, box, height, maxWidth)
	for j := range segs {
		segs[j].Box = SourceBox(src, segs[j].Box, slope)
	}
	return Line{Box: SourceBox(src, box, slope), Segments: segs}
}

// Prepare runs the whole chain on a decoded image (from Load or Decode): Gray, Flatten,
// NormalizePage, LevelPage, LocatePage (SplitPage on the page and on its panels), then
// CutLine on each line but horizontal rules (Rule), and returns the lines in reading order
// (ReadingOrder), their boxes in source pixels. height and maxWidth of 0 mean DefaultHeight
// and DefaultMaxWidth. An image with no ink gives no lines and no error.
// Errors: a nil or empty image, or a height or maxWidth out of range. Big images are
// converted, and lines scaled, on up to GOMAXPROCS goroutines; the result does not depend on
// how many.
func Prepare(img image.Image, height, maxWidth int) ([]Line, error) {
	if img == nil {
		return nil, errors.New("ocrimage: prepare: no image")
	}
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("ocrimage: prepare: image has zero size (%d×%d pixels)", img.Bounds().Dx(), img.Bounds().Dy())
	}
	if height == 0 {
		height = DefaultHeight
	}
	if maxWidth == 0 {
		maxWidth = DefaultMaxWidth
	}
	if height < 1 || height > MaxHeight {
		return nil, fmt.Errorf("ocrimage: prepare: line height %d is outside [1, %d]", height, MaxHeight)
	}
	if maxWidth < 1 || maxWidth > MaxStripWidth {
		return nil, fmt.Errorf("ocrimage: prepare: maximum width %d is outside [1, %d]", maxWidth, MaxStripWidth)
	}
	src := NormalizePage(Flatten(Gray(img)))
	k, slope := LevelPage(src)
	located, _ := LocatePage(k, nil)
	found := make([]Line, len(located))
	pixels := 0
	for _, l := range located {
		pixels += l.Box.Dx() * l.Box.Dy()
	}
	perLine := pixels / max(1, len(located))
	parallel(len(located), max(1, (64<<10)/max(perLine, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			found[i] = CutLine(src, located[i].Ink, slope, located[i].Box, height, maxWidth, false)
		}
	})
	var lines []Line
	for _, l := range found {
		if len(l.Segments) > 0 {
			lines = append(lines, l)
		}
	}
	return lines, nil
}
