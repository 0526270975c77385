package ocrimage

import (
	"image"
	"slices"
)

// Bounds of the thin rules of a page (tables' grids, a window's or a sidebar's border, a
// quotation's bar), which need not be solid: a one-pixel grey line drawn between two pixel
// rows or columns is two of half its darkness.
const (
	// ruleInk is the least ink a rule's pixels hold: SplitPage's floor for ink (JPEG ringing
	// stays under it).
	ruleInk = 0.15
	// maxRuleWidth is the widest vertical rule WithoutVerticalRules erases, in pixels.
	maxRuleWidth = 4
	// maxRuleMass is the most ink a run across up to 2 px wider than maxRuleWidth may add up
	// to and still count as that narrow: a coloured bar's 5 px, 3 in its colour (0.7–0.9 of
	// black) and its edges part-covered, hold 2.5–3.5; the stem of a large serif heading's
	// 'l', 5 px of black, 4.1.
	maxRuleMass = 3.7
	// ruleLength is how many times as long as wide a vertical rule is at least: a glyph's
	// stem, even a tall '|', is under 15 times its width.
	ruleLength = 25
	// minRuleLength is the shortest vertical rule erased, in pixels.
	minRuleLength = 24
	// rulesStems is how many times the page's median vertical run of solid ink (medianRun) a
	// narrow run standing apart from other ink must be to be a rule however wide: a stroke of
	// the page's text is shorter, and a heading's tall letters stand close to their
	// neighbours. A toast's bar beside its two lines measured 4.9 (44 px, strokes of 9).
	rulesStems = 4.5
	// maxCrossing is the most rows in a row a vertical rule may be crossed for (by a
	// horizontal rule, or a glyph that touches it) and go on.
	maxCrossing = 3
)

