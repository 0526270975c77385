package ocrimage

import (
	"image"
	"math"
	"slices"
)

// SplitLines finds the text lines of an ink map by its row profile (the ink summed along each
// row) and returns one box per line in reading order, top to bottom, in the source image's
// pixel coordinates. A single-line image gives one box; a blank one gives none.
//
// Sizes are in units of S, the height of the text's tall stems (the 90th percentile, weighted
// by length, of vertical runs of solid ink: about the height of an l or a capital), so they
// follow the font, not the image. Ink is solid above 0.5, or on a noisy page, once blurred,
// above 0.35 (or 0.1 above the noise level, if higher). Then:
//
//   - The profile counts ink above a noise level (0.15, which JPEG ringing stays under, or on
//     a noisy page, first blurred 3×3, about the 99.9th percentile of the paper). Smoothed (Gaussian,
//     σ = S/12 rows), its rows above 1 % of the way from its floor (5th percentile) to its
//     peak form bands, so that a one-word last line of a paragraph is still a line.
//   - A band holding lines that touch is split at a row where the profile (smoothed only by
//     σ = S/25) is lowest within S/5 rows and below 60 % of the peaks on both sides, at least
//     S rows from either end of the band (each of two touching lines is that tall; a row
//     nearer an edge is inside one line, such as the middle of a line of capitals or digits,
//     whose top and baseline are themselves S apart), and either
//     nearly blank (under 10 % of the way from the floor to the lower side's peak: inside a
//     line, stems cross every row of its x-height), or between two lines and uncrossed: it
//     lies within S/2 rows of the valley between the nearest humps of the profile smoothed
//     by σ = S/4 above and below it, humps at least S apart (one line's hump, a line pitch
//     from the next one's; within one line of a light font, the x-height's top and the
//     baseline make two peaks of the finer profile, but one hump), and few strokes run
//     through it (under half of its solid pixels are solid S/6 rows above and below as
//     well): inside a line, stems and bowls run through the dips of the profile (the middle
//     of an "o" or an "E"); between lines, only a descender that meets an ascender does.
//     Text set solid (leading about 1 em, descenders meeting ascenders) splits this way down
//     to a line pitch of about the face's ascender-to-descender height.
//   - Fragments shorter than S/2 (the dots of i and j, a run of commas, accents) join the
//     nearest line within 3S/4, unless the line would then be taller than 1.75 S (more than
//     a line with ascenders, descenders and accents: such a fragment is a sliver of a
//     neighbouring line that a crop cut through); a fragment that joins no line is kept as a
//     line if its ink reaches 15 % of the peak (a rule, a row of dashes, a sliver) and
//     dropped as dirt if not.
//   - Each line extends up and down, by at most 0.6 S, jumping gaps of up to S/3 rows and
//     never past the profile's minimum between it and its neighbour, to its outermost rows
//     with a solid pixel and more ink than noise leaves in rows far from any line; then it is
//     trimmed left and right to its solid ink, leaving out specks of under S²/80 pixels of
//     ink more than 2S from the rest, with a margin of S/4 (at least 2 px).
//
// Skewed text (more than about one line height of drift across the width) is not deskewed
// here and may merge lines: LevelPage first (Prepare does).
func SplitLines(k *Ink) []image.Rectangle { return splitLines(k, false) }

// SplitPage is SplitLines for a page, whose solid areas are not text: runs of solid ink at
// least 8 px and a stem height long that are at least a third as wide as tall, or 25 times
// taller than wide (profileAndStem's blocks), are left out of S, and those at least 2S tall
// (an icon, an avatar, a photo, a bar of colour, a sidebar, a table's border) are erased
// before the profile is taken, so that they neither merge the lines beside them nor widen
// their boxes. A crop of one line (SplitLines) keeps its solid areas as text: the blurred or
// enlarged strokes of a degraded line can be as wide as tall.
func SplitPage(k *Ink) []image.Rectangle { return splitLines(k, true) }

