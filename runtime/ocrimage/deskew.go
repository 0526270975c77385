package ocrimage

import (
	"image"
	"math"
	"slices"
)

// Skew search of lineSkew: baseline angles from −maxSkewDeg to +maxSkewDeg in steps of
// skewStepDeg; a line found within minSkewDeg of level, or whose best angle scores less
// than minSkewGain times level's, is left as it is.
const (
	maxSkewDeg  = 3.0
	skewStepDeg = 0.25
	minSkewDeg  = 0.5
	minSkewGain = 1.05
	// maxPageSkewDeg is LevelPage's search range: wider than a line's, since a page turned by
	// more than 3° merges its lines (a photo of a page is often turned that far). Six-line
	// paragraphs turned 4–6° read at 0.4–7 % CER with it, 2–99.6 % with a 3° range.
	maxPageSkewDeg = 6.0
)

// lineSkew measures the slope of the text of one line (box, in source pixels) of k, in source
// rows per column (positive: the baseline descends to the right, as y grows), by projection
// profiles: of the shears of the line's ink by the slopes of angles from −3° to 3° in 0.25°
// steps, the one whose row profile changes most sharply from row to row (the largest sum of
// squared differences of neighbouring rows; refined between steps by a parabola through its
// neighbours), where the text's baseline and x-height line up (Postl's criterion, "Detection
// of linear oblique structures and skew scan in digitized documents", ICPR 1986, on one
// line). ok is false for a level line (the refined angle within 0.5°), for a best angle that
// scores under 1.05 times level (a few letters, a rule beside text: no clear slope) and for a
// box narrower than three times its height, across which a slope of a few degrees drifts by a
// few percent of the height. Horizontal runs of ink longer than twice the box's height (a
// rule, a run of underscores) do not vote: level in a crop of their own, they would pull the
// estimate towards whatever angle lines their row up with the text.
func lineSkew(k *Ink, box image.Rectangle) (slope float64, ok bool) {
	box = box.Intersect(k.Rect)
	if box.Dy() < 4 || box.Dx() < 3*box.Dy() {
		return 0, false
	}
	return skew(k, box, 2*box.Dy(), 1, maxSkewDeg)
}

// skew is lineSkew's search over box (within k.Rect), without its test of the box's shape:
// horizontal runs of ink longer than maxRun columns do not vote, and only every stride-th
// column does (a column's ink still lands on every row of the profile, so a stride thins the
// points without blurring the profile).
func skew(k *Ink, box image.Rectangle, maxRun, stride int, maxDeg float64) (slope float64, ok bool) {
	w, h := box.Dx(), box.Dy()
	if h < 4 || w < 1 || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return 0, false
	}
	type point struct{ x, y, v float32 } // x from the box's centre column, y from its top
	var pts []point
	kw := k.Rect.Dx()
	cx := float64(box.Min.X+box.Max.X) / 2
	for y := box.Min.Y; y < box.Max.Y; y++ {
		row := k.Pix[(y-k.Rect.Min.Y)*kw:][:kw]
		for x := box.Min.X; x < box.Max.X; {
			if row[x-k.Rect.Min.X] <= 0.3 { // paper, and the noise on it
				x++
				continue
			}
			a := x
			for x < box.Max.X && row[x-k.Rect.Min.X] > 0.3 {
				x++
			}
			if x-a > maxRun {
				continue // a rule or a run of underscores
			}
			for i := a; i < x; i++ {
				if (i-box.Min.X)%stride == 0 {
					pts = append(pts, point{float32(float64(i) + 0.5 - cx), float32(y - box.Min.Y), row[i-k.Rect.Min.X]})
				}
			}
		}
	}
	if len(pts) == 0 {
		return 0, false
	}
	off := int(math.Ceil(math.Tan(maxDeg*math.Pi/180)*float64(w)/2)) + 1
	prof := make([]float64, h+2*off+2)
	score := func(s float64) float64 {
		clear(prof)
		for _, p := range pts {
			r := float64(p.y) - s*float64(p.x) + float64(off) // ≥ 1: |s·x| < off
			i := int(r)
			f := r - float64(i)
			prof[i] += float64(p.v) * (1 - f)
			prof[i+1] += float64(p.v) * f
		}
		var sum float64
		for i := 1; i < len(prof); i++ {
			d := prof[i] - prof[i-1]
			sum += d * d
		}
		return sum
	}
	n := int(math.Round(maxDeg / skewStepDeg))
	scores := make([]float64, 2*n+1) // angle (i − n)·skewStepDeg
	for i := range scores {
		scores[i] = score(math.Tan(float64(i-n) * skewStepDeg * math.Pi / 180))
	}
	best := n // level wins ties
	for i, sc := range scores {
		if sc > scores[best] {
			best = i
		}
	}
	if scores[best] < minSkewGain*scores[n] || scores[n] == 0 {
		return 0, false
	}
	// Between grid angles: the vertex of the parabola through the best score and its two
	// neighbours (a 0.25° step leaves up to 2 rows of drift across a long line).
	at := float64(best - n)
	if best > 0 && best < 2*n {
		a, b, c := scores[best-1], scores[best], scores[best+1]
		if d := a - 2*b + c; d < 0 {
			at += min(max(0.5*(a-c)/d, -0.5), 0.5)
		}
	}
	if math.Abs(at*skewStepDeg) < minSkewDeg {
		return 0, false
	}
	return math.Tan(at * skewStepDeg * math.Pi / 180), true
}

