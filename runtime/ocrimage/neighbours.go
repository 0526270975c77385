package ocrimage

import (
	"image"
	"math"
)

// Thresholds of withoutNeighbours.
const (
	// glyphInk is the ink value above which pixels join into a glyph's connected component.
	glyphInk = 0.2
	// neighbourReach is how far, in box heights, a component is followed above and below the
	// rows it must leave to count as a neighbour's: enough to reach that line's x-height.
	neighbourReach = 1.0
	// neighbourInBox is the most of a neighbour's glyph's ink that may lie in the box's rows;
	// a component with more is a descender of this line joined to an ascender of the next
	// (or the reverse), and stays.
	neighbourInBox = 0.25
	// neighbourHeight is the least height, in box heights, of a neighbour's glyph: a
	// descender with its letter is half a line tall or more; a speck of noise is not.
	neighbourHeight = 0.4
)

// withoutNeighbours returns k with the glyphs of neighbouring lines that reach into rows
// [y0, y1) around box (the rows LineStrips reads: the line's crop, and what a shear adds)
// erased there, or k itself when there are none. In tightly set text (leading near 1) the
// descenders of the line above and the ascenders of the line below cross into a line's
// crop, beside its own capitals and ascenders, and the model, trained on lines whose
// neighbours keep their distance, reads them as part of its letters ("wu" for "You").
//
// A glyph here is a connected component (8-neighbours) of pixels above glyphInk. One counts
// as a neighbour's when it crosses the first or last of the rows, goes on outside them, and
// the centre of its ink (followed up to neighbourReach box heights further, within the box's
// columns widened by as much) lies outside the box's rows: its body belongs to the line above
// or below. Glyphs wholly inside the rows (this line's own, a speck, an accent) and glyphs
// centred in the box (an ascender that reaches past the crop) stay; so does a descender that
// touches an ascender of this line, as they are one component. An erased glyph's fainter
// edge pixels (at most glyphInk, next to it) go too.
func withoutNeighbours(k *Ink, box image.Rectangle, y0, y1 int) *Ink {
	rows := image.Rect(box.Min.X, y0, box.Max.X, y1).Intersect(k.Rect)
	if rows.Empty() || box.Dy() <= 0 {
		return k
	}
	reach := int(math.Ceil(neighbourReach * float64(box.Dy())))
	win := image.Rect(box.Min.X-reach, y0-reach, box.Max.X+reach, y1+reach).Intersect(k.Rect)
	ww := win.Dx()
	kw := k.Rect.Dx()
	at := func(x, y int) float32 { return k.Pix[(y-k.Rect.Min.Y)*kw+x-k.Rect.Min.X] }
	var seen []bool // window pixels already in a component, allocated at the first seed
	var erase []image.Point
	var stack []image.Point
	for _, y := range []int{rows.Min.Y, rows.Max.Y - 1} {
		outside := y - 1 // the row just past the edge the seed lies on
		if y == rows.Max.Y-1 {
			outside = y + 1
		}
		if outside < win.Min.Y || outside >= win.Max.Y {
			continue // the image ends there: nothing goes on outside
		}
		for x := rows.Min.X; x < rows.Max.X; x++ {
			if at(x, y) <= glyphInk || (seen != nil && seen[(y-win.Min.Y)*ww+x-win.Min.X]) {
				continue
			}
			if seen == nil {
				seen = make([]bool, ww*win.Dy())
			}
			// Flood the component from (x, y) within the window.
			var comp []image.Point
			var mass, moment, inBox float64
			leaves := false // has pixels outside [y0, y1)
			top, bottom := y, y
			seen[(y-win.Min.Y)*ww+x-win.Min.X] = true
			stack = append(stack[:0], image.Pt(x, y))
			for len(stack) > 0 {
				p := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				comp = append(comp, p)
				v := float64(at(p.X, p.Y))
				mass += v
				moment += v * (float64(p.Y) + 0.5)
				if p.Y >= box.Min.Y && p.Y < box.Max.Y {
					inBox += v
				}
				if p.Y < y0 || p.Y >= y1 {
					leaves = true
				}
				top, bottom = min(top, p.Y), max(bottom, p.Y)
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						q := image.Pt(p.X+dx, p.Y+dy)
						if !q.In(win) {
							continue
						}
						i := (q.Y-win.Min.Y)*ww + q.X - win.Min.X
						if !seen[i] && at(q.X, q.Y) > glyphInk {
							seen[i] = true
							stack = append(stack, q)
						}
					}
				}
			}
			if !leaves || float64(bottom+1-top) < neighbourHeight*float64(box.Dy()) {
				continue
			}
			if cy := moment / mass; (cy < float64(box.Min.Y) || cy >= float64(box.Max.Y)) && inBox < neighbourInBox*mass {
				erase = append(erase, comp...)
			}
		}
	}
	if len(erase) == 0 {
		return k
	}
	// A copy of the rows, the erased glyphs and their faint edges set to paper.
	out := &Ink{Rect: rows, Pix: make([]float32, rows.Dx()*rows.Dy()), Paper: k.Paper, Full: k.Full, Inverted: k.Inverted}
	rw := rows.Dx()
	for y := rows.Min.Y; y < rows.Max.Y; y++ {
		copy(out.Pix[(y-rows.Min.Y)*rw:][:rw], k.Pix[(y-k.Rect.Min.Y)*kw+rows.Min.X-k.Rect.Min.X:][:rw])
	}
	for _, p := range erase {
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				q := image.Pt(p.X+dx, p.Y+dy)
				if !q.In(rows) {
					continue
				}
				if v := &out.Pix[(q.Y-rows.Min.Y)*rw+q.X-rows.Min.X]; (dx == 0 && dy == 0) || *v <= glyphInk {
					*v = 0
				}
			}
		}
	}
	return out
}