func splitLines(k *Ink, page bool) []image.Rectangle {
	if k == nil || k.Blank || k.Rect.Empty() || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return nil
	}
	w, h := k.Rect.Dx(), k.Rect.Dy()

	// Denoise: a noisy page is blurred (3×3 box, noise ÷3) and values below tau count as
	// no ink: 0.15 (JPEG ringing stays under it), or on a noisy page the blurred paper's
	// noise ceiling.
	// Solid ink is above 0.5, or 0.35 once blurred (a 2×2 full stop blurs to 0.44).
	pix := k.Pix
	tau, solid := float32(0.15), float32(0.5)
	noise := noiseLevel(pix, w, h)
	clean := noise < faintNoise
	if min(w, h) >= 12 && noise > 0.04 { // a tiny crop is all edges, not noise
		pix = blur3(pix, w, h)
		tau = min(0.6, max(tau, noiseCeiling(pix, w, h)))
		solid = max(0.35, tau+0.1)
	}

	prof, solidN, stem, blocks := profileAndStem(pix, w, h, tau, solid, page)
	if stem == 0 {
		return nil
	}
	S := float64(stem)
	// Solid areas and vertical rules go (withoutBlocks), and the profile is taken again.
	// On a page, icons go first (withoutIcons): erased in part as blocks, they would be
	// icons no longer.
	if page {
		if clear := withoutIcons(pix, w, h, stem, solid); clear != nil {
			pix = clear
			prof, solidN, _, blocks = profileAndStem(pix, w, h, tau, solid, page)
		}
	}
	if clear := withoutBlocks(pix, w, h, stem, blocks, solid); clear != nil {
		pix = clear
		prof, solidN, _, _ = profileAndStem(pix, w, h, tau, solid, page)
	}

	smooth := gaussian(prof, max(0.7, S/12))
	base, peak := percentile(smooth, 0.05), slices.Max(smooth)
	if peak-base < 1 { // less than a pixel of ink in the inkiest row
		return nil
	}
	hi := base + max(0.01*(peak-base), 0.5)

	// Bands: runs of rows above hi.
	type band struct{ a, b int } // rows [a, b)
	var bands []band
	for y := 0; y < h; {
		if smooth[y] <= hi {
			y++
			continue
		}
		a := y
		for y < h && smooth[y] > hi {
			y++
		}
		bands = append(bands, band{a, y})
	}

	// Split bands of touching lines at deep, uncrossed minima of a lightly smoothed profile
	// (the valley between lines that touch can be two rows wide).
	fine := gaussian(prof, max(0.6, S/25))
	// Smoothed by a quarter stem, each line's profile is one hump about its x-height: the
	// humps of two lines lie a line pitch apart, while a light font's x-height top and
	// baseline (two peaks of fine) merge into one.
	coarse := gaussian(prof, max(1, S/4))
	delta := max(1, int(math.Round(S/6)))
	around := max(1, int(math.Round(S/5)))
	var split func(bd band, out []band) []band
	split = func(bd band, out []band) []band {
		bestY, bestRatio := -1, 0.6
		leftMax := make([]float64, bd.b-bd.a)
		leftPeak := make([]int, bd.b-bd.a) // the last hump (a local maximum of coarse) in rows [bd.a, y], or -1
		m, hump := 0.0, -1
		for y := bd.a; y < bd.b; y++ {
			m = max(m, fine[y])
			if (y == bd.a || coarse[y] > coarse[y-1]) && (y+1 == bd.b || coarse[y] >= coarse[y+1]) {
				hump = y
			}
			leftMax[y-bd.a], leftPeak[y-bd.a] = m, hump
		}
		m, hump = 0, -1
		for y := bd.b - 1; y > bd.a; y-- {
			m = max(m, fine[y])
			if (y+1 == bd.b || coarse[y] > coarse[y+1]) && coarse[y] >= coarse[y-1] {
				hump = y
			}
			if y-bd.a < 2 || bd.b-y < 2 {
				continue
			}
			sides := min(leftMax[y-bd.a], m) - base
			if sides <= 0 {
				continue
			}
			// Two lines' humps are a line pitch apart, at least S, with y in the valley
			// between them; one line's two densest rows (the x-height's top and the
			// baseline, where a light font's strokes run flat) make one hump. The nearest
			// humps, not the band's highest: beside a long line, a short one's hump is low.
			pitch := 0.0
			if up := leftPeak[y-bd.a]; up >= 0 && hump >= 0 && abs(y-argmin(coarse, up, hump+1)) <= max(around, stem/2) {
				pitch = float64(hump - up)
			}
			ratio := (fine[y] - base) / sides
			// A row nearly as blank as paper lies between lines whatever the peaks around it:
			// inside a line, the stems cross every row of its x-height.
			deep := ratio < 0.1
			if ratio < bestRatio && (pitch >= S || deep) && float64(y-bd.a) >= S && float64(bd.b-y) >= S && nearLowest(fine, y, around, base) && (deep || crossing(pix, w, h, y, delta, solid) < 0.5) {
				bestY, bestRatio = y, ratio
			}
		}
		if bestY < 0 {
			return append(out, bd)
		}
		out = split(band{bd.a, bestY}, out)
		return split(band{bestY, bd.b}, out)
	}
	var parts []band
	for _, bd := range bands {
		parts = split(bd, parts)
	}

	// Merge small fragments into the nearest line; drop faint, isolated ones.
	fragH := S / 2
	reach := 0.75 * S
	joinMax := 1.75 * S
	strong := base + 0.15*(peak-base)
	alone := make([]bool, len(parts)) // a strong fragment kept as a line of its own
	for len(parts) > 1 {
		fi := -1
		for i, p := range parts {
			if !alone[i] && float64(p.b-p.a) < fragH && (fi < 0 || p.b-p.a < parts[fi].b-parts[fi].a) {
				fi = i
			}
		}
		if fi < 0 {
			break
		}
		p := parts[fi]
		gapUp, gapDown := math.Inf(1), math.Inf(1)
		if fi > 0 {
			gapUp = float64(p.a - parts[fi-1].b)
		}
		if fi+1 < len(parts) {
			gapDown = float64(parts[fi+1].a - p.b)
		}
		// Joined, a line stays at most joinMax tall: a fragment that would make it taller is
		// not a dot or accent of that line but a sliver of a neighbouring one.
		if fi > 0 && float64(p.b-parts[fi-1].a) > joinMax {
			gapUp = math.Inf(1)
		}
		if fi+1 < len(parts) && float64(parts[fi+1].b-p.a) > joinMax {
			gapDown = math.Inf(1)
		}
		switch {
		case gapUp <= reach && gapUp <= gapDown:
			parts[fi-1].b = p.b
		case gapDown <= reach:
			parts[fi+1].a = p.a
		case slices.Max(smooth[p.a:p.b]) >= strong:
			alone[fi] = true // a rule, a row of dashes: a line of its own
			continue
		}
		parts = slices.Delete(parts, fi, fi+1)
		alone = slices.Delete(alone, fi, fi+1)
	}
	// Vertical extents: from the band's own inked rows (the smoothed profile blurs its edges),
	// walk outwards over inked rows, jumping gaps of up to S/3 rows, within 0.6 S and the
	// minimum between neighbours.
	floor := max(0.003*(peak-base), 0.25)
	// Rows well away from every band are blank: what noise leaves there must not count as ink.
	// Their noise is measured robustly (median and median absolute deviation): a few rows of
	// real ink among them (the soft rim an erased panel leaves, 88 px of half ink) made the
	// mean and deviation's floor a faint short line's whole profile, and it was lost (a form's
	// bold "City" label, under a button's rim).
	window := int(math.Ceil(0.6 * S))
	var blank []float64
	for y, bi := 0, 0; y < h; y++ {
		for bi < len(parts) && parts[bi].b+window <= y {
			bi++
		}
		if bi < len(parts) && y >= parts[bi].a-window {
			continue
		}
		blank = append(blank, prof[y])
	}
	if len(blank) >= 4 {
		med := percentile(blank, 0.5)
		dev := make([]float64, len(blank))
		for i, v := range blank {
			dev[i] = math.Abs(v - med)
		}
		floor = max(floor, med+4*1.4826*percentile(dev, 0.5))
	}
	inked := func(y int) bool { return prof[y] > floor && solidN[y] > 0 }
	jump := max(2, int(math.Ceil(S/3)))
	margin := max(2, int(math.Round(S/4)))
	boxes := make([]image.Rectangle, 0, len(parts))
	for i, p := range parts {
		lo, hiLim := 0, h
		if i > 0 {
			lo = argmin(smooth, parts[i-1].b, p.a)
		}
		if i+1 < len(parts) {
			hiLim = argmin(smooth, p.b, parts[i+1].a) + 1
		}
		inkedHere, solidHere := inked, solid
		top, bot := -1, -1 // first and one past the last inked row of the band
		findRows := func() {
			for y := p.a; y < p.b; y++ {
				if inkedHere(y) {
					if top < 0 {
						top = y
					}
					bot = y + 1
				}
			}
		}
		findRows()
		if top < 0 && page && clean {
			// A faint line of a clean page, no pixel of it solid (a form's placeholder, a
			// light grey caption, on a page whose darkest text sets the ink's scale): its own
			// solid level is half its inkiest pixel's, if that is faintInk or more, and it
			// must hold text's strokes (faintStrokes).
			m := float32(0)
			for _, v := range pix[p.a*w : p.b*w] {
				m = max(m, v)
			}
			if m >= faintInk {
				solidHere = m / 2
				inkedHere = func(y int) bool {
					return prof[y] > floor && slices.ContainsFunc(pix[y*w:][:w], func(v float32) bool { return v > solidHere })
				}
				findRows()
				if top >= 0 && !faintStrokes(pix, w, top, bot, solidHere, S) {
					top = -1
				}
			}
		}
		if top < 0 {
			continue
		}
		for y := top - 1; y >= max(lo, p.a-window) && top-y <= jump; y-- {
			if inkedHere(y) {
				top = y
			}
		}
		for y := bot; y < min(hiLim, p.b+window) && y+1-bot <= jump; y++ {
			if inkedHere(y) {
				bot = y + 1
			}
		}
		x0, x1, ok := inkColumns(pix, w, top, bot, tau, solidHere, S)
		if !ok {
			continue
		}
		r := image.Rect(x0-margin, top, x1+margin, bot).Intersect(image.Rect(0, 0, w, h))
		boxes = append(boxes, r.Add(k.Rect.Min))
	}
	return joinFlatPairs(k, boxes)
}