// WithoutVerticalRules returns a copy of k with its vertical rules erased, or k itself when it
// has none. A vertical rule is a stretch of rows down a column whose ink (above ruleInk) runs
// across at most maxRuleWidth pixels in each row (or up to 2 more holding at most maxRuleMass
// of ink: a lighter colour drawn off the pixel grid), but for crossings of up to maxCrossing rows
// (a horizontal rule, a glyph touching it), at least minRuleLength pixels and ruleLength times
// its width (the median run across) long, or rulesStems times the page's median stroke with
// no solid ink within that stroke's length to either side (a coloured bar beside a card's
// two lines), or running the ink's whole height (but for
// panelRim+1 rows at either end) if that is panelRows or more: the lines between a table's
// columns (in a dark header row, read from its PanelInk, as short as the row), its border's
// sides, a window's edge. Only its narrow rows are erased, so a horizontal rule or a glyph
// that crosses it keeps its ink there. Left in a page, such a line joins a table's dark header
// to the rows below it (so the header is no panel), and cut into each line's crop it reads as
// '|', 'I' or '[' between the words ("SK1766 J HEL [ BCN").
func WithoutVerticalRules(k *Ink) *Ink {
	if k == nil || k.Blank || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return k
	}
	w, h := k.Rect.Dx(), k.Rect.Dy()
	// A bar beside a card's two lines (an agenda's event, a toast) is short for a rule but
	// taller than any stroke of the page's text: rulesStems times its median stroke or more.
	stroke := medianRun(k.Pix, w, h)
	ink := func(x, y int) bool { return k.Pix[y*w+x] > ruleInk }
	// across is the run of ink through (x, y) along row y: [a, b). Columns go left to right,
	// so each row's last run is kept (runA, runB) and each run is scanned once, not once for
	// each of its pixels (a solid area hundreds of pixels wide).
	runA, runB := make([]int, h), make([]int, h)
	across := func(x, y int) (a, b int) {
		if x >= runA[y] && x < runB[y] {
			return runA[y], runB[y]
		}
		a, b = x, x+1
		for a > 0 && ink(a-1, y) {
			a--
		}
		for b < w && ink(b, y) {
			b++
		}
		runA[y], runB[y] = a, b
		return a, b
	}
	// apart says whether the run down column x over rows [s, e) has no solid ink within d
	// pixels to either side of its run across, in four rows of five.
	apart := func(x, s, e, d int) bool {
		clear := 0
		for y := s; y < e; y++ {
			a, b := across(x, y)
			ok := true
			for xx := max(0, a-d); xx < min(w, b+d) && ok; xx++ {
				ok = (xx >= a && xx < b) || k.Pix[y*w+xx] <= 0.5
			}
			if ok {
				clear++
			}
		}
		return 5*clear >= 4*(e-s)
	}
	var erase []image.Rectangle // one-row spans to clear, [a, b) × [y, y+1)
	done := make([]bool, w*h)   // pixels of a rule already found from a column to their left
	// width is the run across each row of the current column (0: no ink) without a pixel of
	// light antialiasing (up to twice ruleInk) at either end, which a bar 4 px wide drawn off
	// the pixel grid has; full is the whole run.
	width, full := make([]int, h), make([]int, h)
	var narrow []int
	for x := range w {
		for y := range h {
			width[y], full[y] = 0, 0
			if ink(x, y) && !done[y*w+x] {
				a, b := across(x, y)
				full[y] = b - a
				if b-a > 1 && k.Pix[y*w+a] <= 2*ruleInk {
					a++
				}
				if b-a > 1 && k.Pix[y*w+b-1] <= 2*ruleInk {
					b--
				}
				width[y] = b - a
				if width[y] > maxRuleWidth && width[y] <= maxRuleWidth+2 {
					// A coloured bar, lighter than black, drawn off the grid: a run a pixel or two
					// wider whose ink adds up to less than maxRuleMass.
					var mass float32
					for _, v := range k.Pix[y*w+a : y*w+b] {
						mass += v
					}
					if mass <= maxRuleMass {
						width[y] = maxRuleWidth
					}
				}
			}
		}
		for y := 0; y < h; {
			if width[y] == 0 || width[y] > maxRuleWidth {
				y++
				continue
			}
			// A stretch from y: narrow rows, through crossings of up to maxCrossing wide rows.
			s, e := y, y
			for e < h && width[e] > 0 {
				if width[e] <= maxRuleWidth {
					e++
					continue
				}
				c := e
				for c < h && c-e < maxCrossing && width[c] > maxRuleWidth {
					c++
				}
				if c >= h || width[c] == 0 || width[c] > maxRuleWidth {
					break
				}
				e = c
			}
			y = e + 1
			narrow = narrow[:0]
			for r := s; r < e; r++ {
				if width[r] <= maxRuleWidth {
					narrow = append(narrow, full[r])
				}
			}
			slices.Sort(narrow)
			whole := s <= panelRim+1 && e >= h-panelRim-1 && h >= panelRows // top to bottom
			n := e - s
			// Taller than the text's strokes, and standing apart from other ink (a tall
			// letter of a heading has its neighbours close by).
			tall := stroke > 0 && float64(n) >= rulesStems*float64(stroke) && apart(x, s, e, stroke)
			if !whole && (n < minRuleLength || n < ruleLength*narrow[len(narrow)/2] && !tall) {
				continue
			}
			for r := s; r < e; r++ {
				if width[r] <= maxRuleWidth {
					a, b := across(x, r)
					erase = append(erase, image.Rect(a, r, b, r+1))
					for xx := a; xx < b; xx++ {
						done[r*w+xx] = true
					}
				}
			}
		}
	}
	if len(erase) == 0 {
		return k
	}
	out := *k
	out.Pix = slices.Clone(k.Pix)
	for _, r := range erase {
		clear(out.Pix[r.Min.Y*w+r.Min.X:][:r.Dx()])
	}
	return &out
}