// deskewed returns box's line of k sheared level by slope (lineSkew's). The value at column x,
// row y is k's at row y + slope·(x + 0.5 − cx), cx the box's centre column, linear between two
// rows, paper outside k; columns do not move. Its rows are the level line's: of the box's rows
// sheared (a band as tall as the box about the sloping line's middle, which holds the whole
// line), those whose ink is above 1 % of the band's inkiest row, plus LineStrips' margin of
// 10 % of that height (at least 1 px) above and below. So a crop is never taller than the
// unsheared one, and in a sloping paragraph only what of the lines above and below reaches
// into the band (the box's corners hold more of them) can join it. Its Rect is that crop, in
// source columns and the level line's rows.
func deskewed(k *Ink, box image.Rectangle, slope float64) *Ink {
	// One shear of the box's rows with room for the largest margin; the crop is a run of its
	// rows (the extent is at most the box's height, so its margin at most mMax).
	mMax := max(1, int(math.Round(0.1*float64(box.Dy()))))
	band := shear(k, box.Min.X, box.Max.X, box.Min.Y-mMax, box.Max.Y+mMax, slope)
	w := box.Dx()
	prof := make([]float64, box.Dy()) // the box's rows, band rows mMax…
	for y := range prof {
		for _, v := range band.Pix[(y+mMax)*w:][:w] {
			prof[y] += float64(v)
		}
	}
	peak := slices.Max(prof)
	first, last := 0, len(prof)-1
	for first < last && prof[first] <= 0.01*peak {
		first++
	}
	for last > first && prof[last] <= 0.01*peak {
		last--
	}
	m := max(1, int(math.Round(0.1*float64(last+1-first))))
	r0, r1 := first+mMax-m, last+1+mMax+m // band rows of the crop
	return &Ink{Rect: image.Rect(box.Min.X, band.Rect.Min.Y+r0, box.Max.X, band.Rect.Min.Y+r1), Pix: band.Pix[r0*w : r1*w]}
}