// joinFlatPairs joins two successive lines that are both rows of flat glyphs (flatLine, with
// four in five inked pixels solid rather than nine in ten: a small font's bars are two rows of
// antialiased grey) with a gap of at most twice the taller one's height into one line: the two
// bars of a row of equals signs, which would otherwise be read as two rows of dashes.
func joinFlatPairs(k *Ink, boxes []image.Rectangle) []image.Rectangle {
	for i := 0; i+1 < len(boxes); i++ {
		a, b := boxes[i], boxes[i+1]
		if b.Min.Y-a.Max.Y > 2*max(a.Dy(), b.Dy()) {
			continue
		}
		if _, flat := flatGlyphs(k, a, 0.8); !flat {
			continue
		}
		if _, flat := flatGlyphs(k, b, 0.8); flat {
			boxes[i] = a.Union(b)
			boxes = slices.Delete(boxes, i+1, i+2)
			i--
		}
	}
	return boxes
}

// noiseLevel estimates the noise on paper in an ink map from the differences between
// horizontal neighbours that are both below 0.5 (paper, or the edge of a stroke), on every
// fourth row: 2.5 × their median, about the deviation of Gaussian noise on paper (half of
// which Normalize clamps to 0). A clean or JPEG'd page, mostly exact zeros, gives 0.
func noiseLevel(pix []float32, w, h int) float64 {
	const bins = 200 // of 0.0025 over [0, 0.5)
	var hist [bins]int
	n := 0
	for y := 0; y < h; y += 4 {
		row := pix[y*w:][:w]
		for x := 1; x < len(row); x++ {
			a, b := row[x-1], row[x]
			if a == 0 && b == 0 {
				hist[0]++
				n++
				continue
			}
			if a >= 0.5 || b >= 0.5 {
				continue
			}
			d := a - b
			if d < 0 {
				d = -d
			}
			hist[min(bins-1, int(d*2*bins))]++
			n++
		}
	}
	if n == 0 {
		return 0
	}
	c := 0
	for i, m := range hist {
		c += m
		if 2*c >= n {
			return 2.5 * float64(i) / (2 * bins)
		}
	}
	return 0.5
}