// faintRule says whether the line in box is a horizontal rule drawn thin and grey, or between
// two pixel rows (which Rule's solid strokes miss): each column's ink, summed down the box,
// is about the same (the median, at least 0.3) along one run of 95 % of the box's width (through
// crossings of up to maxCrossing columns of more ink: a table's vertical rules); the box is at
// most that thickness plus two rows tall (a row of antialiasing either side); and it is at
// least ruleStrokes thicknesses, and 36 pixels, long. A line of text or a row of dashes or dots
// is broken into pieces.
func faintRule(k *Ink, box image.Rectangle) bool {
	w, h := box.Dx(), box.Dy()
	if w < ruleStrokes {
		return false
	}
	kw := k.Rect.Dx()
	cols := make([]float64, w)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		row := k.Pix[(y-k.Rect.Min.Y)*kw+box.Min.X-k.Rect.Min.X:][:w]
		for i, v := range row {
			cols[i] += float64(v)
		}
	}
	sorted := slices.Clone(cols)
	slices.Sort(sorted)
	t := sorted[w/2]
	if t < 0.3 || float64(h) > t+2 || float64(w) < ruleStrokes*max(1, t) {
		return false
	}
	// A column of more ink (a vertical rule crossing it, up to maxCrossing columns in a row)
	// carries the run on; a gap of paper ends it.
	longest, run, over := 0, 0, 0
	for _, c := range cols {
		switch {
		case c >= t/2 && c <= 2*t:
			run, over = run+over+1, 0
			longest = max(longest, run)
		case c > 2*t && over < maxCrossing && run > 0:
			over++
		default:
			run, over = 0, 0
		}
	}
	return 20*longest >= 19*w
}

// barRow says whether the line in box is a row of single bars (dashes, a rule broken into
// pieces; not equals signs, whose bars are pairs) that flatLine misses because a photograph or a scan softened their edges, and gives their
// thickness: the box's columns split into at least three runs of inked columns (summed ink at
// least 0.3 and half the inkiest column's: the paper's noise and the blur between the bars are
// not ink), three in four of them at least 1.5 times as wide as the bars are thick (dots are
// square); inside each
// run, but for a column at either end, every column holds about the same ink (within a
// factor of 1.5 of the row's median column: a bar, not a glyph's changing strokes) and the
// ink's centre in each lies within half a thickness of the others' in its run (level, not a
// tilde's wave; a photographed row may slope); and
// the box is at most that median plus three rows tall (antialiasing and blur above and
// below). The thickness is the median column's ink.
func barRow(k *Ink, box image.Rectangle) (thickness float64, ok bool) {
	t, _, double, ok := bars(k, box)
	return t, ok && !double
}

// bar is a run of inked columns [a, b) of a line.
type bar struct{ a, b int }