// shear returns columns [x0, x1) and rows [y0, y1) of k sheared by slope about the columns'
// centre (see deskewed), as an Ink with that Rect.
func shear(k *Ink, x0, x1, y0, y1 int, slope float64) *Ink {
	w := x1 - x0
	out := &Ink{Rect: image.Rect(x0, y0, x1, y1), Pix: make([]float32, w*(y1-y0))}
	cx := float64(x0+x1) / 2
	dy := make([]float64, w) // each column's shift
	for x := range dy {
		dy[x] = slope * (float64(x0+x) + 0.5 - cx)
	}
	// Rows on up to GOMAXPROCS goroutines (a levelled page is millions of pixels); each value
	// is computed alone, so the result does not depend on how many.
	parallel(y1-y0, rowChunk(w), func(lo, hi int) {
		for y := y0 + lo; y < y0+hi; y++ {
			row := out.Pix[(y-y0)*w:][:w]
			for x := range row {
				sy := float64(y) + dy[x]
				i := int(math.Floor(sy))
				f := float32(sy - float64(i))
				row[x] = (1-f)*k.At(x0+x, i) + f*k.At(x0+x, i+1)
			}
		}
	})
	return out
}

// LevelPage levels a page whose lines all slope the same way, as in a scan or a photo turned
// by a degree or two. SplitLines finds lines by the page's row profile, and a line that drifts
// by more than the paper between lines across the page overlaps its neighbours' rows, so the
// lines merge: a 16-px paragraph at 1.45 line spacing merges from about 2° over 600 px.
//
// The slope is lineSkew's search (Postl's criterion), from −6° to 6° (maxPageSkewDeg), over the
// whole page with its panels (Panels) erased: horizontal runs of ink longer than 4 stem
// heights (a rule, a long run of underscores) do not vote, and on pages over a megapixel only every n-th column does (about a
// megapixel's worth). Where it finds a slope (at least 0.5°, scoring at least 1.05 times level), the result is the page sheared level as deskewed shears a
// line: columns keep their place and column x's rows move by slope·(x + 0.5 − cx), cx the
// page's centre column; rows are added above and below for the drift (Rect then reaches past
// the source's rows), and paper fills them. Elsewhere, and for a blank page, it returns k itself
// and slope 0. Boxes found on the levelled page map back to source pixels with SourceBox.
func LevelPage(k *Ink) (level *Ink, slope float64) {
	if k == nil || k.Blank || k.Rect.Empty() || len(k.Pix) < k.Rect.Dx()*k.Rect.Dy() {
		return k, 0
	}
	w, h := k.Rect.Dx(), k.Rect.Dy()
	// The slope is measured on the page without its panels: the columns of a photographed
	// chat's solid bubbles, its title bar, are most of its vertical runs, and the stem height
	// they give lets their rows vote.
	m := Erase(k, Panels(k))
	_, _, stem, _ := profileAndStem(m.Pix, w, h, 0.15, 0.5, false)
	if stem == 0 || w < 3*stem {
		return k, 0
	}
	slope, ok := skew(m, m.Rect, 4*stem, 1+w*h/(1<<20), maxPageSkewDeg)
	if !ok {
		return k, 0
	}
	off := int(math.Ceil(math.Abs(slope)*float64(w)/2)) + 1
	level = shear(k, k.Rect.Min.X, k.Rect.Max.X, k.Rect.Min.Y-off, k.Rect.Max.Y+off, slope)
	level.Paper, level.Full, level.Inverted = k.Paper, k.Full, k.Inverted
	return level, slope
}

// SourceBox maps box, found on the page LevelPage made of k with slope, back to k's pixels:
// the smallest box that holds the sloping band box's rows cover, clipped to k.Rect. Columns
// do not move. With slope 0 it is box clipped to k.Rect.
func SourceBox(k *Ink, box image.Rectangle, slope float64) image.Rectangle {
	if slope != 0 && !box.Empty() {
		cx := float64(k.Rect.Min.X+k.Rect.Max.X) / 2
		a := slope * (float64(box.Min.X) + 0.5 - cx)
		b := slope * (float64(box.Max.X) - 0.5 - cx)
		box.Min.Y += int(math.Floor(min(a, b)))
		box.Max.Y += int(math.Ceil(max(a, b)))
	}
	return box.Intersect(k.Rect)
}