// noiseCeiling is where a blurred noisy page's paper ends: m + 4(m − q16), with m the median
// and q16 the 16th percentile of pix (w×h, every other row). Paper is most of a page, and its
// lower half is untouched by ink, so m − q16 is about one deviation of the paper's noise; the
// ceiling is then near the paper's 99.9th percentile.
func noiseCeiling(pix []float32, w, h int) float32 {
	const bins = 1000 // of 0.001 over [0, 1]
	var hist [bins + 1]int
	n := 0
	for y := 0; y < h; y += 2 {
		for _, v := range pix[y*w:][:w] {
			hist[min(bins, max(0, int(v*bins)))]++
			n++
		}
	}
	quantile := func(q float64) float32 {
		want, c := int(q*float64(n)), 0
		for i, m := range hist {
			c += m
			if c > want {
				return (float32(i) + 0.5) / bins
			}
		}
		return 1
	}
	m := quantile(0.5)
	return m + 4*(m-quantile(0.16))
}

// blur3 is pix (w×h) averaged over 3×3 neighbourhoods (fewer at the edges).
func blur3(pix []float32, w, h int) []float32 {
	tmp := make([]float32, len(pix))
	for y := 0; y < h; y++ {
		src, dst := pix[y*w:][:w], tmp[y*w:][:w]
		for x := range dst {
			s, n := src[x], float32(1)
			if x > 0 {
				s, n = s+src[x-1], n+1
			}
			if x+1 < w {
				s, n = s+src[x+1], n+1
			}
			dst[x] = s / n
		}
	}
	out := make([]float32, len(pix))
	for y := 0; y < h; y++ {
		dst := out[y*w:][:w]
		n := float32(1)
		copy(dst, tmp[y*w:][:w])
		if y > 0 {
			n++
			for x, v := range tmp[(y-1)*w:][:w] {
				dst[x] += v
			}
		}
		if y+1 < h {
			n++
			for x, v := range tmp[(y+1)*w:][:w] {
				dst[x] += v
			}
		}
		for x := range dst {
			dst[x] /= n
		}
	}
	return out
}