// bars is barRow, with the bars (in box's columns, from 0) when ok, and whether they are
// pairs of bars one above the other (equals signs: down the rows of the runs' inner columns,
// the ink has a valley, 15 % or more below the rows above and below it, where a single bar,
// however blurred, has one hump).
func bars(k *Ink, box image.Rectangle) (thickness float64, runs []bar, double, ok bool) {
	box = box.Intersect(k.Rect)
	w, h := box.Dx(), box.Dy()
	if w < 3 || h < 1 {
		return 0, nil, false, false
	}
	kw := k.Rect.Dx()
	cols := make([]float64, w)
	mid := make([]float64, w) // each column's ink-weighted row, from box.Min.Y
	for y := box.Min.Y; y < box.Max.Y; y++ {
		row := k.Pix[(y-k.Rect.Min.Y)*kw+box.Min.X-k.Rect.Min.X:][:w]
		for i, v := range row {
			cols[i] += float64(v)
			mid[i] += float64(v) * float64(y-box.Min.Y)
		}
	}
	floor := max(0.3, 0.5*slices.Max(cols)) // above the noise and blur between the bars
	for x := 0; x < w; {
		if cols[x] < floor {
			x++
			continue
		}
		a := x
		for x < w && cols[x] >= floor {
			x++
		}
		runs = append(runs, bar{a, x})
	}
	if len(runs) < 3 {
		return 0, nil, false, false
	}
	var inner []float64
	spread := 0.0 // the most the ink's centre moves up or down along a run
	for _, r := range runs {
		lo, hi := float64(h), 0.0
		for x := r.a + 1; x < r.b-1; x++ {
			inner = append(inner, cols[x])
			lo, hi = min(lo, mid[x]/cols[x]), max(hi, mid[x]/cols[x])
		}
		spread = max(spread, hi-lo)
	}
	if len(inner) == 0 {
		return 0, nil, false, false
	}
	sorted := slices.Clone(inner)
	slices.Sort(sorted)
	t := sorted[len(sorted)/2]
	// A bar lies level: a tilde's ink rises and falls by about its stroke, a row of bars
	// photographed at a slant moves a few tenths of a pixel along one bar.
	if float64(h) > t+3 || spread > 0.5*t {
		return 0, nil, false, false
	}
	wide := 0
	for _, r := range runs {
		if float64(r.b-r.a) >= 1.5*t {
			wide++
		}
	}
	if 4*wide < 3*len(runs) {
		return 0, nil, false, false
	}
	for _, c := range inner {
		if c > 1.5*t || c < t/1.5 {
			return 0, nil, false, false
		}
	}
	// Each row's ink over the runs' inner columns: one hump, or two (equals signs).
	prof := make([]float64, h)
	for y := range h {
		row := k.Pix[(y+box.Min.Y-k.Rect.Min.Y)*kw+box.Min.X-k.Rect.Min.X:][:w]
		for _, r := range runs {
			for x := r.a + 1; x < r.b-1; x++ {
				prof[y] += float64(row[x])
			}
		}
	}
	for y := 1; y+1 < h; y++ {
		if prof[y] < 0.85*min(slices.Max(prof[:y]), slices.Max(prof[y+1:])) {
			double = true
		}
	}
	return t, runs, double, true
}

// DashRow says whether the line in box (as SplitLines or LocatePage gives it) of k is a row of
// dashes or equals signs set without spaces ("--------------------------", "============", a
// receipt's or a listing's separator), and how many (glyph is '-' or '='): a row of single
// bars (barRow: three or more, soft edges allowed) of about one width (the widest at most 1.5
// times the narrowest, but for the last, which a crop may cut), evenly spaced (every gap within
// a factor of 2 of the others, give or take a pixel), the median gap under three quarters of
// the median bar (bars measured where their ink is at least half the inkiest column's); or two
// such rows one above the other (equalsBands), bar over bar (each pair overlapping by at least
// half the narrower), for equals signs. An equals sign is wider than a dash, and the gap
// test does not tell a row of equals signs with spaces from one without in every face; the
// recognizer keeps the model's spaces there. Between dashes set without spaces lie a dash's side
// bearings, a fifth to a third of a dash in a proportional face, up to four fifths in a
// monospaced one; with spaces, a dash or more. A text decoder that attends to image columns
// miscounts a run of identical glyphs, which nothing tells apart ("---------------" read as
// 16, a receipt's 26 as 31 to 45, eleven equals signs as 18); the bars are counted instead.
// Anything else (spaced or uneven bars, tildes, a row blurred past telling its bars apart) is
// left to the model: ok is false. A blur can flatten a row of tildes into bars, though; the
// recognizer takes the count only where the model read the line as flat glyphs (dashes,
// equals signs, underscores).
func DashRow(k *Ink, box image.Rectangle) (glyph byte, n int, ok bool) {
	if k == nil || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() || box.Intersect(k.Rect).Empty() {
		return 0, 0, false
	}
	if runs, ok := dashRuns(k, box); ok {
		return '-', len(runs), true
	}
	top, bottom, ok := equalsBands(k, box.Intersect(k.Rect))
	if !ok {
		return 0, 0, false
	}
	upper, okU := dashRuns(k, top)
	lower, okL := dashRuns(k, bottom)
	if !okU || !okL || len(upper) != len(lower) {
		return 0, 0, false
	}
	for i, u := range upper {
		l := lower[i]
		if 2*(min(u.b, l.b)-max(u.a, l.a)) < min(u.b-u.a, l.b-l.a) {
			return 0, 0, false
		}
	}
	return '=', len(upper), true
}