// profileAndStem sums each row of pix (w×h), counting only ink above tau, counts each row's
// solid pixels (> solidT), and measures the stem height: the 90th percentile, weighted by
// length, of vertical runs of solid pixels, blocks left out. Blocks are the runs that are not
// strokes (stemRun) and at least half as long as the stem height (and minBlock): slices of an
// icon, a photo, a bar of colour or a vertical rule, which would otherwise pass for the page's
// tallest stems; shorter runs that are not strokes (the columns of a bold letter's horizontal
// bar) still count, as they always have, and so do runs under minBlock pixels. When blocks are
// all there is, they are not blocks. Without findBlocks every run counts. The stem height is 0
// when nothing is solid.
func profileAndStem(pix []float32, w, h int, tau, solidT float32, findBlocks bool) (prof []float64, solid []int, stem int, blocks []blockRun) {
	prof = make([]float64, h)
	solid = make([]int, h)
	run := make([]int32, w)
	lengths := make([]int64, h+1) // lengths[n] = ink pixels in runs of length n
	var wide []blockRun           // runs that are not strokes
	ended := func(x, y0, n int) {
		lengths[n] += int64(n)
		if findBlocks && n >= minBlock && !stemRun(pix, w, x, y0, n, solidT) {
			wide = append(wide, blockRun{x, y0, n})
		}
	}
	for y := 0; y < h; y++ {
		var s float32
		for x, v := range pix[y*w:][:w] {
			s += max(v-tau, 0)
			if v > solidT {
				run[x]++
				solid[y]++
				continue
			}
			if n := run[x]; n > 0 {
				ended(x, y-int(n), int(n))
				run[x] = 0
			}
		}
		prof[y] = float64(s)
	}
	for x, n := range run {
		if n > 0 {
			ended(x, h-int(n), int(n))
		}
	}
	all := percentileRun(lengths, 0.9)
	if all == 0 || len(wide) == 0 {
		return prof, solid, all, nil
	}
	// The blocks' bound follows the stem height, which leaving blocks out lowers: a photo's
	// runs make the first estimate its height. A few rounds settle it.
	stem = all
	kept := slices.Clone(lengths)
	for range 4 {
		copy(kept, lengths)
		blocks = blocks[:0]
		for _, b := range wide {
			if b.n >= max(minBlock, (stem+1)/2) {
				kept[b.n] -= int64(b.n)
				blocks = append(blocks, b)
			}
		}
		next := percentileRun(kept, 0.9)
		if next == 0 { // nothing but blocks: nothing to tell them from
			return prof, solid, all, nil
		}
		if next == stem {
			break
		}
		stem = next
	}
	return prof, solid, stem, blocks
}

// minBlock is the shortest run, in pixels, that profileAndStem takes for a block: the bars of a
// row of equals signs or dashes, a few pixels thick and wide, are text.
const minBlock = 8

// blockRun is a vertical run of solid pixels: column x, rows [y0, y0+n).
type blockRun struct{ x, y0, n int }

// percentileRun is the q-th percentile of the run lengths whose ink lengths[n] counts (at least
// 2), or 0 when it counts none.
func percentileRun(lengths []int64, q float64) int {
	var total int64
	for _, m := range lengths {
		total += m
	}
	if total == 0 {
		return 0
	}
	want, c := int64(math.Ceil(q*float64(total))), int64(0)
	for n, m := range lengths {
		if c += m; c >= want {
			return max(n, 2)
		}
	}
	return len(lengths) - 1
}

// stemRun says whether the vertical run of solid pixels (> solidT) in column x, rows [y0,
// y0+n), is a stroke of text rather than a slice of a solid area or of a vertical rule: the
// median of the widths of the horizontal runs of solid pixels through it a quarter, half and
// three quarters down is under a third of its height (a stem, a bowl's side, the stems of an
// H or an E between their bars; the heaviest faces' stems are about a quarter of their
// ascender's height) and at least a 25th of it (a stroke of the lightest face, an em tall, is
// about a 20th). An icon, a photo, a bar of colour, a sidebar or a block of code's background
// is wider than that; a table's border or a rule beside text is a pixel or two wide and many
// lines tall. Counted as stems, their columns, many or long, would pass for the page's
// tallest, making its text lines look several times their height.
func stemRun(pix []float32, w, x, y0, n int, solidT float32) bool {
	m := medianWidth(pix, w, x, y0, n, solidT)
	return 3*m < n && n <= 25*m
}

// medianWidth is the median of the widths (capped at n) of the horizontal runs of solid
// pixels through column x a quarter, half and three quarters down rows [y0, y0+n).
func medianWidth(pix []float32, w, x, y0, n int, solidT float32) int {
	var widths [3]int
	for i, y := range [3]int{y0 + n/4, y0 + n/2, y0 + 3*n/4} {
		row := pix[y*w:][:w]
		width := 1
		for j := x - 1; j >= 0 && row[j] > solidT && width < n; j-- {
			width++
		}
		for j := x + 1; j < w && row[j] > solidT && width < n; j++ {
			width++
		}
		widths[i] = width
	}
	return max(min(widths[0], widths[1]), min(max(widths[0], widths[1]), widths[2]))
}

// withoutBlocks returns a copy of pix (w×h) with its solid areas and vertical rules erased,
// or nil when it has none: the block runs (profileAndStem) at least twice the stem height
// long, and the fainter pixels (up to solidT) beside them (the bars of a row of equals signs,
// as thick as the few strokes at their ends are tall, stay). An icon, a photo, a bar of
// colour or a table's border beside or between lines of text would otherwise fill the rows
// between the lines in the profile, and the lines would merge.
func withoutBlocks(pix []float32, w, h, stem int, blocks []blockRun, solidT float32) []float32 {
	var out []float32
	for _, b := range blocks {
		if b.n < 2*stem {
			continue
		}
		if out == nil {
			out = slices.Clone(pix)
		}
		for r := b.y0; r < b.y0+b.n; r++ {
			out[r*w+b.x] = 0
		}
	}
	if out == nil {
		return nil
	}
	clearSoftEdges(out, pix, w, h, solidT)
	return out
}

// clearSoftEdges clears, in out (pix with some solid pixels cleared), the pixels at most solidT
// next to a cleared one: the soft edges of what was erased.
func clearSoftEdges(out, pix []float32, w, h int, solidT float32) {
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := y*w + x
			if out[i] == 0 || pix[i] > solidT {
				continue
			}
			if x > 0 && out[i-1] == 0 && pix[i-1] > solidT || x+1 < w && out[i+1] == 0 && pix[i+1] > solidT ||
				y > 0 && out[i-w] == 0 && pix[i-w] > solidT || y+1 < h && out[i+w] == 0 && pix[i+w] > solidT {
				out[i] = 0
			}
		}
	}
}

// faintInk is the least ink of a faint line's inkiest pixel (SplitPage): light grey text on
// a page whose darkest text sets the ink's scale. faintNoise is the most paper noise
// (noiseLevel) of a page whose faint lines are looked for: a screenshot's, not a photograph's.
const (
	faintInk   = 0.3
	faintNoise = 0.02
)