// dashRuns is DashRow's test for a row of single bars, with the bars (in box's columns, from
// 0) when it is one.
func dashRuns(k *Ink, box image.Rectangle) ([]bar, bool) {
	_, runs, double, ok := bars(k, box)
	if !ok || double {
		return nil, false
	}
	minW, maxW := runs[0].b-runs[0].a, 0
	for _, r := range runs[:len(runs)-1] {
		minW, maxW = min(minW, r.b-r.a), max(maxW, r.b-r.a)
	}
	if 2*maxW > 3*minW {
		return nil, false
	}
	var gaps, widths []int
	for i, r := range runs {
		widths = append(widths, r.b-r.a)
		if i > 0 {
			gaps = append(gaps, r.a-runs[i-1].b)
		}
	}
	slices.Sort(gaps)
	slices.Sort(widths)
	if gaps[len(gaps)-1] > 2*gaps[0]+1 || 4*gaps[len(gaps)/2] >= 3*widths[len(widths)/2] {
		return nil, false
	}
	return runs, true
}

// equalsBands splits box (inside k) into the two bands of a row of equals signs: its rows'
// ink, summed across the box, rises to half its peak in exactly two runs of rows (the bars),
// and the box is cut at the row of least ink between them; each band is then trimmed to its
// rows with at least a tenth of the peak (the bar and its antialiasing). ok is false for any
// other profile: one band (dashes, a word's x-height), three or more (a line of text's
// serifs and crossbars rarely make exactly two, and DashRow's tests of each band reject them).
func equalsBands(k *Ink, box image.Rectangle) (top, bottom image.Rectangle, ok bool) {
	h := box.Dy()
	if h < 3 || box.Dx() < 3 {
		return image.Rectangle{}, image.Rectangle{}, false
	}
	kw := k.Rect.Dx()
	prof := make([]float64, h)
	for y := range h {
		for _, v := range k.Pix[(y+box.Min.Y-k.Rect.Min.Y)*kw+box.Min.X-k.Rect.Min.X:][:box.Dx()] {
			prof[y] += float64(v)
		}
	}
	peak := slices.Max(prof)
	var humps [][2]int // runs of rows [a, b) at half the peak or more
	for y := 0; y < h; {
		if prof[y] < peak/2 {
			y++
			continue
		}
		a := y
		for y < h && prof[y] >= peak/2 {
			y++
		}
		humps = append(humps, [2]int{a, y})
	}
	if len(humps) != 2 {
		return image.Rectangle{}, image.Rectangle{}, false
	}
	cut := humps[0][1]
	for y := humps[0][1]; y < humps[1][0]; y++ {
		if prof[y] < prof[cut] {
			cut = y
		}
	}
	trim := func(a, b int) image.Rectangle {
		for a < b && prof[a] < peak/10 {
			a++
		}
		for b > a && prof[b-1] < peak/10 {
			b--
		}
		return image.Rect(box.Min.X, box.Min.Y+a, box.Max.X, box.Min.Y+b)
	}
	top, bottom = trim(0, cut), trim(cut+1, h)
	if top.Empty() || bottom.Empty() {
		return image.Rectangle{}, image.Rectangle{}, false
	}
	return top, bottom, true
}

// medianRun is the median length of the vertical runs of solid ink (> 0.5) of pix (w×h),
// each run weighted by its length (its pixels), or 0 when it has none: about the x-height of
// the page's body text.
func medianRun(pix []float32, w, h int) int {
	lengths := make([]int64, h+1)
	for x := range w {
		run := 0
		for y := 0; y <= h; y++ {
			if y < h && pix[y*w+x] > 0.5 {
				run++
				continue
			}
			lengths[run] += int64(run)
			run = 0
		}
	}
	lengths[0] = 0
	return percentileRun(lengths, 0.5)
}