// faintStrokes says whether rows [y0, y1) of pix (w wide) hold text's strokes above solidT:
// vertical runs above it of a third of a stem or more (at least 3 rows) in at least four
// separate groups of columns, one a letter or so. A faint band of a form's field (a one-row
// border over a flat fill, its rounded corners at either end) has two at most.
func faintStrokes(pix []float32, w, y0, y1 int, solidT float32, S float64) bool {
	need := max(3, int(math.Ceil(S/3)))
	groups, prev := 0, false
	for x := 0; x < w && groups < 4; x++ {
		stroke, run := false, 0
		for y := y0; y < y1 && !stroke; y++ {
			if pix[y*w+x] > solidT {
				run++
				stroke = run >= need
			} else {
				run = 0
			}
		}
		if stroke && !prev {
			groups++
		}
		prev = stroke
	}
	return groups >= 4
}

// Bounds of withoutIcons.
const (
	iconStems = 2    // least height, in stem heights
	iconFill  = 0.55 // least share of its box an icon's solid pixels cover
	iconAlone = 0.25 // paper beside it, in its heights, with no solid ink on its rows
)

// withoutIcons returns a copy of pix (w×h, a page) with its icons erased, or nil when it has
// none: the 4-connected components of solid pixels (above solidT) at least iconStems stem
// heights tall, between half and twice as wide as tall, covering iconFill of their box (their
// holes, which the box's edge cannot reach, counted in: a toggle switch's knob), with
// no solid ink within iconAlone of their height to their left or right: a square or round
// icon or avatar drawn as a ring, or with a symbol cut out of it, whose walls withoutBlocks
// takes for strokes. Left in, it joins the lines beside it into one band ("pullg Owen
// Price" and the line under it). A heading's large bold letters stand closer together than
// that; a lone one (a drop cap) would go.
func withoutIcons(pix []float32, w, h, stem int, solidT float32) []float32 {
	seen := make([]bool, w*h)
	solid := func(i int) bool { return pix[i] > solidT }
	var out []float32
	var c component
	for seed := range w * h {
		if seen[seed] || !solid(seed) {
			continue
		}
		c.flood(w, h, seed, seen, solid)
		b := c.box
		bw, bh := b.Dx(), b.Dy()
		if float64(bh) < iconStems*float64(stem) || 2*bw < bh || bw > 2*bh {
			continue
		}
		fill := len(c.pixels) + holes(c, w, solid)
		if float64(fill) < iconFill*float64(bw*bh) {
			continue
		}
		gap := int(math.Ceil(iconAlone * float64(bh)))
		solidIn := func(y, x0, x1 int) bool {
			return slices.ContainsFunc(pix[y*w+x0:y*w+x1], func(v float32) bool { return v > solidT })
		}
		alone := true
		for y := b.Min.Y; y < b.Max.Y && alone; y++ {
			alone = !solidIn(y, max(0, b.Min.X-gap), b.Min.X) && !solidIn(y, b.Max.X, min(w, b.Max.X+gap))
		}
		if !alone {
			continue
		}
		if out == nil {
			out = slices.Clone(pix)
		}
		for _, i := range c.pixels {
			out[i] = 0
		}
	}
	if out != nil {
		clearSoftEdges(out, pix, w, h, solidT)
	}
	return out
}

// crossing is the share of the solid pixels (> solid) of row y that are solid delta rows above
// and delta rows below as well: how much of the ink at y belongs to strokes that run through
// it. A row without ink is not crossed.
func crossing(pix []float32, w, h, y, delta int, solid float32) float64 {
	ya, yb := y-delta, y+delta
	if ya < 0 || yb >= h {
		return 1
	}
	above, at, below := pix[ya*w:][:w], pix[y*w:][:w], pix[yb*w:][:w]
	var inked, through int
	for x, v := range at {
		if v > solid {
			inked++
			if above[x] > solid && below[x] > solid {
				through++
			}
		}
	}
	if inked == 0 {
		return 0
	}
	return float64(through) / float64(inked)
}

// inkColumns finds the first and one past the last inked column of rows [y0, y1): columns
// with a solid pixel (> solidT), in clusters (merged across gaps of up to 2S columns) whose
// ink above tau, counting a column of fringe either side, is at least S²/80 pixels, about a
// tenth of a full stop: specks of dirt and noise at either end are left out.
func inkColumns(pix []float32, w, y0, y1 int, tau, solidT float32, S float64) (x0, x1 int, ok bool) {
	col := make([]float32, w)
	solid := make([]bool, w)
	for y := y0; y < y1; y++ {
		for x, v := range pix[y*w:][:w] {
			if v > tau {
				col[x] += v - tau
				if v > solidT {
					solid[x] = true
				}
			}
		}
	}
	minMass := S * S / 80
	gapMax := int(2 * S)
	x0, x1 = -1, -1
	for x := 0; x < w; {
		if !solid[x] {
			x++
			continue
		}
		start, end := x, x+1 // a cluster: solid columns no more than gapMax apart
		for x++; x < w && x-end <= gapMax; x++ {
			if solid[x] {
				end = x + 1
			}
		}
		x = end
		mass := 0.0
		for c := max(0, start-1); c < min(w, end+1); c++ {
			mass += float64(col[c])
		}
		if mass >= minMass {
			if x0 < 0 {
				x0 = start
			}
			x1 = end
		}
	}
	return x0, x1, x0 >= 0
}

// gaussian smooths v with a Gaussian of standard deviation sigma (in samples), renormalising
// the kernel at the ends.
func gaussian(v []float64, sigma float64) []float64 {
	r := int(math.Ceil(2.5 * sigma))
	kern := make([]float64, 2*r+1)
	for i := range kern {
		d := float64(i - r)
		kern[i] = math.Exp(-d * d / (2 * sigma * sigma))
	}
	out := make([]float64, len(v))
	for i := range v {
		var s, n float64
		for j := max(0, i-r); j <= min(len(v)-1, i+r); j++ {
			s += kern[j-i+r] * v[j]
			n += kern[j-i+r]
		}
		out[i] = s / n
	}
	return out
}

// percentile is the q-quantile (0…1) of v: the element that would be at index ⌊q·len⌋ were v
// sorted, found by selection on a copy, in linear time.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	k := min(len(s)-1, int(q*float64(len(s))))
	lo, hi := 0, len(s)-1
	for lo < hi {
		// Hoare partition around the median of three.
		mid := lo + (hi-lo)/2
		if s[mid] < s[lo] {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if s[hi] < s[lo] {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if s[hi] < s[mid] {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for s[i] < pivot {
				i++
			}
			for s[j] > pivot {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return s[k]
		}
	}
	return s[k]
}

// nearLowest reports whether v[y] is within 10 % (above base) or half a pixel of ink of the
// smallest of v[y−r … y+r]: a row of a flat valley between two lines, where the lowest row may
// be crossed by an ascender and the one beside it clear ("abroad." under a line of text set
// tight: its b and d reach into the valley's lowest row).
func nearLowest(v []float64, y, r int, base float64) bool {
	m := v[y]
	for i := max(0, y-r); i <= min(len(v)-1, y+r); i++ {
		m = min(m, v[i])
	}
	return v[y]-base <= 1.1*(m-base)+0.5
}

// argmin is the index of the smallest v[i] for i in [a, b), a when the range is empty; ties
// go to the middle of the run of equal minima, so a blank gap is cut at its centre.
func argmin(v []float64, a, b int) int {
	if b <= a {
		return a
	}
	best := a
	for i := a; i < b; i++ {
		if v[i] < v[best] {
			best = i
		}
	}
	end := best
	for end+1 < b && v[end+1] == v[best] {
		end++
	}
	return (best + end) / 2
}

// holes counts the pixels of c's box (a component of a w-wide grid, as flood finds it) that
// are not in solid and that the box's edge cannot reach without crossing c: the holes of a
// ring, the symbol cut out of an icon, a toggle switch's knob.
func holes(c component, w int, solid func(i int) bool) int {
	b := c.box
	bw, bh := b.Dx(), b.Dy()
	in := make([]bool, bw*bh) // c's own pixels
	for _, i := range c.pixels {
		in[(i/w-b.Min.Y)*bw+i%w-b.Min.X] = true
	}
	seen := make([]bool, bw*bh)
	var out component
	reached := 0
	for j := range bw * bh {
		x, y := j%bw, j/bw
		if (x > 0 && x < bw-1 && y > 0 && y < bh-1) || seen[j] || in[j] {
			continue
		}
		out.flood(bw, bh, j, seen, func(k int) bool { return !in[k] })
		reached += len(out.pixels)
	}
	return bw*bh - len(c.pixels) - reached
}
